"""The disease map: each B-scan's answer drawn where it was taken, on the en-face localizer.

A volume whose B-scans have positions on a localizer (DICOM OPT with its Ophthalmic Frame
Location Sequence, Heidelberg ``.vol`` with its SLO) gets one :class:`MapLine` per frame: the
line in the colour of the presented class, its confidence as strength (opacity), frames that
are not assessed (``FrameResult.assessable`` False) drawn as such, frames without a result as
pending. Optionally the per-A-scan attention of a frame's heatmap is projected along its line
(an en-face attention map). Building it is NumPy on a few hundred numbers: cheap enough for
the GUI thread, and Qt-free so the window and the report draw the same map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from octviewer.core.heatmap import Heatmap
from octviewer.core.presentation import (
    NOT_ASSESSED_LABEL,
    NOT_EXCLUDED_LEGEND,
    NOT_EXCLUDED_RGB,
    PENDING_LABEL,
    RGB,
    class_rgb,
)
from octviewer.core.results import ScanResult
from octviewer.core.scan import Scan

NOT_ASSESSED_RGB: RGB = (255, 255, 255)  # drawn dashed
PENDING_RGB: RGB = (150, 150, 150)
MAP_TITLE = "Disease map: predicted class per B-scan on the localizer"
ATTENTION_SAMPLES = 64
MARKER_OUTER: RGB = (255, 255, 255)
MARKER_INNER: RGB = (0, 0, 0)
#: How the current frame is marked, in the window and in the report (the captions say it).
MARKER_TEXT = "outlined in black and white"


def marker_rims(width: float) -> tuple[tuple[RGB, float], ...]:
    """The pens (colour, width) of the current frame's marker around a line ``width`` wide,
    widest first: a white rim outside a black one, each ``max(1.5, width / 5)`` a side. The
    line is drawn again on top, in its own colour at full strength: the marker outlines the
    class colour, it never covers it (nor looks like a class: neither is a class colour)."""
    rim = max(1.5, width / 5)
    return ((MARKER_OUTER, width + 4 * rim), (MARKER_INNER, width + 2 * rim))


@dataclass(frozen=True)
class MapLine:
    """One B-scan on the localizer. ``start``/``end`` are ``(x, y)`` in localizer pixels.

    ``class_name`` is the presented class (None when not assessed or not analysed);
    ``strength`` the confidence in [0, 1] (0 when nothing is presented); ``attention`` the
    per-A-scan attention along the line from start to end (``ATTENTION_SAMPLES`` values in
    [0, 1]) when a heatmap of that frame was given, else None.
    """

    frame_index: int
    start: tuple[float, float]
    end: tuple[float, float]
    status: str  # "assessed", "not assessed" or "pending"
    class_name: str | None
    color: RGB
    strength: float
    attention: np.ndarray | None = None


@dataclass(frozen=True)
class LegendEntry:
    label: str
    color: RGB
    dashed: bool = False


@dataclass(frozen=True)
class DiseaseMap:
    """Every frame's line (frame order), the legend, and the line width in localizer pixels."""

    lines: tuple[MapLine, ...]
    legend: tuple[LegendEntry, ...]
    image_shape: tuple[int, int]
    line_width: float

    def line(self, frame_index: int) -> MapLine:
        return self.lines[frame_index]


def unavailable_reason(scan: Scan) -> str | None:
    """Why ``scan`` has no disease map, in plain words; None when it can have one."""
    if not scan.is_volume:
        return "The disease map needs a volume; this scan is a single B-scan."
    loc = scan.localizer
    if loc is None:
        return (
            "No disease map: this volume comes without a localizer (SLO / fundus image), so the "
            "B-scan positions are unknown. The per-frame probability strip shows every frame."
        )
    pos = loc.positions
    if pos is None or len(pos) == 0:
        return (
            "No disease map: the localizer of this volume carries no B-scan positions. The "
            "per-frame probability strip shows every frame."
        )
    if len(pos) != scan.n_frames:
        return (
            f"No disease map: the localizer has {len(pos)} B-scan position(s) for "
            f"{scan.n_frames} frames, so they cannot be matched. The per-frame probability strip "
            "shows every frame."
        )
    return None


