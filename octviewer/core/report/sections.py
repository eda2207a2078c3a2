"""The sections of a report page, top to bottom: header, images (with the heatmap key), the
two columns (model output and warnings | scan facts), the per-frame strip and the footer.

Each builder draws onto a :class:`Page` from ``y`` down and returns the ``y`` below it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from PIL import Image, ImageDraw

from octviewer._version import __version__
from octviewer.core.overlay import HEATMAP_LEGEND
from octviewer.core.report.charts import (
    MUTED,
    draw_key_values,
    draw_probability_strip,
    draw_wrapped,
    line_height,
    text,
    text_width,
    wrap,
)
from octviewer.core.report.facts import (
    examination_rows,
    identity_rows,
    metadata_rows,
    source_label,
)
from octviewer.core.report.panels import (
    ALERT,
    WARN_EDGE,
    WARN_FILL,
    _draw_answer,
    _Fonts,
    colorbar,
)
from octviewer.core.result_cache import cached_at_text
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
from octviewer.core.results import FrameResult, ScanResult
from octviewer.core.scan import Scan


@dataclass(frozen=True)
class Page:
    """The report canvas and the geometry every section shares."""

    img: Image.Image
    d: ImageDraw.ImageDraw
    f: _Fonts
    width: int
    margin: int
    gap: int  # between the two image panels, and between the two columns
    inner: int  # width - 2 * margin
    pw: int  # image panel width
    ph: int  # image panel height
    u: float  # scale of the page against a 1600 px wide one
    lh: int  # line height of the body font


def draw_header(page: Page, scan: Scan, fr: FrameResult, include_identity: bool) -> float:
    """Title left, disclaimer banner right, then the file name (and frame of a volume)."""
    d, f, width, margin, lh = page.d, page.f, page.width, page.margin, page.lh
    y = margin
    text(d, (margin, y), "OCT analysis report" if scan.is_oct else "Image analysis report", f.h1)
    banner = DISCLAIMER.upper()
    bw = text_width(banner, f.h2) + 2 * f.h2.size
    bh = line_height(f.h2) + f.h2.size * 0.4
    d.rounded_rectangle(
        (width - margin - bw, y - 4, width - margin, y - 4 + bh), radius=6, fill=ALERT
    )
    text(
        d, (width - margin - bw + f.h2.size, y - 4 + f.h2.size * 0.3), banner, f.h2, (255, 255, 255)
    )
    y += max(line_height(f.h1), bh) + 4
    label = source_label(scan, include_identity=include_identity)
    sub = f"File: {label}" + (
        f"   ·   Frame {fr.frame_index + 1} of {scan.n_frames}" if scan.is_volume else ""
    )
    y += draw_wrapped(d, margin, y, sub, f.body, page.inner, MUTED) + round(lh * 0.4)
    return y


def draw_images(
    page: Page,
    y: float,
    scan: Scan,
    fr: FrameResult,
    left: Image.Image,
    right: Image.Image | None,
    revealed: bool,
) -> float:
    """The B-scan and its heatmap side by side (or a grey placeholder saying why none)."""
    img, d, f, lh = page.img, page.d, page.f, page.lh
    margin, gap, pw, ph = page.margin, page.gap, page.pw, page.ph
    cam_name = fr.class_names[fr.cam_class] if fr.cam_class is not None else fr.predicted_class
    text(d, (margin, y), "B-scan" if scan.is_oct else "Image", f.bold)
    if right is not None and not fr.assessable:
        text(d, (margin + pw + gap, y), f"Heatmap for {cam_name} — UNRELIABLE", f.bold, ALERT)
    else:
        text(
            d,
            (margin + pw + gap, y),
            f"Heatmap for class {cam_name}" if right else "Heatmap",
            f.bold,
        )
    y += lh
    img.paste(left, (margin, y))
    d.rectangle((margin - 1, y - 1, margin + pw, y + ph), outline=(190, 190, 190))
    if right is not None:
        img.paste(right, (margin + pw + gap, y))
        d.rectangle(
            (margin + pw + gap - 1, y - 1, margin + 2 * pw + gap, y + ph), outline=(190, 190, 190)
        )
    else:
        d.rectangle((margin + pw + gap, y, margin + 2 * pw + gap, y + ph), fill=(238, 238, 238))
        msg = (
            "No heatmap was computed for this frame."
            if revealed
            else "No heatmap: this frame is not assessed."
        )
        text(
            d,
            (margin + pw + gap + (pw - text_width(msg, f.body)) / 2, y + ph / 2 - lh / 2),
            msg,
            f.body,
            MUTED,
        )
    return y + ph + round(lh * 0.35)


def draw_heatmap_key(page: Page, y: float, colormap: str) -> float:
    """The colour bar (low .. high attention) and the legend under the heatmap."""
    img, d, f, u, pw, lh = page.img, page.d, page.f, page.u, page.pw, page.lh
    cb_x = page.margin + pw + page.gap
    cb_w, cb_h = min(pw, round(260 * u) if u > 1 else 260), max(10, round(lh * 0.55))
    text(d, (cb_x, y), "low", f.small, MUTED)
    bar_x = cb_x + text_width("low ", f.small) + 4
    img.paste(colorbar(colormap, cb_w, cb_h), (round(bar_x), round(y + lh * 0.12)))
    text(d, (bar_x + cb_w + 6, y), "high attention", f.small, MUTED)
    y += lh
    y += draw_wrapped(d, cb_x, y, HEATMAP_LEGEND, f.body, pw)
    return y


def draw_cautions(page: Page, x: float, y: float, col_w: float, fr: FrameResult) -> float:
    """One boxed "Warning:" per caution of the frame."""
    d, f, lh = page.d, page.f, page.lh
    for flag in fr.cautions:
        sentence = fr.flag_sentence(flag)
        lines_h = len(
            wrap(sentence, f.body, col_w - 2 * f.body.size - text_width("Warning: ", f.bold))
        )
        box_h = lines_h * lh + f.body.size
        d.rectangle((x, y, x + col_w, y + box_h), fill=WARN_FILL, outline=WARN_EDGE, width=2)
        text(d, (x + f.body.size, y + f.body.size / 2), "Warning:", f.bold, WARN_EDGE)
        off = f.body.size + text_width("Warning: ", f.bold)
        draw_wrapped(d, x + off, y + f.body.size / 2, sentence, f.body, col_w - off - f.body.size)
        y += box_h + round(lh * 0.4)
    return y


def draw_scan_facts(
    page: Page, x: float, y: float, col_w: float, scan: Scan, fr: FrameResult, identity: bool
) -> float:
    """The non-identifying scan facts, then the patient only when asked for."""
    d, f, lh = page.d, page.f, page.lh
    text(d, (x, y), "Scan", f.h2)
    y += line_height(f.h2)
    rows = metadata_rows(scan, fr.frame_index) + examination_rows(scan, fr)
    y += draw_key_values(d, x, y, rows, f.body, f.bold, col_w)
    if identity:
        y += round(lh * 0.5)
        text(d, (x, y), "Patient (included on request)", f.h2)
        y += line_height(f.h2)
        y += draw_key_values(d, x, y, identity_rows(scan.identity), f.body, f.bold, col_w)
    return y


def draw_columns(
    page: Page,
    y: float,
    scan: Scan,
    fr: FrameResult,
    include_identity: bool,
    show_unreliable: bool,
) -> float:
    """Two columns: the model output and warnings (left), the scan facts (right)."""
    col_w = (page.inner - page.gap) / 2
    x_left, x_right = page.margin, page.margin + col_w + page.gap
    y_left = y + _draw_answer(page.d, x_left, y, col_w, fr, page.f, show_unreliable)
    y_left = draw_cautions(page, x_left, y_left, col_w, fr)
    y_right = draw_scan_facts(page, x_right, y, col_w, scan, fr, include_identity)
    return max(y_left, y_right) + round(page.lh * 0.6)


def draw_strip(page: Page, y: float, scan: Scan, result: ScanResult, fr: FrameResult) -> float:
    """A volume's class probability per frame, the shown frame marked."""
    d, f, margin = page.d, page.f, page.margin
    text(d, (margin, y), "Class probability per frame", f.h2)
    y += line_height(f.h2)
    strip_h = round(300 * max(1.0, page.u))
    draw_probability_strip(
        d,
        (margin, y, page.width - margin, y + strip_h),
        [fr_.frame_index for fr_ in result.frames],
        scan.n_frames,
        fr.class_names,
        result.probability_matrix(),
        fr.frame_index,
        f.small,
        assessable=[fr_.assessable for fr_ in result.frames],
    )
    return y + strip_h + round(page.lh * 0.5)


def draw_footer(page: Page, y: float, result: ScanResult, created: _dt.datetime) -> float:
    """A rule, the model and app versions, the creation time, and the disclaimer."""
    d, f, margin = page.d, page.f, page.margin
    d.line((margin, y, page.width - margin, y), fill=(200, 200, 200), width=1)
    y += round(page.lh * 0.4)
    model = result.model
    footer = [
        f"Model: {model.name} {model.version}  ·  {model.architecture}  ·  SHA-256 {model.short_sha}"
        + (f"  ·  licence: {model.licence}" if model.licence else ""),
        f"octviewer {__version__}  ·  analysed on {result.computed_on}  ·  report created "
        f"{created.strftime('%Y-%m-%d %H:%M')} ({created.strftime('%Z') or 'local time'})",
    ]
    cached = cached_at_text(result)
    if cached:  # read back from the result cache, not computed for this report
        footer.append(cached[:1].upper() + cached[1:])
    for line in footer:
        y += draw_wrapped(d, margin, y, line, f.small, page.inner, MUTED)
    text(d, (margin, y + 4), DISCLAIMER, f.bold, ALERT)
    return y + line_height(f.bold) + margin
