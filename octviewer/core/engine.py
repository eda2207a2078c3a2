"""The analysis engine: a model bundle loaded once, scans in, calibrated results (+ CAM) out.

::

    engine = Engine("model.safetensors")           # device="auto": CUDA, then MPS, then CPU
    result = engine.analyze(scan)                   # every frame, CAM of the predicted class
    heat = engine.cam(scan, frame_index=3, class_index="DME")

Blocking code, one worker thread at a time (calls are serialised by a lock). The arithmetic
(:mod:`octviewer.core.arithmetic`) is the fastest validated for the bundle here unless the
caller chose: bf16/fp16 autocast (CNNs channels-last on CPU), fp32, or int8 (CPU): static int8
convolutions before the CAM layer for a calibrated CNN ensemble
(:mod:`octviewer.core.model.int8_static`, cached by :mod:`.model.int8_cache`), else dynamic
int8 Linear layers with an fp32 copy of those after the CAM target for CAM passes.

Every analysed frame also gets the bundle's out-of-distribution score
(:mod:`octviewer.core.ood`) from the same forward pass: hooks on the classifier layers read the
pre-logit features on their way through. Flags: ``OUT_OF_DISTRIBUTION`` above the bundle's
threshold, ``OOD_CHECK_UNAVAILABLE`` for bundles without statistics, ``OTHER_DEVICE`` when the
scan's manufacturer is not among the bundle's ``training_domain`` manufacturers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.core.arithmetic import amp_dtype
from octviewer.core.arithmetic import choose as choose_arithmetic
from octviewer.core.calibration import calibrated_probabilities
from octviewer.core.device import (
    check_precision,
    choose_device,
    configure_threads,
    prepare_environment,
)
from octviewer.core.examination import examine_frame
from octviewer.core.heatmap import Heatmap
from octviewer.core.inference import (
    AnalysisRequest,
    CancelFn,
    ProgressFn,
    check_scan,
    frame_indices,
    inference_failures,
    require_finite,
    result_flags,
)
from octviewer.core.ood import FeatureTap
from octviewer.core.results import FrameResult, ModelIdentity, ScanResult
from octviewer.core.scan import Scan
from octviewer.core.scan_verdict import with_scan_verdict
from octviewer.core.scope import ModelScope
from octviewer.core.volume_pass import analyze_with_shortcut
from octviewer.errors import AnalysisCancelled, AnalysisError, ModelError, ModelFormatError

if TYPE_CHECKING:
    import torch

    from octviewer.core.cam import CamPass
    from octviewer.core.model.config import ModelConfig
    from octviewer.core.ood import OODModel

log = logging.getLogger(__name__)

__all__ = ["Engine"]


class Engine:
    """A loaded model ready to analyse scans. See the module docstring."""

    def __init__(
        self,
        bundle: str | Path | None = None,
        *,
        device: str = "auto",
        quantize: bool | None = None,
        threads: int | None = None,
        precision: str = "auto",
        int8_cache: str | None = None,
    ) -> None:
        """``int8_cache``: "background" (default), "sync" or "off" (see core/model/network)."""
        prepare_environment()
        if bundle is None:
            from octviewer.resources import default_model_path

            path = default_model_path()
            if not path.is_file():
                raise ModelFormatError(
                    "The default model is not installed with this copy of octviewer. "
                    "Open a model bundle (.safetensors) instead, or reinstall octviewer."
                )
        else:
            path = Path(bundle)
        from octviewer.core.model.network import hash_ahead_for_load

        hash_ahead_for_load(path, int8=quantize is not False)  # on a thread, while torch imports
        from octviewer.core.cam import OnePassCam
        from octviewer.core.model.bundle import read_bundle_head
        from octviewer.core.model.network import load_network

        self.path = path
        self._device = choose_device(device)
        self.precision = check_precision(precision)
        self.threads = configure_threads(threads) if self._device.type == "cpu" else None
        t0 = time.perf_counter()
        self.quantized = False
        head = read_bundle_head(path)  # parsed once: load_bundle reuses it
        self.config: ModelConfig = head.config
        self.cam_target = self.config.cam_target_layer
        self.arithmetic = choose_arithmetic(self.config, self._device, self.precision, quantize)
        int8 = self.arithmetic.int8
        # int8 hook: static (calibrated CNN backbones) or dynamic (Linear layers); None
        loaded, self._int8 = load_network(
            path,
            str(self._device),
            head,
            int8=int8,
            cam_target_of=self._cam_target_of,
            cache=int8_cache,
        )
        self.quantized = int8
        self.model: torch.nn.Module = loaded.model
        self.config = loaded.config
        self.identity: ModelIdentity = loaded.identity
        self.ood: OODModel | None = loaded.ood
        self.scope = ModelScope.from_training_domain(self.config.training_domain)
        # int8 layers take fp32 inputs: an int8 model stays out of autocast
        self._amp = amp_dtype(self.arithmetic.name)
        self._use_channels_last()
        if self._int8 is None or self._int8.cam_target is None:  # not resolved by the int8 hook
            self.cam_target = self._cam_target_of(self.model)
        else:
            self.cam_target = self._int8.cam_target
        self._cam = OnePassCam(self.model, self.cam_target)
        self.lock = threading.RLock()  # one pass at a time; the volume shortcut holds it for two
        self._cam_cache: tuple[tuple[int, int], np.ndarray, CamPass] | None = None
        log.info(
            "engine ready: %s on %s%s%s in %.2f s; arithmetic: %s",
            self.identity,
            self.device,
            f" (int8 {self.int8_kind})" if self.quantized else "",
            f" ({self.compute_dtype})" if self._amp is not None else "",
            time.perf_counter() - t0,
            self.arithmetic.reason,
        )

    # --- properties ---------------------------------------------------------------------
    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def compute_dtype(self) -> str:
        """What the forward computes in: "bfloat16", "float16" (autocast) or "float32"."""
        return str(self._amp).removeprefix("torch.") if self._amp is not None else "float32"

    @property
    def int8_kind(self) -> str:
        """ "static" (int8 convolutions, calibrated), "dynamic" (int8 Linear layers) or ""."""
        return self._int8.kind if self._int8 is not None else ""

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    def __repr__(self) -> str:
        return (
            f"Engine({self.identity}, device={self.device}, quantized={self.quantized}, "
            f"compute={self.compute_dtype})"
        )

    def _cam_target_of(self, model: torch.nn.Module) -> str:
        """The bundle's CAM layer, or the architecture's default when the bundle's is absent."""
        from octviewer.core.model.architectures import default_cam_target, get_submodule

        try:
            get_submodule(model, self.config.cam_target_layer)
            return self.config.cam_target_layer
        except ModelError:
            target = default_cam_target(self.config.architecture, model)
            log.warning(
                "bundle CAM layer %r not in %s; using %r",
                self.config.cam_target_layer,
                self.config.architecture,
                target,
            )
            return target

    def _use_channels_last(self) -> None:
        """CNNs under CPU bf16: channels-last weights, oneDNN's fast layout (measured on
        ResNet-18, batch 8: bf16 1.6x faster than fp32 in NCHW, 2.8x in channels-last)."""
        import torch

        from octviewer.core.model.architectures import is_token_model

        if self._amp is None or self._device.type != "cpu" or is_token_model(self.model):
            return
        if any(p.ndim == 4 for p in self.model.parameters()):
            self.model.to(memory_format=torch.channels_last)

    @property
    def _fp32_tail(self) -> dict[str, torch.nn.Module]:
        """The float32 layers an int8 model keeps for CAM passes (empty without int8)."""
        return self._int8.fp32_tail if self._int8 is not None else {}

    def _cam_ready(self) -> contextlib.AbstractContextManager[Any]:
        """For a CAM pass on an int8 model, put the fp32 layers after the target in place."""
        if self._int8 is None:
            return contextlib.nullcontext()
        return self._int8.cam_ready(self.model)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self._amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._device.type, dtype=self._amp)

    def class_index(self, cls: int | str) -> int:
        """An index from a class index or name."""
        names = self.config.class_names
        if isinstance(cls, str):
            if cls not in names:
                raise AnalysisError(
                    f"This model has no class '{cls}'. Its classes are: {', '.join(names)}."
                )
            return names.index(cls)
        i = int(cls)
        if not 0 <= i < len(names):
            raise AnalysisError(
                f"Class number {i} does not exist: this model has {len(names)} classes."
            )
        return i

    def _ood_scores(self, tap: FeatureTap, n: int) -> list[float | None]:
        if self.ood is None:
            return [None] * n
        try:
            return [float(v) for v in self.ood.score(tap.features())]
        except ValueError as exc:  # features that do not fit the statistics: a bundle fault
            raise ModelFormatError(
                f"The model's out-of-distribution statistics do not fit its network ({exc}). "
                "Re-create them with `octviewer-train ood`."
            ) from exc

    def _inputs(self, scan: Scan, idx: list[int]) -> torch.Tensor:
        from octviewer.core.preprocess import preprocess_frames

        x = preprocess_frames(scan.frames[idx], self.config.preprocess)
        return x.to(self._device, non_blocking=True)

    # --- public API ---------------------------------------------------------------------
    def predict_logits(self, x: torch.Tensor) -> np.ndarray:
        """Logits (N, K) for preprocessed inputs (N, 1, H, W); no CAM."""
        return self._predict(x, FeatureTap())

    def _predict(self, x: torch.Tensor, tap: FeatureTap) -> np.ndarray:
        import torch

        with self.lock, inference_failures(self.device), torch.inference_mode(), self._autocast():
            with tap.recording(self.model):
                out = self.model(x.to(self._device))
            return out.float().cpu().numpy()

    def analyze(
        self,
        scan: Scan,
        request: AnalysisRequest | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> ScanResult:
        """Classify the frames of ``scan`` that ``request`` names (default: all, with the CAM
        of the predicted class; see :class:`~octviewer.core.inference.AnalysisRequest`).
        ``progress(done, total)`` after each batch; ``cancel()`` is checked between batches."""

        t0 = time.perf_counter()
        request = request if request is not None else AnalysisRequest()
        cam = request.cam
        check_scan(scan)
        indices = frame_indices(scan, request.frames)
        if request.shortcut is not None and not cam and len(indices) > 1 and self._has_mirror():
            return with_scan_verdict(
                analyze_with_shortcut(self, scan, indices, request, progress, cancel)
            )
        cam_class = request.cam_class
        fixed_class = self.class_index(cam_class) if cam_class is not None else None
        bs = max(1, int(request.batch_size))
        results: list[FrameResult] = []
        for start in range(0, len(indices), bs):
            if cancel is not None and cancel():
                raise AnalysisCancelled("The analysis was cancelled.")
            idx = indices[start : start + bs]
            results.extend(self._analyze_batch(scan, idx, cam, fixed_class))
            if progress is not None:
                progress(len(results), len(indices))
        elapsed = time.perf_counter() - t0
        log.info("analysed %d frame(s) in %.2f s on %s", len(results), elapsed, self.device)
        result = ScanResult(
            frames=tuple(results),
            model=self.identity,
            device=self.device,
            elapsed_s=elapsed,
            extra={
                "quantized": str(self.quantized).lower(),
                "int8": self.int8_kind,
                "compute": self.compute_dtype,
                "threads": str(self.threads) if self.threads is not None else "",
                "cam_layer": self.cam_target if cam else "",
            },
        )
        return with_scan_verdict(result)

    def _analyze_batch(
        self, scan: Scan, idx: list[int], cam: bool, fixed_class: int | None
    ) -> list[FrameResult]:
        """One batch of :meth:`analyze`: predictions, OOD scores and (``cam``) the CAMs of the
        predicted class, or of ``fixed_class``, for frames ``idx``."""
        tap = FeatureTap()
        with inference_failures(self.device):
            x = self._inputs(scan, idx)
            grids: np.ndarray | None = None
            classes: list[int] | None = None
            if cam:
                with self.lock, self._cam_ready(), self._autocast():
                    with tap.recording(self.model):
                        cp = self._cam.forward(x)
                    logits = cp.logits.cpu().numpy()
                    classes = (
                        [fixed_class] * len(idx)
                        if fixed_class is not None
                        else logits.argmax(1).tolist()
                    )
                    grids = self._cam.cams(cp, classes).cpu().numpy()
            else:
                logits = self._predict(x, tap)
            scores = self._ood_scores(tap, len(idx))
        probs = calibrated_probabilities(logits, self.config.temperature)
        require_finite(probs, grids, idx)
        findings = [examine_frame(scan, fi, self.scope) for fi in idx]
        return [
            FrameResult(
                frame_index=fi,
                class_names=self.config.class_names,
                probabilities=probs[j],
                logits=logits[j].astype(np.float32),
                flags=result_flags(scan, probs[j], scores[j], self.config, self.ood)
                | findings[j].flags,
                heatmap=Heatmap.from_grid(grids[j], scan.shape) if grids is not None else None,
                cam_class=classes[j] if classes is not None else None,
                ood_score=scores[j],
                ood_threshold=self.ood.threshold if self.ood is not None else None,
                details=findings[j].details,
                quality=findings[j].quality,
                anatomy=findings[j].anatomy,
            )
            for j, fi in enumerate(idx)
        ]

    def _has_mirror(self) -> bool:
        return bool(getattr(self.model, "hflip_tta", False))

    def cam(self, scan: Scan, frame_index: int, class_index: int | str) -> np.ndarray:
        """One frame's CAM of ``class_index`` (index or name), (rows, cols) float32 in [0, 1]."""
        return self.heatmap(scan, frame_index, class_index).full()

    def heatmap(self, scan: Scan, frame_index: int, class_index: int | str) -> Heatmap:
        """:meth:`cam` at the model's resolution (to keep); another class reuses the forward."""
        check_scan(scan)
        (fi,) = frame_indices(scan, [frame_index])
        ci = self.class_index(class_index)
        with self.lock, inference_failures(self.device), self._cam_ready(), self._autocast():
            key = (id(scan.frames), fi)
            if self._cam_cache is None or self._cam_cache[0] != key:
                self._cam_cache = None
                cp = self._cam.forward(self._inputs(scan, [fi]))
                # keep the frames alive so the id in the key cannot be reused
                self._cam_cache = (key, scan.frames, cp)
            cp = self._cam_cache[2]
            grid = self._cam.cams(cp, [ci], retain_graph=True)[0].cpu().numpy()
        require_finite(None, grid[None], [fi])
        return Heatmap.from_grid(grid, scan.shape)

    def clear_cache(self) -> None:
        """Drop the graph kept for :meth:`cam` (a few MB)."""
        with self.lock:
            self._cam_cache = None
