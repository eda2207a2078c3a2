"""The one preprocessing implementation, shared by training and inference.

A frame (``uint8``, ``uint16`` or float, shape ``(rows, cols)``) becomes the model input in
three steps, recorded in the bundle's :class:`PreprocessConfig`:

1. :func:`to_float01` — intensities to float32 in [0, 1];
2. :func:`resize` — to ``cfg.size`` (MIRAGE: 512x512, aspect ratio not kept, bilinear with
   antialiasing when shrinking). The original geometry is not stored here: the CAM is mapped
   back onto the original ``(rows, cols)`` grid by :mod:`octviewer.core.cam`;
3. :func:`normalize` — per-image min-max to [0, 1] (MIRAGE) or mean/std.

Training applies its augmentations between :func:`resize` and :func:`normalize`.
torch is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from octviewer.core.model.config import PreprocessConfig
from octviewer.errors import AnalysisError

if TYPE_CHECKING:
    import torch

__all__ = [
    "normalize",
    "preprocess_frame",
    "preprocess_frames",
    "replace_nonfinite",
    "resize",
    "to_float01",
]

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")
_EPS = 1e-8

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, "torch.Tensor")


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray):
        raise AnalysisError(f"Internal error: expected an image array, got {type(frame).__name__}.")
    if frame.ndim != 2 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise AnalysisError(
            f"This image cannot be analysed: a B-scan must be a 2-D grayscale frame, "
            f"got an array of shape {frame.shape}."
        )


def to_float01(frame: np.ndarray) -> np.ndarray:
    """Intensities to float32 in [0, 1].

    ``uint8`` is divided by 255; ``uint16`` (and other unsigned integers) by the full range of
    the smallest common bit depth (8, 10, 12, 14 or 16 bits) that holds the frame's maximum, so
    12-bit data stored in 16-bit words is not crushed to black; signed integers and floats are
    min-max scaled, in float64 (so values near the float32 limits, e.g. +-3.4e38, do not
    overflow to NaN).

    Rule for non-finite pixels (NaN, +-Inf, only possible in float images): they take the
    frame's lowest finite value, i.e. they are treated as background and do not stretch the
    contrast; a frame without any finite pixel is blank (all 0). The readers apply the same
    rule when they open a float image and say so in the scan's notes (and refuse a file whose
    frame has no finite pixel at all), so what is shown is what is analysed.
    """
    _check_frame(frame)
    if frame.dtype == np.bool_:
        return frame.astype(np.float32)
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) * np.float32(1.0 / 255.0)
    if np.issubdtype(frame.dtype, np.unsignedinteger):
        peak = int(frame.max())
        bits = next((b for b in (8, 10, 12, 14, 16, 32, 64) if peak <= (1 << b) - 1), 64)
        return (frame.astype(np.float64) / float((1 << bits) - 1)).astype(np.float32)
    if np.issubdtype(frame.dtype, np.integer) or np.issubdtype(frame.dtype, np.floating):
        f = replace_nonfinite(frame.astype(np.float64, copy=True))
        if f is None:  # no finite pixel: a blank frame
            return np.zeros(frame.shape, np.float32)
        lo, hi = float(f.min()), float(f.max())
        if hi - lo <= _EPS:
            return np.zeros(f.shape, np.float32)
        return ((f - lo) / (hi - lo)).astype(np.float32)
    raise AnalysisError(f"This image cannot be analysed: unsupported pixel type {frame.dtype}.")


def replace_nonfinite(f: np.ndarray) -> np.ndarray | None:
    """NaN/Inf pixels of a float array set, in place, to its lowest finite value (the rule of
    :func:`to_float01`); returns the array, or None when no pixel is finite."""
    finite = np.isfinite(f)
    if finite.all():
        return f
    if not finite.any():
        return None
    f[~finite] = f[finite].min()
    return f


def _interp_kwargs(cfg: PreprocessConfig, src: tuple[int, int]) -> dict[str, Any]:
    mode = cfg.interpolation
    if mode not in _INTERPOLATIONS:
        raise AnalysisError(
            f"The model asks for an unknown resize method '{mode}'. "
            f"Use a model bundle made by this version of octviewer."
        )
    kw: dict[str, Any] = {"size": tuple(int(s) for s in cfg.size), "mode": mode}
    if mode in ("bilinear", "bicubic"):
        kw["align_corners"] = False
        # antialias only changes anything when shrinking: a proper low-pass, like PIL.
        kw["antialias"] = src[0] > cfg.size[0] or src[1] > cfg.size[1]
    return kw


def _resize_tensor(x: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """Resize a float tensor (N, 1, H, W) to ``cfg.size``; the single resize implementation."""
    import torch.nn.functional as F

    src = (int(x.shape[-2]), int(x.shape[-1]))
    if src == tuple(cfg.size):
        return x
    out = F.interpolate(x, **_interp_kwargs(cfg, src))
    if cfg.interpolation == "bicubic":
        out = out.clamp_(0.0, 1.0)
    return out


def resize(frame01: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Resize a float frame in [0, 1] to ``cfg.size`` (rows, cols); float32 (H, W)."""
    import torch

    _check_frame(frame01)
    x = torch.from_numpy(np.ascontiguousarray(frame01, dtype=np.float32))[None, None]
    return _resize_tensor(x, cfg)[0, 0].numpy()


