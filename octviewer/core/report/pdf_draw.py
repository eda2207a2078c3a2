"""Drawing helpers of the printable report page (fpdf2, millimetres): fonts, text boxes, images
fitted into panels, probability bars, warning boxes and key/value rows.

Every helper draws from ``y`` down inside a box and returns the ``y`` below what it drew, so
:mod:`octviewer.core.report.pdf_page` can stack sections on a fixed page.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fpdf import FPDF
from PIL import Image

from octviewer.core.presentation import class_rgb
from octviewer.core.report.charts import INK, MUTED, RGB, wrap_words
from octviewer.core.report.fonts import font_set

FAMILY = "octviewer"
MAX_IMAGE_PX = 1600  # longest side of a raster embedded in the PDF (enough for 300 dpi panels)
PT = 0.3528  # millimetres per point
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Box:
    """A rectangle on the page in millimetres."""

    x: float
    y: float
    w: float
    h: float


def new_document(page_format: str) -> FPDF:
    """An empty one-page document with the report fonts embedded (DejaVu Sans when present)."""
    pdf = FPDF(orientation="P", unit="mm", format=page_format)
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    fs = font_set()
    if fs.regular is not None and fs.bold is not None:
        pdf.add_font(FAMILY, "", str(fs.regular))
        pdf.add_font(FAMILY, "B", str(fs.bold))
        pdf.octviewer_family = FAMILY  # type: ignore[attr-defined]
    else:  # no TrueType font: the PDF core font, Latin-1 text only
        pdf.octviewer_family = "helvetica"  # type: ignore[attr-defined]
    pdf.add_page()
    return pdf


def _safe(pdf: FPDF, s: str) -> str:
    if pdf.octviewer_family == FAMILY:  # type: ignore[attr-defined]
        return s
    from octviewer.core.report.fonts import fit_text

    return fit_text(s).encode("latin-1", "replace").decode("latin-1")


def use_font(pdf: FPDF, size_pt: float, bold: bool = False, color: RGB = INK) -> None:
    pdf.set_font(pdf.octviewer_family, "B" if bold else "", size_pt)  # type: ignore[attr-defined]
    pdf.set_text_color(*color)


def line_mm(size_pt: float) -> float:
    """The line pitch of a font size, in millimetres."""
    return size_pt * PT * 1.3


def put_text(pdf: FPDF, x: float, y: float, s: str) -> None:
    """One line of text whose top is at ``y`` (fpdf2 places text on its baseline)."""
    pdf.text(x, y + pdf.font_size * 0.85, _safe(pdf, s))


def text_width(pdf: FPDF, s: str) -> float:
    return float(pdf.get_string_width(_safe(pdf, s)))


def wrapped(pdf: FPDF, x: float, y: float, s: str, width: float) -> float:
    """``s`` word-wrapped into ``width``; returns the y below it."""
    pitch = line_mm(pdf.font_size_pt)
    for line in _wrap(pdf, s, width):
        put_text(pdf, x, y, line)
        y += pitch
    return y


def _wrap(pdf: FPDF, s: str, width: float) -> list[str]:
    return wrap_words(s, width, lambda t: text_width(pdf, t))


def wrapped_height(pdf: FPDF, s: str, width: float) -> float:
    return len(_wrap(pdf, s, width)) * line_mm(pdf.font_size_pt)


def limited(img: Image.Image) -> Image.Image:
    """``img`` no larger than :data:`MAX_IMAGE_PX` on its longest side (RGB)."""
    img = img.convert("RGB")
    longest = max(img.size)
    if longest > MAX_IMAGE_PX:
        f = MAX_IMAGE_PX / longest
        img = img.resize(
            (max(1, round(img.width * f)), max(1, round(img.height * f))),
            Image.Resampling.LANCZOS,
        )
    return img


def fit(size: tuple[int, int], box: Box) -> Box:
    """Where an image of ``size`` (w, h) px sits in ``box``: scaled to fit, centred, aspect kept."""
    w, h = size
    s = min(box.w / max(w, 1), box.h / max(h, 1))
    return Box(box.x + (box.w - w * s) / 2, box.y + (box.h - h * s) / 2, w * s, h * s)


def image_in(pdf: FPDF, img: Image.Image, box: Box, frame: bool = True) -> Box:
    """``img`` scaled into ``box`` (never stretched); returns where it landed."""
    small = limited(img)
    placed = fit(img.size, box)
    buf = io.BytesIO()  # JPEG (DCT) at high quality: a tenth of the size of a Flate raster
    small.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    buf.seek(0)
    pdf.image(buf, x=placed.x, y=placed.y, w=placed.w, h=placed.h)
    if frame:
        pdf.set_draw_color(190, 190, 190)
        pdf.set_line_width(0.2)
        pdf.rect(box.x, box.y, box.w, box.h)
    return placed


def grey_panel(pdf: FPDF, box: Box, message: str) -> None:
    pdf.set_fill_color(238, 238, 238)
    pdf.rect(box.x, box.y, box.w, box.h, style="F")
    use_font(pdf, 8.5, color=MUTED)
    tw = text_width(pdf, message)
    put_text(pdf, box.x + max(1.0, (box.w - tw) / 2), box.y + box.h / 2 - 2, message)


def polyline_on(pdf: FPDF, placed: Box, shape: tuple[int, int], pts: np.ndarray) -> None:
    """A path given in image pixels (column, row) drawn over the image placed at ``placed``."""
    rows, cols = shape
    sx, sy = placed.w / max(cols, 1), placed.h / max(rows, 1)
    xy = [(placed.x + float(c) * sx, placed.y + float(r) * sy) for c, r in pts]
    pdf.polyline(xy)


def probability_bars(
    pdf: FPDF,
    box: Box,
    names: Sequence[str],
    probs: Sequence[float],
    chosen: int | None,
    size_pt: float = 9.0,
) -> float:
    """One bar per class (class colour, percentage at the right); returns the y below."""
    pitch = line_mm(size_pt) * 1.25
    use_font(pdf, size_pt)
    label_w = max((text_width(pdf, n) for n in names), default=0.0) + 3
    pct_w = text_width(pdf, "100.0 %") + 2
    bar_w = max(10.0, box.w - label_w - pct_w)
    y = box.y
    for i, (name, p) in enumerate(zip(names, probs, strict=True)):
        use_font(pdf, size_pt, bold=i == chosen)
        put_text(pdf, box.x, y, name)
        bx, bh = box.x + label_w, line_mm(size_pt) * 0.8
        pdf.set_fill_color(235, 235, 235)
        pdf.rect(bx, y + 0.3, bar_w, bh, style="F")
        pdf.set_fill_color(*class_rgb(i, tuple(names)))
        pdf.rect(bx, y + 0.3, max(0.0, min(1.0, float(p))) * bar_w, bh, style="F")
        put_text(pdf, bx + bar_w + 1.5, y, f"{100 * float(p):.1f} %")
        y += pitch
    return y


def warning_box(pdf: FPDF, box: Box, sentence: str, edge: RGB, fill: RGB) -> float:
    """A filled box with a bold "Warning:" and the sentence; returns the y below."""
    use_font(pdf, 8.5, bold=True)
    off = text_width(pdf, "Warning: ") + 2
    use_font(pdf, 8.5)
    h = wrapped_height(pdf, sentence, box.w - off - 2) + 2.5
    pdf.set_fill_color(*fill)
    pdf.set_draw_color(*edge)
    pdf.set_line_width(0.4)
    pdf.rect(box.x, box.y, box.w, h, style="DF")
    use_font(pdf, 8.5, bold=True, color=edge)
    put_text(pdf, box.x + 1.5, box.y + 1.2, "Warning:")
    use_font(pdf, 8.5)
    wrapped(pdf, box.x + off, box.y + 1.2, sentence, box.w - off - 2)
    return box.y + h + 1.5


def key_values(pdf: FPDF, box: Box, rows: Sequence[tuple[str, str]], size_pt: float = 8.5) -> float:
    """Label (bold) and value rows, values wrapped in the rest of the width."""
    use_font(pdf, size_pt, bold=True)
    label_w = min(box.w * 0.4, max((text_width(pdf, k) for k, _ in rows), default=0.0) + 3)
    y = box.y
    for k, v in rows:
        use_font(pdf, size_pt, bold=True)
        put_text(pdf, box.x, y, k)
        use_font(pdf, size_pt)
        y = wrapped(pdf, box.x + label_w, y, v, box.w - label_w)
    return y
