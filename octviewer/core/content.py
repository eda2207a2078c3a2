"""Is this a B-scan at all? A content check from the pixels, the same for every reader.

An OCT B-scan is a cross-section: a dark background (vitreous above, fading signal below) with a
bright tissue band whose layers run across the width. An en-face image (infrared / SLO, OCT
angiography, fundus or colour photograph, anterior-segment photograph) looks down on the eye:
a mid-grey field with dark vessels, or a network of thin bright vessels, with no "up" or "down".

Each frame is shrunk to a 128 x 128 grid (box filter; white padding such as Kermany's rotation
fill is masked out), stretched to its 1st-99th percentile, and three features are measured:

``skew``
    Skewness of the intensities. B-scans are mostly dark with a bright tissue band: strongly
    positive (0.97 at the lowest over Kermany, 0.94 on optic-nerve-head scans). SLO / IR / fundus
    photographs are a mid-grey field with dark vessels: near zero or negative (0.73 at the most
    on the real negatives; OCT angiography, bright vessels on black, reaches 1.2).
``polarity``
    Balance of dark-to-bright against bright-to-dark steps going down the image (cube-weighted,
    so strong edges count). The surface of the retina under the dark vitreous is a strong
    dark-to-bright step, while B-scans fade out slowly below: strongly one-sided. An en-face
    picture has no preferred direction: near 0. The absolute value is used, so an upside-down
    B-scan still counts as a B-scan (the model's out-of-distribution score handles it).
``lateral``
    Share of the variance kept by a horizontal box filter 1/8 of the width long. Layers continue
    sideways and survive it; speckle-free capillary networks (OCT angiography) and noise do not.

Each feature is turned into a margin, ``(value - threshold) / scale``, and the frame is a B-scan
when every margin is positive, for the whole frame and (``skew`` and ``lateral`` only) for its
left and right halves: a half of a B-scan is still a B-scan, while a screen export that puts an
SLO beside the B-scan fails on the SLO's half (kind ``"composite"``). Polarity is not asked of
the halves: the nasal half of a healthy retina has a faint surface under a bright RPE (0.07 on
Kermany). ``score`` is the smallest margin (the weakest evidence), so ``score > 0`` means B-scan,
and ``reason`` names the feature that decided. Thresholds sit between
the lowest value over the 648 Kermany images (and the other B-scans of the development set:
optic-nerve-head, Bioptigen, Cirrus, EDI, Topcon, Spectralis ``.vol``) and the highest over the
real en-face negatives; ``benchmarks/bench_content_check.py`` reproduces the figures.

Limits (by construction):

- A blank or nearly constant frame, or one under 32 pixels on a side, cannot be judged: it is
  *not* treated as a B-scan (kind ``"blank"`` / ``"too small"``), so it never gets a class.
- It checks "cross-section of layered tissue", not "retina": an anterior-segment OCT, a skin
  OCT or an ultrasound B-mode image will pass. It says nothing about device, region or quality:
  that is the model's out-of-distribution score.
- A B-scan export with a small SLO inset in a corner can pass (the inset does not fill a half);
  an SLO stacked above a B-scan is rejected as "en-face", not named a composite.
- A B-scan cropped tightly to the tissue (no dark background), or shown inverted (dark tissue
  on white), loses its skew and is rejected. Colour and DICOM metadata stay as further evidence (:mod:`octviewer.core.io`).

Cost: a few milliseconds per frame (Pillow resize plus NumPy on 16 k pixels); only numpy and
Pillow are used, so the check runs inside every reader's ``load``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "GRID",
    "RULES",
    "ContentVerdict",
    "box_mean",
    "check_frame",
    "check_frames",
    "sample_indices",
    "touching_border",
]

GRID = 128  #: frames are judged on a GRID x GRID copy
MIN_SIDE = 32  #: smaller frames cannot be judged
BLANK_RANGE = 1e-3  #: (p99 - p1) / full range under which a frame counts as blank
PAD_BLOCK = 0.5  #: a grid cell is padding when over half of its pixels are at the maximum
COMPOSITE_MARGIN = 0.5  #: a rejected frame is a "composite" when one half clearly is a B-scan


@dataclass(frozen=True)
class Rule:
    """One feature's threshold: margin = (value - threshold) / scale; > 0 speaks for B-scan."""

    feature: str
    threshold: float
    scale: float
    fails: str  # why a frame failing this rule is not a B-scan, in plain words