def normalize(x: ArrayOrTensor, cfg: PreprocessConfig) -> ArrayOrTensor:
    """Per-image normalisation over the last two axes of ``x`` (..., H, W).

    ``minmax``: each image to [0, 1] (a constant image becomes all zeros); ``meanstd``:
    ``(x - mean) / std`` with the bundle's values. Works on NumPy arrays and torch tensors.
    """
    if cfg.normalization == "minmax":
        if isinstance(x, np.ndarray):
            lo = x.min(axis=(-2, -1), keepdims=True)
            hi = x.max(axis=(-2, -1), keepdims=True)
            span = hi - lo
            return np.where(span > _EPS, (x - lo) / np.maximum(span, _EPS), 0.0).astype(np.float32)
        lo = x.amin(dim=(-2, -1), keepdim=True)
        hi = x.amax(dim=(-2, -1), keepdim=True)
        span = hi - lo
        return ((x - lo) / span.clamp_min(_EPS)) * (span > _EPS)
    if cfg.normalization == "meanstd":
        std = cfg.std if cfg.std > 0 else 1.0
        out = (x - cfg.mean) / std
        return out.astype(np.float32) if isinstance(out, np.ndarray) else out
    raise AnalysisError(
        f"The model asks for an unknown normalisation '{cfg.normalization}'. "
        f"Use a model bundle made by this version of octviewer."
    )


def preprocess_frame(frame: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """One frame to the model input: float32 (1, H, W) = normalize(resize(to_float01))."""
    return normalize(resize(to_float01(frame), cfg), cfg)[np.newaxis].astype(np.float32)


def preprocess_frames(
    frames: np.ndarray | Sequence[np.ndarray], cfg: PreprocessConfig
) -> torch.Tensor:
    """Several frames (N, rows, cols) or a list of 2-D frames to a float32 tensor (N, 1, H, W).

    Same result as stacking :func:`preprocess_frame`, but resizes the batch in one call.
    """
    import torch

    items = list(frames) if not isinstance(frames, np.ndarray) or frames.ndim == 3 else [frames]
    if not items:
        raise AnalysisError("There is no frame to analyse.")
    scaled = [to_float01(f) for f in items]
    shapes = {s.shape for s in scaled}
    if len(shapes) == 1:
        x = torch.from_numpy(np.stack(scaled))[:, None]
        x = _resize_tensor(x, cfg)
    else:
        x = torch.cat([_resize_tensor(torch.from_numpy(s)[None, None], cfg) for s in scaled], dim=0)
    return normalize(x.contiguous(), cfg).float()
