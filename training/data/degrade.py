"""Degraded B-scans made from clean ones, to measure what the image-quality check catches.

Each generator takes a display-ready 2-D B-scan (any dtype; brighter = more reflective), a
``strength`` in (0, 1] and a seeded :class:`numpy.random.Generator`, and returns a float32
frame on the input's intensity scale (clipped to the input's range). The same seed gives the
same frame. Pure NumPy; used by ``benchmarks/bench_quality.py`` and ``tests/test_quality.py``.

Kinds (``KINDS``):

``weak``
    Weak signal: tissue pulled toward the noise floor, ``bg + (1 - strength) * (img - bg)``,
    plus speckle-like noise (a shifted exponential, std 6 % of the range).
``cut_top`` / ``cut_bottom``
    The retina crosses the top (bottom) edge: the frame is shifted so that its tissue band's
    top (bottom) lies ``strength`` x the band's height beyond the edge; the uncovered side is
    filled with background noise.
``blink``
    Missing A-scans: one contiguous band of columns, 10 % + 40 % x ``strength`` of the width,
    replaced by background noise (a blink or lost tracking).
``blink_bands``
    Several narrow bands (2 + 6 x ``strength`` bands of 2-4 % of the width each).
``defocus``
    Blur: a separable box filter ``1 + 2 x round(6 x strength)`` pixels wide, twice.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from octviewer.core.quality import padding_mask

__all__ = ["KINDS", "degrade"]

NOISE_STD = 0.06  #: speckle-like noise, as a share of the input's intensity range


def _as_float(img: np.ndarray) -> tuple[np.ndarray, float, float]:
    f = np.asarray(img, dtype=np.float32)
    return f, float(f.min()), float(f.max())


def _keep_padding(out: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``out`` with the frame's padding (white rotation fill) as it was: the device degrades
    the acquisition, not the export's padding."""
    pad = padding_mask(f)
    out[pad] = f[pad]
    return out


def _background(f: np.ndarray) -> float:
    """The frame's dark level: the 10th percentile (most of a B-scan is background)."""
    return float(np.percentile(f, 10))


def _noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Zero-mean speckle-like noise: an exponential (fully developed speckle's intensity)."""
    return (rng.exponential(std, size=shape) - std).astype(np.float32)


def _background_noise(
    f: np.ndarray, rng: np.random.Generator, shape: tuple[int, ...]
) -> np.ndarray:
    """Background to fill a region: the frame's dark level with the noise of its dark pixels."""
    dark = f[f <= np.percentile(f, 30)]
    level, std = float(np.median(dark)), max(float(dark.std()), 1e-6)
    return level + std + _noise(rng, shape, std)


def _tissue_rows(f: np.ndarray) -> tuple[int, int]:
    """First and last row of the bright tissue band (rows whose mean is over half the peak)."""
    keep = ~padding_mask(f)
    counts = keep.sum(axis=1)
    fill = float(np.percentile(f, 10))
    profile = np.where(counts > 0, (f * keep).sum(axis=1) / np.maximum(counts, 1), fill)
    bg = float(np.percentile(profile, 10))
    rows = np.flatnonzero(profile - bg > 0.35 * (profile.max() - bg))
    return (int(rows[0]), int(rows[-1])) if rows.size else (0, f.shape[0] - 1)


def weak(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    f, lo, hi = _as_float(img)
    bg = _background(f)
    out = bg + (1.0 - strength) * (f - bg) + _noise(rng, f.shape, NOISE_STD * (hi - lo))
    return np.clip(_keep_padding(out, f), lo, hi)


def _shift(f: np.ndarray, dy: int, rng: np.random.Generator) -> np.ndarray:
    """Move the content ``dy`` rows down (up when negative); fill the gap with background."""
    out = np.empty_like(f)
    n = f.shape[0]
    dy = max(-n + 1, min(n - 1, dy))
    if dy >= 0:
        out[dy:] = f[: n - dy]
        out[:dy] = _background_noise(f, rng, (dy, f.shape[1]))
    else:
        out[: n + dy] = f[-dy:]
        out[n + dy :] = _background_noise(f, rng, (-dy, f.shape[1]))
    return out


def cut_top(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    f, lo, hi = _as_float(img)
    top, bottom = _tissue_rows(f)
    dy = -(top + round(strength * (bottom - top)))
    return np.clip(_shift(f, dy, rng), lo, hi)


def cut_bottom(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    f, lo, hi = _as_float(img)
    top, bottom = _tissue_rows(f)
    dy = f.shape[0] - 1 - bottom + round(strength * (bottom - top))
    return np.clip(_shift(f, dy, rng), lo, hi)


def blink(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    f, lo, hi = _as_float(img)
    out = f.copy()
    w = f.shape[1]
    width = max(1, round((0.10 + 0.40 * strength) * w))
    start = int(rng.integers(0, w - width + 1))
    out[:, start : start + width] = _background_noise(f, rng, (f.shape[0], width))
    return np.clip(_keep_padding(out, f), lo, hi)


def blink_bands(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    f, lo, hi = _as_float(img)
    out = f.copy()
    w = f.shape[1]
    for _ in range(2 + round(6 * strength)):
        width = max(1, round(rng.uniform(0.02, 0.04) * w))
        start = int(rng.integers(0, w - width + 1))
        out[:, start : start + width] = _background_noise(f, rng, (f.shape[0], width))
    return np.clip(_keep_padding(out, f), lo, hi)


def _box(a: np.ndarray, length: int, axis: int) -> np.ndarray:
    if length <= 1:
        return a
    pad = [(0, 0), (0, 0)]
    pad[axis] = (length // 2 + 1, length - length // 2 - 1)
    c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.float64)
    n = a.shape[axis]
    out = (c[length:] - c[:-length])[:n] if axis == 0 else (c[:, length:] - c[:, :-length])[:, :n]
    return (out / length).astype(np.float32)


def defocus(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    del rng  # deterministic
    f, lo, hi = _as_float(img)
    k = 1 + 2 * round(6 * strength)
    out = f
    for _ in range(2):
        out = _box(_box(out, k, 0), k, 1)
    return np.clip(_keep_padding(out, f), lo, hi)


Degrader = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

KINDS: dict[str, Degrader] = {
    "weak": weak,
    "cut_top": cut_top,
    "cut_bottom": cut_bottom,
    "blink": blink,
    "blink_bands": blink_bands,
    "defocus": defocus,
}


def degrade(img: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """``img`` degraded by ``kind`` (a key of ``KINDS``) at ``strength`` in (0, 1]."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation {kind!r}; one of {', '.join(KINDS)}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return KINDS[kind](np.asarray(img), float(strength), np.random.default_rng(seed))
