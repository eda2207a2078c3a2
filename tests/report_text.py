"""What a report draws, for tests that read the page as a person would: every string put on
the page (``pdf_draw.put_text``, with its size in points) and every string drawn into a chart
picture on it (Pillow: the per-frame strip; size 0); every picture placed on the page and
where; and how close a region of the rendered PNG is to a picture."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from octviewer.core.report import pdf_draw
from octviewer.core.report.render import PNG_DPI


def drawn(monkeypatch, render: Callable[[], object]) -> list[tuple[str, float]]:
    """Every string ``render()`` draws on the report page, with its font size in points."""
    seen: list[tuple[str, float]] = []
    put_text = pdf_draw.put_text
    pil_text = ImageDraw.ImageDraw.text

    def spy_page(pdf, x, y, s):
        seen.append((str(s), float(pdf.font_size_pt)))
        return put_text(pdf, x, y, s)

    def spy_picture(self, xy, text, *a, **kw):
        seen.append((str(text), 0.0))
        return pil_text(self, xy, text, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(pdf_draw, "put_text", spy_page)
        m.setattr(ImageDraw.ImageDraw, "text", spy_picture)
        render()
    return seen


def drawn_strings(monkeypatch, render: Callable[[], object]) -> list[str]:
    return [s for s, _ in drawn(monkeypatch, render)]


def placed_pictures(monkeypatch) -> list[tuple[Image.Image, pdf_draw.Box]]:
    """From now on (the test's monkeypatch), every picture put on a report page and the box
    (mm) where it landed, in drawing order: the B-scan, the heatmap, then the rest."""
    placed: list[tuple[Image.Image, pdf_draw.Box]] = []
    image_in = pdf_draw.image_in

    def spy(pdf, img, box, *a, **kw):
        where = image_in(pdf, img, box, *a, **kw)
        placed.append((img, where))
        return where

    monkeypatch.setattr(pdf_draw, "image_in", spy)
    return placed


def page_region(page: Image.Image, box: pdf_draw.Box, dpi: int = PNG_DPI) -> Image.Image:
    """The part of a rendered page (``dpi``) that ``box`` (mm) covers."""
    px = dpi / 25.4
    corners = (box.x, box.y, box.x + box.w, box.y + box.h)
    return page.crop(tuple(round(v * px) for v in corners))


def mean_difference(drawn: Image.Image, source: Image.Image) -> float:
    """Mean grey-level difference of a page region and the picture drawn there, both reduced
    to a quarter of the drawn size (speckle, JPEG and resampling averaged out, structure
    kept). Pictures drawn in place differ by about 2; different pictures by 5 or more."""
    inner = drawn.crop((2, 2, drawn.width - 2, drawn.height - 2))  # clear of the panel's edge
    size = (inner.width // 4, inner.height // 4)
    fx, fy = source.width / drawn.width, source.height / drawn.height
    src = source.convert("RGB").crop(
        (2 * fx, 2 * fy, source.width - 2 * fx, source.height - 2 * fy)
    )
    a = np.asarray(inner.convert("RGB").resize(size, Image.Resampling.BOX), float)
    b = np.asarray(src.resize(size, Image.Resampling.BOX), float)
    return float(np.abs(a - b).mean())
