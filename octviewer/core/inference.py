"""The rules around one inference call of :class:`~octviewer.core.engine.Engine`: which
frames a request names, whether the scan can be analysed, what a failed forward pass tells
the user, calibrated probabilities that must be finite, and the flags of a frame."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.presentation import frame_numbers
from octviewer.core.results import ResultFlag
from octviewer.core.scan import Scan
from octviewer.errors import AnalysisCancelled, AnalysisError

if TYPE_CHECKING:
    from octviewer.core.model.config import ModelConfig
    from octviewer.core.ood import OODModel
    from octviewer.core.volume_rule import VolumeShortcut

log = logging.getLogger(__name__)

#: What a forward or CAM pass raises on a network that does not fit its input (shapes, dtypes,
#: an assertion in timm), besides running out of memory.
_INFERENCE_ERRORS = (
    RuntimeError,
    ValueError,
    MemoryError,
    AssertionError,
    TypeError,
    IndexError,
    ZeroDivisionError,
    OverflowError,
    NotImplementedError,
)

#: ``progress(done, total)`` and ``cancel() -> bool``: the callbacks of one analysis call.
ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class AnalysisRequest:
    """What one :meth:`Engine.analyze <octviewer.core.engine.Engine.analyze>` call computes.

    ``frames``: the frame indices (None = every frame). ``cam``: the CAM of the predicted class,
    or of ``cam_class`` (an index or a name), for every analysed frame. ``batch_size``: frames
    per forward pass. ``shortcut`` (models with a mirrored view, ``cam=False``, several
    frames): the mirrored view only where :mod:`octviewer.core.volume_rule` says it can change
    the answer, and always for ``full_frames``. Sequences are kept as tuples."""

    frames: Sequence[int] | None = None
    cam: bool = True
    cam_class: int | str | None = None
    batch_size: int = 8
    shortcut: VolumeShortcut | None = None
    full_frames: Sequence[int] = ()

    def __post_init__(self) -> None:
        if self.frames is not None:
            object.__setattr__(self, "frames", tuple(self.frames))
        object.__setattr__(self, "full_frames", tuple(self.full_frames))


def require_finite(probs: np.ndarray | None, grids: np.ndarray | None, idx: list[int]) -> None:
    """A NaN/Inf probability or heatmap is an error, never a result (the input is finite:
    :mod:`octviewer.core.preprocess` guarantees it, so the network or its weights are at fault)."""
    for what, arr in (("class probabilities", probs), ("attention map", grids)):
        if arr is None:
            continue
        bad = ~np.isfinite(arr.reshape(len(idx), -1)).all(axis=1)
        if bad.any():
            frames = frame_numbers(i for i, b in zip(idx, bad, strict=True) if b)
            raise AnalysisError(
                f"The model produced invalid {what} (not numbers) for frame(s) {frames}: no "
                "result is shown. The model bundle is probably damaged or unsuited to this "
                "scan: try another model."
            )


def check_scan(scan: Scan) -> None:
    if not isinstance(scan, Scan):
        raise AnalysisError(f"Expected a Scan (from octviewer.load), got {type(scan).__name__}.")
    f = scan.frames
    if f.ndim != 3 or f.shape[0] < 1 or f.shape[1] < 2 or f.shape[2] < 2:
        raise AnalysisError(
            f"This scan has no analysable image (frames of shape {f.shape}). "
            "Open a B-scan or a volume."
        )


def frame_indices(scan: Scan, frames: Sequence[int] | None) -> list[int]:
    if frames is None:
        return list(range(scan.n_frames))
    out: list[int] = []
    for i in frames:
        j = int(i)
        if not 0 <= j < scan.n_frames:
            raise AnalysisError(
                f"Frame index {j} does not exist: this scan has {scan.n_frames} frame(s) "
                f"(indices 0 to {scan.n_frames - 1})."
            )
        out.append(j)
    if not out:
        raise AnalysisError("No frame was selected for analysis.")
    return out


def result_flags(
    scan: Scan,
    probs: np.ndarray,
    ood_score: float | None,
    config: ModelConfig,
    ood: OODModel | None,
) -> frozenset[ResultFlag]:
    """The flags of one analysed frame (see :class:`~octviewer.core.results.ResultFlag`)."""
    flags = set()
    md = scan.metadata
    if not md.modality.is_oct:
        flags.add(ResultFlag.NOT_OCT)
    if ood is None:
        flags.add(ResultFlag.OOD_CHECK_UNAVAILABLE)
    elif ood_score is not None and not ood_score <= ood.threshold:  # NaN: flagged
        flags.add(ResultFlag.OUT_OF_DISTRIBUTION)
    if float(probs.max()) < float(config.confidence_threshold):
        flags.add(ResultFlag.LOW_CONFIDENCE)
    if not reassuring(config, probs):
        flags.add(ResultFlag.DISEASE_NOT_EXCLUDED)
    if other_device(config, md.manufacturer):
        flags.add(ResultFlag.OTHER_DEVICE)
    if md.was_color:
        flags.add(ResultFlag.COLOR_INPUT)
    if md.downsampled_from is not None:
        flags.add(ResultFlag.DOWNSAMPLED)
    return frozenset(flags)


def reassuring(config: ModelConfig, probs: np.ndarray) -> bool:
    """False for a frame predicted as the bundle's reassuring class (NORMAL) with a probability
    below its operating point (``ModelConfig.reassurance``, chosen out of fold so that diseased
    B-scans are rarely headlined NORMAL); True otherwise."""
    r = config.reassurance
    cls = r.get("class") if r else None
    if cls not in config.class_names:
        return True
    k = int(np.argmax(probs))
    return config.class_names[k] != cls or float(probs[k]) >= float(r["min_probability"])


def other_device(config: ModelConfig, manufacturer: str | None) -> bool:
    """True when the scan names a manufacturer outside the bundle's training domain."""
    known = config.training_domain.get("manufacturers") or []
    if not manufacturer or not known:
        return False
    m = manufacturer.casefold()
    return not any(str(k).casefold() in m or m in str(k).casefold() for k in known)


@contextlib.contextmanager
def inference_failures(device: str) -> Iterator[None]:
    """An inference error becomes an AnalysisError that names its cause and what to do."""
    try:
        yield
    except (AnalysisError, AnalysisCancelled):
        raise
    except _INFERENCE_ERRORS as exc:
        log.exception("inference failed on %s", device)
        hint = (
            " The computer ran out of memory: close other programs or analyse fewer frames."
            if "memory" in str(exc).lower() or isinstance(exc, MemoryError)
            else " The model bundle may not fit this scan or be damaged: try another model."
        )
        cause = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise AnalysisError(
            f"The analysis failed ({type(exc).__name__}{': ' + cause if cause else ''}).{hint}"
        ) from exc
