"""The volume shortcut of :meth:`Engine.analyze <octviewer.core.engine.Engine.analyze>`: for a
model with a mirrored view (``hflip_tta``), a cheap pass without it on every frame, then the
full pass only on the frames :mod:`octviewer.core.volume_rule` says it can change."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from octviewer.core.inference import AnalysisRequest
from octviewer.core.results import ModelIdentity, ScanResult

if TYPE_CHECKING:
    from octviewer.core.inference import CancelFn, ProgressFn
    from octviewer.core.model.config import ModelConfig
    from octviewer.core.scan import Scan

log = logging.getLogger(__name__)


class ShortcutEngine(Protocol):
    """What the shortcut uses of :class:`~octviewer.core.engine.Engine` (its public names;
    written here so that the engine and this module do not import each other)."""

    lock: Any  # held across both passes
    model: Any  # its ``hflip_tta`` switches the mirrored view

    @property
    def config(self) -> ModelConfig: ...

    @property
    def identity(self) -> ModelIdentity: ...

    @property
    def device(self) -> str: ...

    def analyze(
        self,
        scan: Scan,
        request: AnalysisRequest | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> ScanResult: ...


def analyze_with_shortcut(
    engine: ShortcutEngine,
    scan: Scan,
    indices: list[int],
    request: AnalysisRequest,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
) -> ScanResult:
    """The cheap pass (no mirrored view) on every frame, then the full pass where needed
    (``request.shortcut`` says where; always on ``request.full_frames``)."""
    t0 = time.perf_counter()
    rule, batch_size = request.shortcut, request.batch_size
    assert rule is not None  # the engine takes this path only with a shortcut
    n = len(indices)

    def cheap_progress(done: int, _total: int) -> None:
        if progress is not None:
            progress(min(done, n - 1), n)

    with engine.lock:
        engine.model.hflip_tta = False
        try:
            cheap = engine.analyze(
                scan,
                AnalysisRequest(frames=indices, cam=False, batch_size=batch_size),
                progress=cheap_progress,
                cancel=cancel,
            )
        finally:
            engine.model.hflip_tta = True
        refine = rule.frames_to_refine(
            cheap.frames, engine.config.confidence_threshold, request.full_frames
        )
        full = (
            engine.analyze(
                scan,
                AnalysisRequest(frames=refine, cam=False, batch_size=batch_size),
                cancel=cancel,
            )
            if refine
            else None
        )
    by_index = {f.frame_index: f for f in cheap.frames}
    if full is not None:
        by_index.update({f.frame_index: f for f in full.frames})
    if progress is not None:
        progress(n, n)
    elapsed = time.perf_counter() - t0
    log.info("volume shortcut: mirrored view on %d of %d frame(s)", len(refine), n)
    extra = dict(cheap.extra, volume_rule=f"mirrored view on {len(refine)} of {n} frames")
    return ScanResult(
        frames=tuple(by_index[i] for i in indices),
        model=engine.identity,
        device=engine.device,
        elapsed_s=elapsed,
        extra=extra,
    )
