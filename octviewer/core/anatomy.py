"""Macula or optic nerve head? An anatomy check of one B-scan, from the pixels.

A B-scan through the optic nerve head (ONH) shows the RPE / Bruch's membrane band ending at
the neural canal opening, and between its two ends the inner surface of the retina dips into
the cup, *below* the level of the RPE. A macular B-scan keeps its RPE across the width; its
foveal pit stays above the RPE, and so do cysts, holes, PEDs and CNV (they lift or break the
RPE, they do not take the surface below it).

Method (a hand-made rule, two features; ``docs/ANATOMY.md`` has the figures):

1. The frame is shrunk to 128 columns x 192 rows (box filter; white padding touching the border,
   such as Kermany's rotation wedges, is filled with the background), stretched to its 1st-99th
   percentile and smoothed (5 columns x 3 rows).
2. Per column: the *surface* is the first row of 5 rows in a row above ``bg + 0.35 (fg - bg)``
   (30th / 95th percentiles); the *RPE* is the deepest row below it at 80 % of the column's
   brightest value; its *strength* is the local ridge (brighter than 4 rows above and below).
3. Columns with a strong ridge, a RPE at least 0.3 retinal thicknesses under the surface and
   in line with their neighbours are linked into chains (5 % of the width or more); a quadratic
   is fitted to the chains, and the chain furthest off it is dropped while it is more than 0.25
   thicknesses off (up to 3 times, keeping two). The fit is the *RPE level*.
4. ``cup``: the deepest point of the surface under the RPE level, in retinal thicknesses (the
   median surface-to-RPE distance), over the columns between the first and the last RPE chain
   column (no extrapolation). Macula: about -0.7 (pit above RPE); ONH: about +0.9.
   ``gap``: the longest run of columns inside the frame without a kept RPE chain, as a share
   of the width.

``score = (cup - 0.68) / 0.15``, further capped by ``(gap - 0.08) / 0.08`` (a surface under the
RPE level must lie in an RPE gap); ``is_optic_disc`` when ``score > 0``. The threshold 0.68 sits
between the highest macular value (0.52, one Kermany CNV with a deep central excavation) and the
lowest ONH value (0.83) of the development set. Measured (``benchmarks/bench_anatomy.py``): 9 of 9
Spectralis radial ONH B-scans flagged (also flipped, rescaled, rotated 3 degrees, gamma 1.6, bottom
cropped; not after gamma 0.6: 2 of 9, nor cropped 10 % a side: 6 of 9); 0 of 648 Kermany, 0 of 757 OCTDL, 0 of 85 OCTDL other findings, 0 of the other-device
and ``.vol`` macular B-scans.

Limits: it needs a cup. The Zeiss Cirrus ONH cube frame of the test data (a continuous RPE
under a thick nerve-fibre layer, no cup) and the peripapillary circle scan are *not* flagged;
a flat, shallow or tilted disc without an excavation will pass as macular, and so will an ONH
scan cropped to one side of the canal. A macular B-scan whose surface truly sinks under the RPE
level (a deep excavation, a staphyloma edge) could be flagged. An ONH scan brightened until the
nerve tissue saturates loses its RPE level and passes. Cost: median 4.5 ms per
512x496 frame, 7.7 ms at 1024x496 (numpy + Pillow only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from octviewer.core.content import box_mean, touching_border

__all__ = ["CUP_SCALE", "CUP_THRESHOLD", "GAP_MIN", "AnatomyVerdict", "check_anatomy"]

GW, GH = 128, 192  #: frames are judged on a GW x GH (columns x rows) copy
MIN_SIDE = 32  #: smaller frames cannot be judged
CUP_THRESHOLD = 0.68  #: surface depth under the RPE level, in retinal thicknesses
CUP_SCALE = 0.15  #: one unit of score
GAP_MIN = 0.08  #: the shortest RPE gap (share of the width) a cup must lie in
RIDGE = 4  #: rows above and below a bright line that must be darker


@dataclass(frozen=True)
class AnatomyVerdict:
    """``score`` > 0 speaks for an optic-nerve-head B-scan; its size is the evidence margin."""

    is_optic_disc: bool
    score: float
    reason: str
    features: dict[str, float] = field(default_factory=dict)


def _grid(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(GH x GW image in [0, 1] with padding filled, padding mask) or None when not judgeable."""
    f = np.asarray(frame)
    if f.ndim == 3:  # colour: judge the luminance
        f = f[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if f.ndim != 2 or min(f.shape) < MIN_SIDE:
        return None
    f = np.nan_to_num(f.astype(np.float32), posinf=0.0, neginf=0.0)
    top = float(f.max())
    span = top - float(f.min())
    if span <= 0:
        return None
    near_max = (f >= top - 0.03 * span).astype(np.float32)
    img = np.asarray(Image.fromarray(f).resize((GW, GH), Image.Resampling.BOX))
    pad = np.asarray(Image.fromarray(near_max).resize((GW, GH), Image.Resampling.BOX)) > 0.5
    pad = touching_border(pad)
    keep = img[~pad] if (~pad).sum() > GW * GH // 8 else img.ravel()
    lo, hi = np.percentile(keep, [1, 99])
    if hi - lo <= 1e-3 * span:
        return None
    img = np.clip((img - lo) / (hi - lo), 0.0, 1.0)
    background = float(np.clip((np.percentile(keep, 5) - lo) / (hi - lo), 0.0, 1.0))
    return np.where(pad, np.float32(background), img).astype(np.float32), pad


def _median_filter(a: np.ndarray, n: int = 9) -> np.ndarray:
    padded = np.pad(a, n // 2, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, n), axis=1)


def _chains(good: np.ndarray, rpe: np.ndarray, thick: float) -> list[np.ndarray]:
    """Runs of good columns whose RPE rows join up (gaps of up to 3 columns bridged)."""
    chains: list[list[int]] = []
    current: list[int] = []
    for c in np.flatnonzero(good):
        if current and (c - current[-1] > 3 or abs(rpe[c] - rpe[current[-1]]) > 0.15 * thick):
            chains.append(current)
            current = []
        current.append(int(c))
    if current:
        chains.append(current)
    return [np.array(ch) for ch in chains if len(ch) >= 0.05 * GW]


def _rpe_level(chains: list[np.ndarray], rpe: np.ndarray, thick: float) -> list[int]:
    """Indices of the chains that agree on one smooth RPE level (outliers dropped)."""
    keep = list(range(len(chains)))
    for _ in range(3):
        xs = np.concatenate([chains[i] for i in keep])
        fit = np.polyval(np.polyfit(xs, rpe[xs], 2), np.arange(GW))
        off = [float(np.median(np.abs(rpe[chains[i]] - fit[chains[i]]))) for i in keep]
        worst = int(np.argmax(off))
        if off[worst] <= 0.25 * thick or len(keep) <= 2:
            break
        keep.pop(worst)
    return keep


def _longest_inner_run(mask: np.ndarray) -> int:
    """The longest run of True that touches neither end (5 % margins) of ``mask``."""
    best, c, n = 0, 0, len(mask)
    while c < n:
        if not mask[c]:
            c += 1
            continue
        start = c
        while c < n and mask[c]:
            c += 1
        if start > 0.05 * n and c < 0.95 * n:
            best = max(best, c - start)
    return best


def features(frame: np.ndarray) -> dict[str, float] | None:
    """``cup``, ``gap``, ``thickness`` and ``rpe_cover`` of one frame (module docstring), or
    None when the frame cannot be judged (too small, blank)."""
    prepared = _grid(frame)
    if prepared is None:
        return None
    img, pad = prepared
    cols = np.arange(GW)
    valid_col = pad.mean(axis=0) < 0.5
    sm = box_mean(box_mean(img, 5, 1), 3, 0)
    bg, fg = np.percentile(sm, [30, 95])
    above = box_mean((sm > bg + 0.35 * (fg - bg)).astype(np.float32), 5, 0) > 0.99
    has = above.any(axis=0) & valid_col
    surf = np.where(has, np.maximum(above.argmax(axis=0) - 2, 0), GH - 1).astype(np.float64)
    k = RIDGE
    ridge = np.full_like(sm, -1.0)
    ridge[k:-k] = np.minimum(sm[k:-k] - sm[: -2 * k], sm[k:-k] - sm[2 * k :])
    below = np.arange(GH)[:, None] > surf[None, :] + 2
    bright = np.where(below, sm, -1.0)
    deepest = GH - 1 - (bright >= 0.8 * bright.max(axis=0))[::-1].argmax(axis=0)
    rpe = deepest.astype(np.float64)
    strength = np.array([ridge[max(d - k, 0) : d + 2, c].max() for c, d in enumerate(deepest)])
    ref = float(np.median(strength[has])) if has.any() else 0.0
    base = has & (strength >= 0.5 * ref) if ref > 0 else np.zeros(GW, bool)
    out = {"cup": -1.0, "gap": 0.0, "thickness": 0.0, "rpe_cover": 0.0}
    if base.sum() < 8:
        return out
    thick = max(float(np.median((rpe - surf)[base])), 2.0)
    smooth_rpe = _median_filter(rpe)
    good = base & (rpe - surf >= 0.3 * thick) & (np.abs(rpe - smooth_rpe) <= 0.2 * thick)
    chains = _chains(good, smooth_rpe, thick)
    if not chains or np.ptp(np.concatenate(chains)) < 0.3 * GW:
        return out | {"thickness": thick / GH}
    kept = [chains[i] for i in _rpe_level(chains, smooth_rpe, thick)]
    xs = np.concatenate(kept)
    level = np.polyval(np.polyfit(xs, smooth_rpe[xs], 2), cols)
    inside = has & (cols > max(xs.min(), 0.1 * GW)) & (cols < min(xs.max(), 0.9 * GW))
    on = np.zeros(GW, bool)
    on[xs] = True
    return {
        "cup": float(((surf - level) / thick)[inside].max()) if inside.any() else -1.0,
        "gap": _longest_inner_run(valid_col & ~on) / GW,
        "thickness": thick / GH,
        "rpe_cover": float(on[valid_col].mean()),
    }


def check_anatomy(frame: np.ndarray) -> AnatomyVerdict:
    """Judge one B-scan (2-D, any dtype, brighter = more reflective): macular or optic disc?"""
    feats = features(frame)
    if feats is None:
        return AnatomyVerdict(
            False,
            -1.0,
            "the image is blank or under 32 pixels on a side: its anatomy cannot be judged",
        )
    score = (feats["cup"] - CUP_THRESHOLD) / CUP_SCALE
    score = min(score, (feats["gap"] - GAP_MIN) / GAP_MIN)
    if score > 0:
        reason = (
            "the RPE band ends in a gap in the middle of the frame (neural canal opening) under "
            "a cup that dips below the RPE level: this looks like a B-scan through the optic "
            "nerve head"
        )
    elif feats["cup"] > CUP_THRESHOLD:
        reason = (
            "the surface dips below the RPE level but the RPE band has no clear gap there: "
            "not taken for an optic nerve head"
        )
    else:
        reason = (
            "the retinal surface stays above the RPE level across the frame (no cup through a "
            "neural canal opening): consistent with a macular B-scan"
        )
    return AnatomyVerdict(score > 0, float(score), reason, feats)