RULES: tuple[Rule, ...] = (
    Rule(
        "skew",
        0.55,
        0.40,
        "its brightness is spread like an en-face picture (a grey field with dark vessels), "
        "not like a B-scan (a dark background around a bright tissue band)",
    ),
    Rule(
        "polarity",
        0.12,
        0.10,
        "it has no top and bottom (no tissue surface under a dark background), like an "
        "en-face picture looked at from the front",
    ),
    Rule(
        "lateral",
        0.45,
        0.15,
        "its structure does not run sideways as retinal layers do (a fine network or texture, "
        "as in OCT angiography)",
    ),
)


@dataclass(frozen=True)
class ContentVerdict:
    """What the pixels show. ``score`` > 0 means B-scan; its size is the weakest margin."""

    is_bscan: bool
    kind: str  # "B-scan", "en-face", "composite", "blank", "too small"
    score: float
    reason: str
    features: dict[str, float] = field(default_factory=dict)


def _grid(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | str:
    """(GRID x GRID image stretched to [0, 1], padding mask) or why the frame cannot be judged."""
    f = np.asarray(frame)
    if f.ndim == 3:  # colour: judge the luminance
        f = f[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if f.ndim != 2 or f.size == 0:
        return "too small"
    if min(f.shape) < MIN_SIDE:  # one single value is blank at any size (the loader relies on it)
        return "blank" if f.min() == f.max() else "too small"
    f = f.astype(np.float32, copy=False)
    if not np.isfinite(f).all():
        f = np.nan_to_num(f, posinf=0.0, neginf=0.0)
    top = float(f.max())
    span = top - float(f.min())
    if span <= 0:
        return "blank"
    near_max = (f >= top - 0.03 * span).astype(np.float32)
    img = np.asarray(Image.fromarray(f).resize((GRID, GRID), Image.Resampling.BOX))
    pad = np.asarray(Image.fromarray(near_max).resize((GRID, GRID), Image.Resampling.BOX))
    pad = touching_border(pad > PAD_BLOCK)
    keep = img[~pad] if (~pad).sum() > GRID * GRID // 8 else img.ravel()
    lo, hi = np.percentile(keep, [1, 99])
    if hi - lo <= BLANK_RANGE * span:
        return "blank"
    img = np.clip((img - lo) / (hi - lo), 0.0, 1.0, dtype=np.float32)
    # fill padding with the background so its border makes no edge
    background = float(np.clip((np.percentile(keep, 5) - lo) / (hi - lo), 0.0, 1.0))
    return np.where(pad, np.float32(background), img), pad


def touching_border(mask: np.ndarray) -> np.ndarray:
    """The part of ``mask`` connected (4-neighbours) to the image border: padding, not tissue."""
    seed = np.zeros_like(mask)
    seed[[0, -1], :] = mask[[0, -1], :]
    seed[:, [0, -1]] = mask[:, [0, -1]]
    for _ in range(sum(mask.shape)):
        grown = seed.copy()
        grown[1:] |= seed[:-1]
        grown[:-1] |= seed[1:]
        grown[:, 1:] |= seed[:, :-1]
        grown[:, :-1] |= seed[:, 1:]
        grown &= mask
        if np.array_equal(grown, seed):
            break
        seed = grown
    return seed


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(k):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def box_mean(a: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Running mean of ``length`` along ``axis`` (edges repeated), same shape as ``a``."""
    width = [(0, 0), (0, 0)]
    width[axis] = (length // 2 + 1, length - length // 2 - 1)
    c = np.cumsum(np.pad(a, width, mode="edge"), axis=axis)
    n = a.shape[axis]
    if axis == 0:
        return (c[length:] - c[:-length])[:n] / length
    return (c[:, length:] - c[:, :-length])[:, :n] / length


def _skew(img: np.ndarray, valid: np.ndarray) -> float:
    v = img[valid]
    centred = v - v.mean()
    std = float(centred.std())
    return float((centred * centred * centred).mean() / std**3) if std > 0 else 0.0


def _polarity(img: np.ndarray, valid: np.ndarray) -> float:
    smooth = box_mean(box_mean(img, 3, 0), 3, 1)
    step = np.zeros_like(smooth)
    step[2:-2] = smooth[4:] - smooth[:-4]  # brighter below = positive
    inner = valid.copy()
    inner[:2] = inner[-2:] = False
    d = step[inner]
    pos, neg = np.maximum(d, 0), np.maximum(-d, 0)
    up, down = float((pos * pos * pos).sum()), float((neg * neg * neg).sum())
    return abs(up - down) / (up + down) if up + down > 0 else 0.0


def _lateral(img: np.ndarray, valid: np.ndarray) -> float:
    zero_mean = img - img[valid].mean()
    lateral_part = box_mean(zero_mean, GRID // 8, 1)[valid]
    total = float((zero_mean[valid] ** 2).mean())
    return float((lateral_part**2).mean() / total) if total > 0 else 0.0


def features(img: np.ndarray, pad: np.ndarray) -> dict[str, float]:
    """The features of a GRID x GRID frame (see the module docstring): ``skew``, ``polarity``,
    ``lateral`` of the whole frame, then ``left_*`` and ``right_*`` of each half (a half that is
    mostly padding is left out)."""
    valid = ~_dilate(pad, 3)
    out: dict[str, float] = {}
    for prefix, part in (("", np.s_[:, :]), ("left_", np.s_[:, : GRID // 2])):
        if prefix and valid[part].mean() < 0.25:
            continue
        out[prefix + "skew"] = _skew(img[part], valid[part])
        out[prefix + "polarity"] = _polarity(img[part], valid[part])
        out[prefix + "lateral"] = _lateral(img[part], valid[part])
    right = np.s_[:, GRID // 2 :]
    if valid[right].mean() >= 0.25:
        out["right_skew"] = _skew(img[right], valid[right])
        out["right_polarity"] = _polarity(img[right], valid[right])
        out["right_lateral"] = _lateral(img[right], valid[right])
    return out


def _margins(feats: dict[str, float], prefix: str = "") -> list[tuple[float, Rule]]:
    return [((feats[prefix + r.feature] - r.threshold) / r.scale, r) for r in RULES]


def check_frame(frame: np.ndarray) -> ContentVerdict:
    """Judge one frame (2-D grey, or rows x cols x 3 colour, any dtype)."""
    prepared = _grid(frame)
    if isinstance(prepared, str):
        why = (
            "the image is blank (nearly one intensity): there is nothing to assess"
            if prepared == "blank"
            else f"the image is under {MIN_SIDE} pixels on a side: too small to tell what it shows"
        )
        return ContentVerdict(False, prepared, -1.0, why)
    feats = features(*prepared)
    whole = _margins(feats)
    sides = {s: _margins(feats, s + "_") for s in ("left", "right") if s + "_skew" in feats}
    # each half must look like a B-scan too (a screen export puts an SLO beside the B-scan);
    # not its polarity: the nasal half of a healthy retina has a faint surface, a bright RPE
    halves = [m for ms in sides.values() for m in ms if m[1].feature != "polarity"]
    score = float(min(m for m, _ in whole + halves))
    if score > 0:
        reason = "dark background with a bright, laterally layered band: looks like an OCT B-scan"
        return ContentVerdict(True, "B-scan", score, reason, feats)
    good = [s for s, ms in sides.items() if min(m for m, _ in ms) > COMPOSITE_MARGIN]
    if good:
        reason = (  # never "a composite": a single photograph can have one B-scan-like half
            f"not an OCT B-scan as a whole: only its {good[0]} side looks like one; if this is "
            "a screen export with a B-scan beside another picture, open the B-scan itself"
        )
        return ContentVerdict(False, "composite", score, reason, feats)
    rule = min(whole if min(m for m, _ in whole) <= 0 else halves, key=lambda m: m[0])[1]
    return ContentVerdict(False, "en-face", score, f"not an OCT B-scan: {rule.fails}", feats)


def sample_indices(n_frames: int, k: int = 3) -> list[int]:
    """Up to ``k`` representative frames of a volume: spread over its middle (edges of a volume
    are often the noisiest B-scans)."""
    if n_frames <= k:
        return list(range(n_frames))
    return sorted({round(n_frames * (i + 1) / (k + 1)) for i in range(k)})


def check_frames(frames: np.ndarray | Sequence[np.ndarray], k: int = 3) -> ContentVerdict:
    """Judge a scan from up to ``k`` representative frames: a B-scan when most of them are.

    The returned verdict is the median-scored one among the sampled frames, so its reason and
    features belong to a real frame.
    """
    n = len(frames)
    if n == 0:
        return ContentVerdict(False, "blank", -1.0, "the scan holds no image")
    verdicts = [check_frame(frames[i]) for i in sample_indices(n, k)]
    ranked = sorted(verdicts, key=lambda v: v.score)
    median = ranked[len(ranked) // 2]
    logger.debug("content check: %s (score %.2f)", median.kind, median.score)
    return median
