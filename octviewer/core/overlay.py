"""Heatmap colouring and blending of a CAM onto a B-scan, with NumPy lookup tables only.

No matplotlib at run time: ``inferno`` and ``viridis`` are stored as every 5th entry of
matplotlib's 256-entry tables (CC0, by Nathaniel Smith and Stéfan van der Walt) and linearly
interpolated back to 256 entries (at most 1.2/255 off the originals); ``jet`` is rebuilt from
its piecewise-linear definition. The UI and the report use the same functions, so the window
and the PNG show identical colours.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from octviewer.errors import ReportError

COLORMAPS: tuple[str, ...] = ("inferno", "jet", "viridis")
DEFAULT_COLORMAP = "inferno"
DEFAULT_OPACITY = 0.45

# Entries 0, 5, 10, ..., 255 of matplotlib's tables, as RGB hex triplets.
_SAMPLED_STEP = 5
_SAMPLED = {
    "inferno": (
        "00000402020c0504170a072210092d160b391e0c45260c512f0a5b380962400a67490b6a510e6c59106e61136e69166e"
        "71196e781c6d801f6c88226a902568982766a02a63a82e5fb0315bb73557bf3952c63d4dcc4248d34743d94d3ddf5337"
        "e45a31e9612bed6925f1711ff47918f78212f98b0bfa9407fb9d07fca60cfcb014fbba1ffac42af8cd37f6d746f4e156"
        "f2ea69f2f27df5f992fcffa4"
    ),
    "viridis": (
        "44015446085c471063481769481d6f482475472a7a46307e453781433d844142873f48893d4e8a3a538b38598c355e8d"
        "33638d31688e2e6d8e2c718e2a768e297b8e27808e25848e23898e218e8d20928c1f978b1e9c891fa18821a58524aa83"
        "28ae802eb37c35b7793dbc7446c06f50c46a5ac86465cb5e70cf577cd25089d54895d840a2da37b0dd2fbddf26cae11f"
        "d8e219e5e419f1e51dfde725"
    ),
}

# matplotlib's "jet" segment data: (x, value) breakpoints per channel.
_JET = {
    "r": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "g": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "b": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}


@cache
def lut(colormap: str) -> np.ndarray:
    """The (256, 3) uint8 lookup table of ``colormap`` (read-only)."""
    name = colormap.lower()
    if name in _SAMPLED:
        raw = bytes.fromhex(_SAMPLED[name])
        samples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.float64)
        xs = np.arange(samples.shape[0]) * _SAMPLED_STEP
        table = np.stack([np.interp(np.arange(256), xs, samples[:, k]) for k in range(3)], axis=1)
    elif name == "jet":
        x = np.linspace(0.0, 1.0, 256)
        table = np.stack(
            [np.interp(x, *zip(*_JET[ch], strict=True)) * 255.0 for ch in "rgb"], axis=1
        )
    else:
        raise ReportError(
            f"Unknown heatmap colour scheme '{colormap}'. Choose one of: {', '.join(COLORMAPS)}."
        )
    out = np.clip(table.round(), 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def _cam_to_index(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam)
    if cam.ndim != 2:
        raise ReportError(f"The attention map must be a 2-D image, got shape {cam.shape}.")
    c = np.nan_to_num(cam.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(c, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def colorize(cam: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Colour a CAM (2-D, values in [0, 1]; NaN counts as 0, values outside are clipped).

    Returns ``(H, W, 4)`` uint8 RGBA with alpha 255 everywhere; the caller chooses how to
    blend it (see :func:`blend`).
    """
    rgb = lut(colormap)[_cam_to_index(cam)]
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def _resize_cam(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map to ``shape`` (rows, cols) with Pillow."""
    from PIL import Image

    img = Image.fromarray(np.asarray(cam, np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), np.float32)


def blend(
    frame_u8: np.ndarray,
    cam: np.ndarray,
    colormap: str = DEFAULT_COLORMAP,
    opacity: float = DEFAULT_OPACITY,
) -> np.ndarray:
    """The frame with the coloured CAM laid over it: ``(1 - opacity) * frame + opacity * colour``.

    ``frame_u8`` is ``(H, W)`` grayscale or ``(H, W, 3)`` RGB uint8. A CAM of another size is
    resized (bilinear) onto the frame grid. ``opacity`` is clipped to [0, 1]. Returns
    ``(H, W, 3)`` uint8.
    """
    frame = np.asarray(frame_u8)
    if frame.dtype != np.uint8:
        raise ReportError(f"The B-scan must be 8-bit for blending, got {frame.dtype}.")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise ReportError(f"The B-scan must be grayscale or RGB, got shape {frame.shape}.")
    cam = np.asarray(cam)
    if cam.ndim == 2 and cam.shape != frame.shape[:2]:
        cam = _resize_cam(cam, frame.shape[:2])
    color = lut(colormap)[_cam_to_index(cam)]
    a = float(np.clip(opacity if np.isfinite(opacity) else 0.0, 0.0, 1.0))
    out = frame.astype(np.float32) * (1.0 - a) + color.astype(np.float32) * a
    return (out + 0.5).astype(np.uint8)