def attention_profile(cam: np.ndarray | Heatmap, n: int = ATTENTION_SAMPLES) -> np.ndarray:
    """Per-A-scan attention of a heatmap: the maximum over depth of each column, resampled to
    ``n`` values along the B-scan (first column = line start). NaN counts as 0. A
    :class:`~octviewer.core.heatmap.Heatmap` computes it once and keeps it (64 floats)."""
    if isinstance(cam, Heatmap):
        return cam.column_profile(n)
    c = np.nan_to_num(np.asarray(cam, np.float32), nan=0.0)
    col = np.clip(c.max(axis=0), 0.0, 1.0) if c.size else np.zeros(1, np.float32)
    xs = np.linspace(0.0, len(col) - 1.0, n)
    return np.interp(xs, np.arange(len(col)), col).astype(np.float32)


def _line_width(pos: np.ndarray, shape: tuple[int, int]) -> float:
    """Lines as wide as most of the gap between neighbours, at least 1.5 px, at most 1.2 % of
    the localizer's size (so three lines do not become three bars)."""
    cap = max(2.0, 0.012 * max(shape))
    if len(pos) < 2:
        return cap
    mid = np.stack([(pos[:, 0] + pos[:, 2]) / 2, (pos[:, 1] + pos[:, 3]) / 2], axis=1)
    gaps = np.hypot(*np.diff(mid, axis=0).T)
    # the middle gap by sorting: np.median's first call imports numpy.ma (~25 ms on the GUI thread)
    gap = float(np.sort(gaps)[len(gaps) // 2]) if gaps.size else cap
    return float(np.clip(0.8 * gap, 1.5, cap))


def build_disease_map(
    scan: Scan,
    result: ScanResult | None,
    cams: Mapping[int, np.ndarray | Heatmap] | None = None,
) -> DiseaseMap | None:
    """The map of ``scan`` (None when :func:`unavailable_reason` gives a reason).

    ``result`` may be None or partial (frames not analysed are drawn as pending); ``cams``
    maps frame index to a heatmap on that frame's grid, projected along its line. Lines and
    legend take the class colours of :func:`octviewer.core.presentation.class_rgb`.
    """
    if unavailable_reason(scan) is not None:
        return None
    assert scan.localizer is not None and scan.localizer.positions is not None
    pos = np.asarray(scan.localizer.positions, np.float64).reshape(-1, 4)
    shape = tuple(int(v) for v in np.asarray(scan.localizer.image).shape[:2])
    by_frame = {} if result is None else {f.frame_index: f for f in result.frames}
    names: tuple[str, ...] = () if result is None else result.class_names
    lines, any_na, any_ne = [], False, False
    for i, (x0, y0, x1, y1) in enumerate(pos):
        fr = by_frame.get(i)
        att = None
        if cams is not None and i in cams and cams[i] is not None:
            att = attention_profile(cams[i])
        if fr is None:
            status, cls, color, strength = "pending", None, PENDING_RGB, 0.0
        elif not fr.assessable:
            status, cls, color, strength = "not assessed", None, NOT_ASSESSED_RGB, 0.0
            any_na = True
        else:
            k = fr.predicted_index
            status, cls, color = "assessed", fr.class_names[k], class_rgb(k, fr.class_names)
            strength = fr.confidence
            if fr.reassurance_withheld:  # never the reassuring green below the operating point
                color, any_ne = NOT_EXCLUDED_RGB, True
        lines.append(MapLine(i, (x0, y0), (x1, y1), status, cls, color, strength, att))
    legend = [LegendEntry(n, class_rgb(k, names)) for k, n in enumerate(names)]
    if any_ne:
        legend.append(LegendEntry(NOT_EXCLUDED_LEGEND, NOT_EXCLUDED_RGB))
    if any_na:
        legend.append(LegendEntry(NOT_ASSESSED_LABEL, NOT_ASSESSED_RGB, dashed=True))
    if any(ln.status == "pending" for ln in lines):
        legend.append(LegendEntry(PENDING_LABEL, PENDING_RGB))
    return DiseaseMap(tuple(lines), tuple(legend), (shape[0], shape[1]), _line_width(pos, shape))
