"""The sections of the report page (fpdf2, millimetres), top to bottom: header, B-scan and
heatmap panels with the heatmap key, model output and warnings | scan facts, a volume's
per-frame strip and disease map (or why there is none), one B-scan's localizer with its scan
line, and the footer pinned to the bottom of the page. The PNG report is this page rasterised.

Its words come from :mod:`.facts` and :mod:`.panels`: the research-only notice, the model
identity and the "not assessed" rules.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from fpdf import FPDF
from PIL import Image, ImageDraw

from octviewer._version import __version__
from octviewer.core import disease_map as dm
from octviewer.core.overlay import HEATMAP_LEGEND
from octviewer.core.presentation import NOT_EXCLUDED, NOT_EXCLUDED_RGB, frame_text
from octviewer.core.report import pdf_draw as pd
from octviewer.core.report.charts import MUTED, StripData, draw_probability_strip
from octviewer.core.report.facts import (
    examination_rows,
    identity_rows,
    metadata_rows,
    source_label,
)
from octviewer.core.report.fonts import font
from octviewer.core.report.panels import (
    ALERT,
    NOT_ASSESSED_HEADLINE,
    UNRELIABLE_CAPTION,
    WARN_EDGE,
    WARN_FILL,
    WITHHELD,
)
from octviewer.core.report.volume import HOW_TO_READ
from octviewer.core.result_cache import cached_at_text
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
from octviewer.core.results import FrameResult, ScanResult
from octviewer.core.scan import Scan

MARGIN = 12.0
GAP = 6.0
SCAN_LINE = (57, 255, 136)  # the window's and the disease map's "this frame" green


@dataclass(frozen=True)
class PageContext:
    """What every section of one page reads."""

    scan: Scan
    result: ScanResult
    fr: FrameResult
    include_identity: bool
    show_unreliable: bool
    width: float  # page width, mm
    height: float  # page height, mm

    @property
    def inner(self) -> float:
        return self.width - 2 * MARGIN

    @property
    def page_format(self) -> tuple[float, float]:
        return (self.width, self.height)


def header(pdf: FPDF, ctx: PageContext) -> float:
    """Title left, the research-only banner right, then the file name (and frame)."""
    y = MARGIN
    pd.use_font(pdf, 16, bold=True)
    pd.put_text(
        pdf, MARGIN, y, "OCT analysis report" if ctx.scan.is_oct else "Image analysis report"
    )
    pd.use_font(pdf, 9, bold=True, color=(255, 255, 255))
    banner = DISCLAIMER.upper()
    bw, bh = pd.text_width(pdf, banner) + 6, 6.5
    pdf.set_fill_color(*ALERT)
    pdf.rect(ctx.width - MARGIN - bw, y, bw, bh, style="F", round_corners=True, corner_radius=1.2)
    pd.put_text(pdf, ctx.width - MARGIN - bw + 3, y + 1.6, banner)
    y += 9
    label = source_label(ctx.scan, include_identity=ctx.include_identity)
    sub = f"File: {label}" + (
        f"   ·   {frame_text(ctx.fr.frame_index, ctx.scan.n_frames, word='Frame')}"
        if ctx.scan.is_volume
        else ""
    )
    pd.use_font(pdf, 9, color=MUTED)
    return pd.wrapped(pdf, MARGIN, y, sub, ctx.inner) + 2


def images(
    pdf: FPDF, ctx: PageContext, y: float, panels: tuple[Image.Image, Image.Image | None], h: float
) -> float:
    """The B-scan and its heatmap side by side, each scaled into a panel ``h`` mm high."""
    left, right = panels
    fr, pw = ctx.fr, (ctx.inner - GAP) / 2
    cam_name = fr.class_names[fr.cam_class] if fr.cam_class is not None else fr.predicted_class
    pd.use_font(pdf, 9.5, bold=True)
    pd.put_text(pdf, MARGIN, y, "B-scan" if ctx.scan.is_oct else "Image")
    if right is not None and not fr.assessable:
        pd.use_font(pdf, 9.5, bold=True, color=ALERT)
        caption = f"Heatmap for {cam_name} — UNRELIABLE"
    else:
        caption = f"Heatmap for class {cam_name}" if right is not None else "Heatmap"
    pd.put_text(pdf, MARGIN + pw + GAP, y, caption)
    y += pd.line_mm(9.5)
    pd.image_in(pdf, left, pd.Box(MARGIN, y, pw, h))
    box = pd.Box(MARGIN + pw + GAP, y, pw, h)
    if right is not None:
        pd.image_in(pdf, right, box)
    else:
        revealed = fr.assessable or ctx.show_unreliable
        pd.grey_panel(
            pdf,
            box,
            "No heatmap was computed for this frame."
            if revealed
            else "No heatmap: this frame is not assessed.",
        )
    return y + h + 1.5


def heatmap_key(pdf: FPDF, ctx: PageContext, y: float, colorbar: Image.Image) -> float:
    """The colour bar (low .. high attention) and the legend, under the heatmap panel."""
    pw = (ctx.inner - GAP) / 2
    x = MARGIN + pw + GAP
    pd.use_font(pdf, 7.5, color=MUTED)
    pd.put_text(pdf, x, y, "low")
    bx = x + pd.text_width(pdf, "low ") + 1
    pdf.image(colorbar, x=bx, y=y + 0.4, w=40, h=2.4)
    pd.put_text(pdf, bx + 41.5, y, "high attention")
    pd.use_font(pdf, 7.5)
    return pd.wrapped(pdf, x, y + pd.line_mm(7.5), HEATMAP_LEGEND, pw)


def answer(pdf: FPDF, ctx: PageContext, y: float, col_w: float) -> float:
    """The headline and the probabilities (or NOT ASSESSED and why), then the warnings."""
    fr, x = ctx.fr, MARGIN
    pd.use_font(pdf, 12, bold=True)
    pd.put_text(pdf, x, y, "Model output")
    y += pd.line_mm(12)
    if fr.assessable:
        headline = f"{fr.predicted_class}  {100 * fr.confidence:.1f} %"
        if fr.reassurance_withheld:
            pd.use_font(pdf, 15, bold=True, color=NOT_EXCLUDED_RGB)
            pd.put_text(pdf, x, y, NOT_EXCLUDED)
            y += pd.line_mm(15)
            pd.use_font(pdf, 12, bold=True, color=NOT_EXCLUDED_RGB)
            pd.put_text(pdf, x, y, headline)
            y += pd.line_mm(12) + 1
        else:
            color = WARN_EDGE if fr.is_flagged else (26, 26, 26)
            pd.use_font(pdf, 15, bold=True, color=color)
            pd.put_text(pdf, x, y, ("UNCERTAIN — " if fr.is_flagged else "") + headline)
            y += pd.line_mm(15) + 1
        y = pd.probability_bars(
            pdf, pd.Box(x, y, col_w, 0), fr.class_names, fr.probabilities, fr.predicted_index
        )
    else:
        pd.use_font(pdf, 15, bold=True, color=ALERT)
        pd.put_text(pdf, x, y, NOT_ASSESSED_HEADLINE)
        y += pd.line_mm(15) + 1
        pd.use_font(pdf, 9)
        y = pd.wrapped(pdf, x, y, fr.reason_text or "", col_w) + 1
    if fr.ood_text:
        pd.use_font(pdf, 7.5, color=MUTED)
        y = pd.wrapped(pdf, x, y, fr.ood_text.capitalize() + ".", col_w)
    if not fr.assessable:
        y = _withheld_or_unreliable(pdf, ctx, y, col_w)
    y += 2
    for flag in fr.cautions:
        y = pd.warning_box(
            pdf, pd.Box(x, y, col_w, 0), fr.flag_sentence(flag), WARN_EDGE, WARN_FILL
        )
    return y


def _withheld_or_unreliable(pdf: FPDF, ctx: PageContext, y: float, col_w: float) -> float:
    fr = ctx.fr
    if not ctx.show_unreliable:
        pd.use_font(pdf, 7.5, color=MUTED)
        return pd.wrapped(pdf, MARGIN, y, WITHHELD, col_w)
    pd.use_font(pdf, 7.5, color=ALERT)
    pd.put_text(pdf, MARGIN, y, UNRELIABLE_CAPTION)
    y += pd.line_mm(7.5)
    box = pd.Box(MARGIN, y, col_w * 0.7, 0)
    return pd.probability_bars(
        pdf, box, fr.class_names, fr.probabilities, fr.predicted_index, size_pt=7.5
    )


def scan_facts(pdf: FPDF, ctx: PageContext, y: float, x: float, col_w: float) -> float:
    """The non-identifying scan facts, then the patient only when asked for."""
    pd.use_font(pdf, 12, bold=True)
    pd.put_text(pdf, x, y, "Scan")
    y += pd.line_mm(12)
    rows = metadata_rows(ctx.scan, ctx.fr.frame_index) + examination_rows(ctx.scan, ctx.fr)
    y = pd.key_values(pdf, pd.Box(x, y, col_w, 0), rows)
    if ctx.include_identity:
        y += 2
        pd.use_font(pdf, 12, bold=True)
        pd.put_text(pdf, x, y, "Patient (included on request)")
        y += pd.line_mm(12)
        y = pd.key_values(pdf, pd.Box(x, y, col_w, 0), identity_rows(ctx.scan.identity))
    return y


def scan_line(pdf: FPDF, ctx: PageContext, box: pd.Box, localizer: Image.Image) -> float:
    """One B-scan's localizer with its scan line (or circle), as the window draws it."""
    loc = ctx.scan.localizer
    assert loc is not None
    pd.use_font(pdf, 12, bold=True)
    pd.put_text(pdf, box.x, box.y, "Localizer")
    y = box.y + pd.line_mm(12)
    placed = pd.image_in(pdf, localizer, pd.Box(box.x, y, box.w, box.h))
    if loc.positions is not None and len(loc.positions) > ctx.fr.frame_index:
        pdf.set_draw_color(*SCAN_LINE)
        pdf.set_line_width(0.6)
        pts = loc.outline(ctx.fr.frame_index)
        pd.polyline_on(pdf, placed, (localizer.height, localizer.width), pts)
    pd.use_font(pdf, 7.5, color=MUTED)
    return pd.wrapped(pdf, box.x, y + box.h + 1, "Green: where this B-scan was taken.", box.w)


