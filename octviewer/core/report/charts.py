"""The report's chart: the per-frame class probability strip of a volume, drawn with Pillow
into a picture the page places (:mod:`.pdf_page`); the report's ink colours and word wrap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw, ImageFont

from octviewer.core.presentation import NOT_ASSESSED_LABEL, class_rgb, frame_number, frame_text
from octviewer.core.report.fonts import fit_text
from octviewer.core.results import ScanResult

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[int, int, int]

INK: RGB = (26, 26, 26)
MUTED: RGB = (95, 95, 95)
GRID: RGB = (225, 225, 225)


def text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], s: str, font: Font, fill: RGB = INK, **kw
) -> None:
    draw.text(xy, fit_text(s), font=font, fill=fill, **kw)


def text_width(s: str, font: Font) -> float:
    return float(font.getlength(fit_text(s)))


def line_height(font: Font) -> int:
    ascent, descent = font.getmetrics()
    return int((ascent + descent) * 1.25)


def wrap_words(s: str, max_width: float, measure: Callable[[str], float]) -> list[str]:
    """Greedy word wrap of ``s``: lines no wider than ``max_width`` as ``measure`` counts it
    (millimetres of the page's font on the report page)."""
    lines: list[str] = []
    for paragraph in s.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            trial = f"{current} {word}" if current else word
            if current and measure(trial) > max_width:
                lines.append(current)
                current = word
            else:
                current = trial
        lines.append(current)
    return lines


HATCH_FILL: RGB = (232, 232, 232)
HATCH_LINE: RGB = (165, 165, 165)


def _hatch(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float]) -> None:
    """A grey box with diagonal lines: the mark of frames that are not assessed."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=HATCH_FILL)
    step = 6
    h = y1 - y0
    for s in np.arange(x0 - h, x1, step):
        # the segment from (s, y1) to (s + h, y0), clipped to [x0, x1]
        a, b = max(s, x0), min(s + h, x1)
        if a < b:
            draw.line((a, y1 - (a - s), b, y1 - (b - s)), fill=HATCH_LINE, width=1)


@dataclass(frozen=True)
class _StripPlot:
    """The strip's plot area and its frame -> x mapping."""

    px0: float
    py0: float
    px1: float
    py1: float
    n_frames: int
    lh: int

    @property
    def span(self) -> int:
        return max(1, self.n_frames - 1)

    def fx(self, i: int) -> float:
        frac = i / self.span if self.n_frames > 1 else 0.5
        return self.px0 + (self.px1 - self.px0) * frac

    def fy(self, p: float) -> float:
        return self.py1 - float(np.clip(p, 0, 1)) * (self.py1 - self.py0)


@dataclass(frozen=True)
class StripData:
    """What the per-frame strip plots: ``probs`` is ``(len(frame_indices), n_classes)``;
    ``chosen`` is the frame shown in the report; ``assessable`` (None: all) per analysed frame."""

    frame_indices: Sequence[int]
    n_frames: int
    class_names: Sequence[str]
    probs: np.ndarray
    chosen: int
    assessable: Sequence[bool] | None = None

    @classmethod
    def of(cls, result: ScanResult, n_frames: int, chosen: int) -> StripData:
        """The strip of ``result`` for a scan of ``n_frames``, frame ``chosen`` marked."""
        return cls(
            [f.frame_index for f in result.frames],
            n_frames,
            result.class_names,
            result.probability_matrix(),
            chosen,
            [f.assessable for f in result.frames],
        )


