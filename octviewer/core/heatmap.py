"""Attention maps kept at the model's resolution and drawn at the frame's.

A Grad-CAM is computed on the network's grid (7 x 7 for the default ResNet ensemble at 224 px,
16 x 16 for MIRAGE at 512 px). :class:`Heatmap` keeps that grid (float32, 196 bytes for 7 x 7)
and the shape of the frame it belongs to, and upsamples on demand (:meth:`Heatmap.full`): the
window's overlay, the report and the disease map draw from the same grid with the same
function, so they show what a full-resolution float32 map showed, without 1 MB per B-scan
(512 x 496 float32) held for every scan and every class asked for.

Why float32 and not 8 bits: measured on the four Kermany B-scans of ``tests/data`` with the
default model, the float32 grid blends to the RGB of the full-resolution float32 map of the
previous versions except on at most 4 pixels of a frame (by at most 3 levels, jet at full
opacity: a value on a rounding edge of the colour index), iso-lines included; an 8-bit grid
changed 12,000-36,000 pixels by up to 5 levels and moved iso-lines (148 levels on a line
pixel). The 147 bytes an 8-bit 7 x 7 grid would save are nothing beside the rest of an entry.
``tests/test_heatmap.py`` holds the tolerance.

Upsampling is NumPy only (no torch): separable bilinear with half-pixel centres, the
formula of ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps from ``n_in`` to ``n_out`` samples, half-pixel centres, edges clamped:
    indices ``i0``, ``i1`` and weights ``w0``, ``w1`` (float32 columns, read-only)."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0).astype(np.float32)[:, None]
    w0 = (1.0 - (src - i0)).astype(np.float32)[:, None]
    for a in (i0, i1, w0, w1):
        a.setflags(write=False)
    return i0, i1, w0, w1


def _lerp_rows(a: np.ndarray, n_out: int) -> np.ndarray:
    """Rows of ``a`` (n_in, k) resampled to ``n_out`` rows (each from two neighbours)."""
    i0, i1, w0, w1 = _taps(a.shape[0], n_out)
    out = a[i0] * w0
    out += a[i1] * w1
    return out


def resize_bilinear(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``grid`` (h, w) resized to ``shape`` (rows, cols), bilinear, float32."""
    g = np.asarray(grid, np.float32)
    rows, cols = (int(s) for s in shape)
    across = _lerp_rows(g.T, cols).T  # (h, cols): small
    return _lerp_rows(np.ascontiguousarray(across), rows)


def upsample_cam(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A coarse CAM grid (gh, gw) to the original frame grid (rows, cols), smooth, in [0, 1].

    The model input is the whole frame resized (aspect ratio not kept), so the grid spans the
    whole frame. NaN and negative values count as 0; bilinear (half-pixel centres); divided by
    its maximum so an all-zero map stays all zero.
    """
    g = np.nan_to_num(np.asarray(grid, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    g = np.maximum(g, 0.0)
    peak = float(g.max()) if g.size else 0.0
    if peak <= 0.0:
        return np.zeros(tuple(int(s) for s in shape), np.float32)
    out = resize_bilinear(g / peak, shape)
    np.clip(out, 0.0, 1.0, out=out)
    m = float(out.max())
    if m > 0:
        np.divide(out, np.float32(m), out=out)
    return out


@dataclass(frozen=True, eq=False)
class Heatmap:
    """An attention map for one frame: the network's grid, upsampled only when drawn.

    ``grid`` is the CAM as the network computed it (gh, gw) float32; ``shape`` the frame's
    (rows, cols). :meth:`full` gives the map on the frame grid, float32 in [0, 1] (what
    ``FrameResult.cam`` always meant). A map that is already on the frame grid
    (:meth:`of_array`: a caller's own array) is kept as given and :meth:`full` returns it.
    """

    grid: np.ndarray
    shape: tuple[int, int]
    dense: bool = False  # ``grid`` is the map on the frame grid itself, returned as is
    _profile: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_grid(cls, grid: np.ndarray, shape: tuple[int, int]) -> Heatmap:
        """The network's CAM grid of a frame of ``shape``."""
        g = np.array(grid, dtype=np.float32)  # a copy: the caller's buffer may be reused
        if g.ndim != 2:
            raise ValueError(f"a CAM grid must be 2-D, got shape {g.shape}")
        g.setflags(write=False)
        return cls(g, (int(shape[0]), int(shape[1])))

    @classmethod
    def of_array(cls, cam: np.ndarray) -> Heatmap:
        """A map already on the frame grid (rows, cols), values in [0, 1]: kept as given."""
        a = np.asarray(cam)
        if a.ndim != 2:
            raise ValueError(f"an attention map must be 2-D, got shape {a.shape}")
        return cls(a, (int(a.shape[0]), int(a.shape[1])), dense=True)

    @classmethod
    def coerce(cls, cam: np.ndarray | Heatmap | None) -> Heatmap | None:
        """``cam`` as a Heatmap: a Heatmap as is, an array through :meth:`of_array`."""
        if cam is None or isinstance(cam, Heatmap):
            return cam
        return cls.of_array(cam)

    def full(self) -> np.ndarray:
        """The map on the frame grid: (rows, cols) float32 in [0, 1] (a new array each call,
        except for a map given on the frame grid)."""
        if self.dense:
            return self.grid
        return upsample_cam(self.grid, self.shape)

    def resized(self, shape: tuple[int, int]) -> np.ndarray:
        """The map on another grid (e.g. a downsampled frame), float32 in [0, 1]."""
        if tuple(shape) == self.shape:
            return self.full()
        if self.dense:
            return np.clip(resize_bilinear(self.grid, shape), 0.0, 1.0)
        return upsample_cam(self.grid, shape)

    def column_profile(self, n: int) -> np.ndarray:
        """Per-A-scan attention: the maximum over depth of each column of :meth:`full`,
        resampled to ``n`` values (first column first); computed once per ``n``."""
        got = self._profile.get(n)
        if got is None:
            c = np.nan_to_num(np.asarray(self.full(), np.float32), nan=0.0)
            col = np.clip(c.max(axis=0), 0.0, 1.0) if c.size else np.zeros(1, np.float32)
            xs = np.linspace(0.0, len(col) - 1.0, n)
            got = np.interp(xs, np.arange(len(col)), col).astype(np.float32)
            got.setflags(write=False)
            self._profile[n] = got
        return got

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data held (the grid; a dense map's full array)."""
        return int(self.grid.nbytes) + sum(int(p.nbytes) for p in self._profile.values())
