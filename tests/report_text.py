"""What a report draws, for tests that read the page as a person would: every string put on
the page (``pdf_draw.put_text``, with its size in points) and every string drawn into a chart
picture on it (Pillow: the per-frame strip; size 0)."""

from __future__ import annotations

from collections.abc import Callable

from PIL import ImageDraw

from octviewer.core.report import pdf_draw


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
