"""Is this B-scan good enough to read? A device-independent image-quality check from the pixels.

Each frame is box-filtered to a 256 x 128 grid; Kermany's white rotation padding (near-maximum
regions touching the border) and constant columns at the left or right edge (an export's canvas
fill; a blink's A-scans still carry noise) are masked out, and exactly-minimum pixels (black
export padding) are not counted as background. Features and thresholds (``THRESHOLDS``; measured by
``benchmarks/bench_quality.py`` on 648 Kermany, 842 OCTDL and the Spectralis ``.vol`` frames):

``snr_db`` (WEAK_SIGNAL below 17 dB)
    20 log10 of the tissue signal (99th - 20th percentile of a 3 x 3-smoothed grid) over the
    noise (1.4826 x MAD of the grid minus its smoothed copy, in the darker half). Clean
    minimum 22.1 dB (Kermany), 27.3 (OCTDL), 34.8 (.vol). When it fires, no other pixel
    check is reported (under the noise floor edges and A-scans cannot be told apart).
``top_tissue_fraction`` / ``bottom_tissue_fraction`` (CUT_OFF_TOP over 0.30 / _BOTTOM over 0.40)
    Share of the width where tissue (over background + 40 % of the 99th percentile's rise)
    reaches the top / bottom 3 grid rows. Clean maxima 0.20 / 0.40 (one OCTDL scan whose RPE
    does reach the bottom edge is flagged).
``blank_ascan_fraction`` (MISSING_ASCANS over 0.12)
    Share of columns whose brightest 5 % stay under a quarter of the median column's: a
    blink or lost tracking. Clean maxima 0.10 (Kermany), 0.27 (one OCTDL scan with a dark,
    vignetted side; two OCTDL flags in 842).
DEVICE_INDEX: the device's own index under its minimum (``DEVICE_MINIMUMS``); NaN is ignored.

Limits: defocus (blur) is not detected (0 % caught, so no DEFOCUS problem); a weak signal is
caught only when the tissue is pulled to about a tenth of its contrast; a cut-off is missed where
a tilted retina crosses the edge over under 30 % of the width; a circular scan around the disc
whose retina rises to the top edge is refused as cut off. Frames under 32 px a side, or blank,
are acceptable with no figures (the content check refuses them). docs/QUALITY.md has the tables.

Cost: about 4 ms per frame (512x496 and 1024x496, one core); NumPy and Pillow only.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from octviewer.core.content import touching_border

logger = logging.getLogger(__name__)

__all__ = [
    "DEVICE_MINIMUMS",
    "THRESHOLDS",
    "QualityProblem",
    "QualityVerdict",
    "assess_quality",
    "padding_mask",
]

MIN_SIDE = 32  #: smaller frames are not judged (the content check refuses them)
GRID_W, GRID_H = 256, 128  #: frames are measured on a GRID_W x GRID_H box-filtered copy
PAD_LEVEL = 0.03  #: within 3 % of the range from the maximum (or exactly the minimum) = padding
PAD_SHARE = 0.2  #: a grid cell touching padding is padding when a fifth of it is near max
EDGE_ROWS = 3  #: grid rows (about 2.3 % of the height) that make the top / bottom edge band

#: Manufacturers' minimum of their own quality index, keyed by the index's name.
DEVICE_MINIMUMS: dict[str, float] = {"Spectralis Q": 15.0}

#: The pixel thresholds (see the module docstring and docs/QUALITY.md for where they come from).
THRESHOLDS: dict[str, float] = {
    "snr_db": 17.0,  # below: WEAK_SIGNAL (clean minimum 22.1 dB, Kermany)
    "top_tissue_fraction": 0.30,  # above: CUT_OFF_TOP (clean Kermany / OCTDL max 0.20)
    "bottom_tissue_fraction": 0.40,  # above: CUT_OFF_BOTTOM (clean max 0.40, OCTDL)
    "blank_ascan_fraction": 0.12,  # above: MISSING_ASCANS (clean Kermany max 0.10)
}
TISSUE_LEVEL = 0.4  #: tissue = over background + 40 % of (99th percentile - background)
BLANK_LEVEL = 0.25  #: an A-scan is blank when its brightest 5 % reach under 25 % of the median


class QualityProblem(str, enum.Enum):
    WEAK_SIGNAL = "signal too weak"
    CUT_OFF_TOP = "retina cut off at the top of the frame"
    CUT_OFF_BOTTOM = "retina cut off at the bottom of the frame"
    MISSING_ASCANS = "missing A-scans (blink or lost tracking)"
    DEVICE_INDEX = "device quality index below the manufacturer's minimum"


@dataclass(frozen=True)
class QualityVerdict:
    """Whether a frame is good enough to classify, what is wrong and the measured figures."""

    acceptable: bool
    problems: tuple[QualityProblem, ...]  # most serious first
    reason: str | None  # one plain sentence naming the first problem with its figure
    figures: dict[str, float] = field(default_factory=dict)
    device_index: float | None = None
    device_index_name: str | None = None
    device_minimum: float | None = None

    @property
    def summary(self) -> str:
        """Short text for a side panel or a report line, e.g. "Spectralis Q 27 (minimum 15) ·
        signal 21 dB · good" or "signal 3 dB · too low: signal too weak"."""
        parts: list[str] = []
        if self.device_index is not None and not math.isnan(self.device_index):
            name = self.device_index_name or "device index"
            text = f"{name} {self.device_index:.0f}"
            if self.device_minimum is not None:
                text += f" (minimum {self.device_minimum:.0f})"
            parts.append(text)
        if "snr_db" in self.figures:
            parts.append(f"signal {self.figures['snr_db']:.0f} dB")
        if self.acceptable:
            parts.append("good" if self.figures else "not measured")
        else:
            parts.append("too low: " + ", ".join(p.value for p in self.problems))
        return " · ".join(parts)