def disease_map(
    pdf: FPDF, box: pd.Box, m: dm.DiseaseMap, picture: Image.Image, summary: str
) -> float:
    """A volume's disease map (picture from :func:`report.volume.map_image`), its legend, what
    it shows counted (``summary``) and how to read it."""
    pd.use_font(pdf, 12, bold=True)
    pd.put_text(pdf, box.x, box.y, "Disease map")
    y = box.y + pd.line_mm(12)
    side = min(box.h, box.w * 0.5)
    placed = pd.image_in(pdf, picture, pd.Box(box.x, y, side, side))
    x, ly = placed.x + side + 4, y
    pd.use_font(pdf, 8.5)
    for e in m.legend:
        pdf.set_draw_color(90, 90, 90)
        pdf.set_fill_color(*e.color)
        pdf.rect(x, ly + 0.6, 6, 2.4, style="D" if e.dashed else "F")
        pd.put_text(pdf, x + 8, ly, e.label)
        ly += pd.line_mm(8.5)
    pd.use_font(pdf, 8.5)
    ly = pd.wrapped(pdf, x, ly + 1, summary, box.w - (x - box.x))
    pd.use_font(pdf, 7.5, color=MUTED)
    ly = pd.wrapped(pdf, x, ly + 1, HOW_TO_READ, box.w - (x - box.x))
    return max(y + side, ly) + 1