def draw_probability_strip(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    data: StripData,
    font: Font,
) -> None:
    """Each class probability (0..1) against the frame number, the chosen frame marked.

    Frame numbers on the axis are 1-based, as a reader counts B-scans. Frames whose
    ``assessable`` entry is False are drawn as grey hatched bands without points, and the
    class lines break there.
    """
    frame_indices, n_frames, class_names = data.frame_indices, data.n_frames, data.class_names
    probs, chosen, assessable = data.probs, data.chosen, data.assessable
    ok = [True] * len(frame_indices) if assessable is None else [bool(a) for a in assessable]
    x0, y0, x1, y1 = box
    lh = line_height(font)
    axis_w = text_width("100 %", font) + font.size * 0.6
    # plot area; room for the x labels below
    plot = _StripPlot(x0 + axis_w, y0 + lh * 0.5, x1 - font.size, y1 - lh * 1.6, n_frames, lh)
    _strip_axes(draw, plot, font)
    half = max(2.0, (plot.px1 - plot.px0) / plot.span / 2)
    for k, fi in enumerate(frame_indices):
        if not ok[k]:
            x = plot.fx(int(fi))
            _hatch(draw, (max(plot.px0, x - half), plot.py0, min(plot.px1, x + half), plot.py1))
    cx = plot.fx(chosen)
    for yy in np.arange(plot.py0, plot.py1, 8):
        draw.line((cx, yy, cx, min(yy + 4, plot.py1)), fill=INK, width=2)
    _strip_lines(draw, plot, frame_indices, class_names, probs, ok)
    draw.rectangle((plot.px0, plot.py0, plot.px1, plot.py1), outline=MUTED)
    label = f"shown: {frame_text(chosen)}"
    lx = min(max(cx + 4, plot.px0 + 2), plot.px1 - text_width(label, font) - 2)
    text(draw, (lx, plot.py0 + 2), label, font, INK)
    _strip_legend(draw, plot, class_names, font, not all(ok))


def _strip_axes(draw: ImageDraw.ImageDraw, plot: _StripPlot, font: Font) -> None:
    """Grid lines with percent labels, and about 10 frame numbers (1-based) on the x axis."""
    lh = plot.lh
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = plot.py1 - frac * (plot.py1 - plot.py0)
        draw.line((plot.px0, yy, plot.px1, yy), fill=GRID, width=1)
        label = f"{int(frac * 100)} %"
        x = plot.px0 - font.size * 0.4 - text_width(label, font)
        text(draw, (x, yy - lh * 0.4), label, font, MUTED)
    step = max(1, int(np.ceil(plot.n_frames / 10)))
    for i in range(0, plot.n_frames, step):
        label = str(frame_number(i))
        x = plot.fx(i) - text_width(label, font) / 2
        text(draw, (x, plot.py1 + lh * 0.15), label, font, MUTED)


def _strip_lines(
    draw: ImageDraw.ImageDraw,
    plot: _StripPlot,
    frame_indices: Sequence[int],
    class_names: Sequence[str],
    probs: np.ndarray,
    ok: Sequence[bool],
) -> None:
    """One line with dots per class, broken at frames that are not assessed."""
    order = np.argsort(np.asarray(frame_indices))
    xs = [plot.fx(int(frame_indices[k])) for k in order]
    dot = 2 if len(xs) > 60 else 3
    for c in range(len(class_names)):
        color = class_rgb(c, class_names)
        ys = [plot.fy(probs[k, c]) for k in order]
        runs: list[list[tuple[float, float]]] = [[]]
        for k, px, py in zip(order, xs, ys, strict=True):
            if ok[k]:
                runs[-1].append((px, py))
            elif runs[-1]:
                runs.append([])
        for pts in runs:
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2, joint="curve")
            for px, py in pts:
                draw.ellipse((px - dot, py - dot, px + dot, py + dot), fill=color)


def _strip_legend(
    draw: ImageDraw.ImageDraw,
    plot: _StripPlot,
    class_names: Sequence[str],
    font: Font,
    any_not_assessed: bool,
) -> None:
    """The axis title, the "not assessed" key, and the class colours right-aligned under the plot."""
    lh, py1 = plot.lh, plot.py1
    axis = "Frame (B-scan number)"
    text(draw, (plot.px0, py1 + lh * 0.75), axis, font, MUTED)
    if any_not_assessed:
        hx = plot.px0 + text_width(axis, font) + font.size * 1.5
        _hatch(draw, (hx, py1 + lh * 0.9, hx + font.size * 1.2, py1 + lh * 1.3))
        text(draw, (hx + font.size * 1.6, py1 + lh * 0.75), NOT_ASSESSED_LABEL, font, MUTED)
    lx = plot.px1
    for c in reversed(range(len(class_names))):
        w = text_width(class_names[c], font)
        lx -= w
        text(draw, (lx, py1 + lh * 0.75), class_names[c], font, class_rgb(c, class_names))
        lx -= font.size * 1.2
        draw.rectangle(
            (lx, py1 + lh * 0.95, lx + font.size * 0.8, py1 + lh * 1.25),
            fill=class_rgb(c, class_names),
        )
        lx -= font.size * 1.0