def padding_mask(frame: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Where ``frame`` is padding: near-maximum regions touching the border (Kermany's white
    rotation fill) and constant columns at the left / right edge (an export's canvas fill), on
    a grid of ``shape`` (rows, cols; default the frame's own shape)."""
    f = np.asarray(frame, dtype=np.float32)
    rows, cols = shape or f.shape
    top, span = float(f.max()), float(f.max() - f.min())
    near_max = (f >= top - PAD_LEVEL * span).astype(np.float32)
    # columns of one single value at the left or right edge: an export's canvas fill (black
    # or grey), not A-scans lost to a blink, which still carry the device's noise
    flat = f.max(axis=0) == f.min(axis=0)
    left = int(np.argmin(flat)) if not flat.all() else flat.size
    right = int(np.argmin(flat[::-1])) if not flat.all() else 0
    near_max[:, :left] = 1.0
    near_max[:, flat.size - right :] = 1.0
    if (rows, cols) != f.shape:
        near_max = np.asarray(Image.fromarray(near_max).resize((cols, rows), Image.Resampling.BOX))
    pad = touching_border(near_max > PAD_SHARE)
    if (rows, cols) != f.shape:  # a cell partly covered by padding is padding too
        pad = _dilate(pad)
    return pad


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _prepare(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(GRID_H x GRID_W float32 copy, padding mask), or None when the frame cannot be judged."""
    f = np.asarray(frame)
    if f.ndim != 2 or min(f.shape) < MIN_SIDE:
        return None
    f = f.astype(np.float32, copy=False)
    if not np.isfinite(f).all():
        f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
    if float(f.max()) - float(f.min()) <= 0:
        return None
    grid = np.asarray(Image.fromarray(f).resize((GRID_W, GRID_H), Image.Resampling.BOX))
    return grid, padding_mask(f, (GRID_H, GRID_W))


def _smooth_rows(a: np.ndarray) -> np.ndarray:
    """Mean of each pixel with its upper and lower neighbour (edges repeated)."""
    p = np.pad(a, ((1, 1), (0, 0)), mode="edge")
    return (p[:-2] + p[1:-1] + p[2:]) / 3.0


def measure(grid: np.ndarray, pad: np.ndarray) -> dict[str, float]:
    """The figures of a prepared frame (see the module docstring)."""
    valid = ~pad
    if valid.sum() < grid.size // 8:  # (almost) all padding: judge the whole grid
        valid = np.ones_like(pad)
    values = grid[valid]
    lowest = float(values.min())
    lit = values[values > lowest]  # black export padding (exactly the minimum) is not background
    base = lit if lit.size > values.size // 4 else values
    smooth = _smooth_rows(grid)
    smooth[:, 1:-1] = (smooth[:, :-2] + smooth[:, 1:-1] + smooth[:, 2:]) / 3.0
    background = float(np.percentile(base, 20))
    residual = (grid - smooth)[valid & (grid <= np.percentile(base, 50)) & (grid > lowest)]
    noise = (
        1.4826 * float(np.median(np.abs(residual - np.median(residual)))) if residual.size else 0
    )
    s_valid = smooth[valid]
    signal = float(np.percentile(s_valid, 99) - np.percentile(s_valid, 20))
    peak = float(np.percentile(values, 99))
    span = max(peak - lowest, 1e-12)
    snr = 20.0 * math.log10(max(signal, 1e-6 * span) / max(noise, 1e-6 * span))
    figures = {"snr_db": snr, "noise_floor": (background - lowest) / span}
    tissue = smooth > background + TISSUE_LEVEL * (peak - background)
    for name, band in (("top", np.s_[:EDGE_ROWS]), ("bottom", np.s_[-EDGE_ROWS:])):
        clear = ~pad[band].any(axis=0)  # columns whose edge band is not padding
        figures[f"{name}_tissue_fraction"] = float((tissue[band].any(axis=0) & clear).mean())
    columns = valid.mean(axis=0) > 0.3
    strength = np.percentile(np.where(valid, smooth, lowest)[:, columns], 95, axis=0) - background
    reference = float(np.median(strength)) if strength.size else 0.0
    blank = strength < BLANK_LEVEL * reference if reference > 0 else np.zeros(0, bool)
    figures["blank_ascan_fraction"] = float(blank.sum() / max(columns.sum(), 1))
    return figures


_SENTENCES = {
    QualityProblem.WEAK_SIGNAL: "the signal is too weak to read (signal {snr_db:.0f} dB, minimum {t:.0f} dB)",
    QualityProblem.CUT_OFF_TOP: (
        "the retina is cut off at the top of the frame (tissue at the top edge over "
        "{top_tissue_fraction:.0%} of the width, at most {t:.0%})"
    ),
    QualityProblem.CUT_OFF_BOTTOM: (
        "the retina is cut off at the bottom of the frame (tissue at the bottom edge over "
        "{bottom_tissue_fraction:.0%} of the width, at most {t:.0%})"
    ),
    QualityProblem.MISSING_ASCANS: (
        "A-scans are missing, as after a blink or lost tracking ({blank_ascan_fraction:.0%} "
        "of the width is background only, at most {t:.0%})"
    ),
}
_FIGURE = {
    QualityProblem.WEAK_SIGNAL: "snr_db",
    QualityProblem.CUT_OFF_TOP: "top_tissue_fraction",
    QualityProblem.CUT_OFF_BOTTOM: "bottom_tissue_fraction",
    QualityProblem.MISSING_ASCANS: "blank_ascan_fraction",
}


def _pixel_problems(figures: dict[str, float]) -> list[QualityProblem]:
    if figures["snr_db"] < THRESHOLDS["snr_db"]:
        # under the noise floor the edges and A-scans cannot be told apart: one problem
        return [QualityProblem.WEAK_SIGNAL]
    return [
        p
        for p in _SENTENCES
        if p is not QualityProblem.WEAK_SIGNAL and figures[_FIGURE[p]] > THRESHOLDS[_FIGURE[p]]
    ]


def _reason(
    problems: list[QualityProblem], figures: dict[str, float], device: tuple[float, float, str]
) -> str:
    first = problems[0]
    if first is QualityProblem.DEVICE_INDEX:
        value, minimum, name = device
        what = f"the device's own quality index is below the manufacturer's minimum ({name} {value:.0f}, minimum {minimum:.0f})"
    else:
        what = _SENTENCES[first].format(t=THRESHOLDS[_FIGURE[first]], **figures)
    more = "" if len(problems) == 1 else f"; also {', '.join(p.value for p in problems[1:])}"
    return f"Image quality too low: {what}{more}."


def assess_quality(
    frame: np.ndarray,
    *,
    device_index: float | None = None,
    device_minimum: float | None = None,
    device_index_name: str | None = None,
) -> QualityVerdict:
    """Judge one display-ready B-scan (2-D, uint8 / uint16 / float; brighter = more reflective).

    The pixel checks always run; the device's own index, when given, is compared with
    ``device_minimum`` (or ``DEVICE_MINIMUMS[device_index_name]``); a NaN index is ignored.
    Frames under 32 pixels on a side, or blank, are acceptable with no figures: the content
    check (:mod:`octviewer.core.content`) refuses those as not a B-scan."""
    if device_minimum is None and device_index_name is not None:
        device_minimum = DEVICE_MINIMUMS.get(device_index_name)
    prepared = _prepare(frame)
    figures = measure(*prepared) if prepared is not None else {}
    problems = _pixel_problems(figures) if figures else []
    index = None if device_index is None or math.isnan(device_index) else float(device_index)
    if index is not None and device_minimum is not None and index < device_minimum:
        problems.append(QualityProblem.DEVICE_INDEX)
    problems.sort(key=list(QualityProblem).index)
    reason = None
    if problems:
        name = device_index_name or "device index"
        reason = _reason(problems, figures, (index or 0.0, device_minimum or 0.0, name))
        logger.debug("quality: %s", reason)
    return QualityVerdict(
        acceptable=not problems,
        problems=tuple(problems),
        reason=reason,
        figures=figures,
        device_index=index,
        device_index_name=device_index_name,
        device_minimum=device_minimum,
    )