def no_disease_map(pdf: FPDF, box: pd.Box, reason: str) -> float:
    """A volume without a disease map: the title and why there is none."""
    pd.use_font(pdf, 12, bold=True)
    pd.put_text(pdf, box.x, box.y, "Disease map")
    pd.use_font(pdf, 9, color=MUTED)
    return pd.wrapped(pdf, box.x, box.y + pd.line_mm(12), reason, box.w) + 1


def strip(pdf: FPDF, ctx: PageContext, y: float, h: float) -> float:
    """A volume's class probability per frame (drawn with the PNG report's own chart)."""
    pd.use_font(pdf, 12, bold=True)
    pd.put_text(pdf, MARGIN, y, "Class probability per frame")
    y += pd.line_mm(12)
    px_w, px_h = 1800, max(120, round(1800 * h / ctx.inner))
    img = Image.new("RGB", (px_w, px_h), "white")
    draw_probability_strip(
        ImageDraw.Draw(img),
        (0, 0, px_w - 1, px_h - 1),
        StripData.of(ctx.result, ctx.scan.n_frames, ctx.fr.frame_index),
        font(22),
    )
    pd.image_in(pdf, img, pd.Box(MARGIN, y, ctx.inner, h), frame=False)
    return y + h + 1


def footer_height() -> float:
    return 3 * pd.line_mm(7.5) + pd.line_mm(9) + 2


def footer(pdf: FPDF, ctx: PageContext, created: _dt.datetime) -> None:
    """Pinned to the bottom: a rule, the model and app versions, the time, the disclaimer."""
    y = ctx.height - MARGIN - footer_height()
    pdf.set_draw_color(200, 200, 200)
    pdf.set_line_width(0.2)
    pdf.line(MARGIN, y, ctx.width - MARGIN, y)
    y += 1.5
    model = ctx.result.model
    lines = [
        f"Model: {model.name} {model.version}  ·  {model.architecture}  ·  SHA-256 {model.short_sha}"
        + (f"  ·  licence: {model.licence}" if model.licence else ""),
        f"octviewer {__version__}  ·  analysed on {ctx.result.computed_on}  ·  report created "
        f"{created.strftime('%Y-%m-%d %H:%M')} ({created.strftime('%Z') or 'local time'})",
    ]
    cached = cached_at_text(ctx.result)
    if cached:
        lines.append(cached[:1].upper() + cached[1:])
    pd.use_font(pdf, 7.5, color=MUTED)
    for line in lines:
        y = pd.wrapped(pdf, MARGIN, y, line, ctx.inner)
    pd.use_font(pdf, 9, bold=True, color=ALERT)
    pd.put_text(pdf, MARGIN, y + 0.5, DISCLAIMER)
