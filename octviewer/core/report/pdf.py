"""The report page: one fixed page (A4 portrait, or US Letter) as a vector PDF with the fonts
embedded; the PNG report is this page rasterised by PDFium (:mod:`.render`).

Text, rules, bars and the scan line are vector; the B-scan, heatmap, localizer and strip are
images scaled into their panels (never stretching the page, aspect kept). The panels shrink in
steps until everything fits above the footer, so a page never grows with the input; only
when even the smallest layout does not fit (many warnings and identity rows together) the
facts go on as drawn and the footer stays at the bottom.

The page (:mod:`octviewer.core.report.pdf_page`) states the research-only notice, the model
identity, and for a frame that is not assessed no class, no probabilities and no heatmap
unless ``show_unreliable``.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from octviewer.core import disease_map as dm
from octviewer.core import overlay
from octviewer.core.presentation import frame_text
from octviewer.core.report import pdf_draw as pd
from octviewer.core.report import pdf_page as sections
from octviewer.core.report.facts import choose_frame, result_record, source_label
from octviewer.core.report.output import write_report_file
from octviewer.core.report.panels import colorbar, image_panels
from octviewer.core.report.volume import map_image, map_summary
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
from octviewer.core.results import ScanResult
from octviewer.core.scan import Scan
from octviewer.errors import ReportError

log = logging.getLogger(__name__)

PAGE_SIZES: dict[str, tuple[float, float]] = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}
PANEL_HEIGHTS = (66.0, 56.0, 46.0, 38.0, 30.0)  # mm, tried in order until the page fits


@dataclass(frozen=True)
class PrintOptions:
    """How a report is drawn, as PDF and as PNG: the page size, the frame (None: the most
    suspicious), identity on request, a not-assessed frame's output anyway, the heatmap's look."""

    page: str = "A4"
    frame_index: int | None = None
    include_identity: bool = False
    show_unreliable: bool = False
    colormap: str = overlay.DEFAULT_COLORMAP
    opacity: float = overlay.DEFAULT_OPACITY
    contours: tuple[float, ...] = ()
    created: _dt.datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:  # "a4", "letter" (the CLI's spelling) are accepted
        object.__setattr__(self, "page", page_size(self.page))


def page_size(name: str) -> str:
    """The page name as :data:`PAGE_SIZES` spells it (``a4`` -> ``A4``, ``letter`` -> ``Letter``)."""
    for key in PAGE_SIZES:
        if key.lower() == name.strip().lower():
            return key
    raise ReportError(f"Unknown page size {name!r}: choose A4 or Letter.")


def render_pdf(scan: Scan, result: ScanResult, options: PrintOptions | None = None) -> bytes:
    """The report as a PDF document (bytes): one page of ``options.page``."""
    opts = options or PrintOptions()
    fr = choose_frame(result, opts.frame_index)
    if not 0 <= fr.frame_index < scan.n_frames:
        raise ReportError(
            f"The result refers to {frame_text(fr.frame_index)}, but the scan has "
            f"{scan.n_frames} frame(s)."
        )
    created = opts.created or _dt.datetime.now().astimezone()
    revealed = fr.assessable or opts.show_unreliable
    panels = image_panels(
        scan,
        fr if revealed else replace(fr, heatmap=None),
        opts.colormap,
        opts.opacity,
        opts.contours,
    )
    w, h = PAGE_SIZES[opts.page]
    ctx = sections.PageContext(scan, result, fr, opts.include_identity, opts.show_unreliable, w, h)
    for panel_h in PANEL_HEIGHTS:
        pdf, bottom = _compose(ctx, panels, panel_h, opts.colormap)
        if bottom <= h - sections.MARGIN - sections.footer_height() - 1:
            break
        log.debug("Report page: content ends at %.1f mm with %.0f mm panels", bottom, panel_h)
    sections.footer(pdf, ctx, created)
    _metadata(pdf, ctx, created)
    return bytes(pdf.output())


def _compose(
    ctx: sections.PageContext,
    panels: tuple[Image.Image, Image.Image | None],
    panel_h: float,
    colormap: str,
) -> tuple[pd.FPDF, float]:
    """One attempt at the page with panels ``panel_h`` mm high; returns it and where it ends."""
    pdf = pd.new_document(ctx.page_format)
    y = sections.header(pdf, ctx)
    y = sections.images(pdf, ctx, y, panels, panel_h)
    if panels[1] is not None:
        y = sections.heatmap_key(pdf, ctx, y, colorbar(colormap, 400, 12))
    y += 3
    col_w = (ctx.inner - sections.GAP) / 2
    y_left = sections.answer(pdf, ctx, y, col_w)
    y_right = sections.scan_facts(pdf, ctx, y, sections.MARGIN + col_w + sections.GAP, col_w)
    y = max(y_left, y_right) + 3
    scan, result = ctx.scan, ctx.result
    if len(result.frames) > 1:
        y = sections.strip(pdf, ctx, y, panel_h * 0.45)
    loc = scan.localizer
    if scan.is_volume and len(result.frames) > 1:
        box = pd.Box(sections.MARGIN, y, ctx.inner, panel_h)
        m = dm.build_disease_map(scan, result)
        if m is None:  # say why there is no map
            y = sections.no_disease_map(pdf, box, dm.unavailable_reason(scan) or "")
        else:
            pic = map_image(m, scan, 900, ctx.fr.frame_index)
            y = sections.disease_map(pdf, box, m, pic, map_summary(m, result))
    elif not scan.is_volume and loc is not None:
        box = pd.Box(sections.MARGIN, y, col_w, panel_h)
        y = sections.scan_line(pdf, ctx, box, _localizer_image(scan))
    return pdf, y


def _localizer_image(scan: Scan) -> Image.Image:
    from octviewer.core.report.volume import localizer_rgb

    return localizer_rgb(scan)


def _metadata(pdf: pd.FPDF, ctx: sections.PageContext, created: _dt.datetime) -> None:
    model = ctx.result.model
    label = source_label(ctx.scan, include_identity=ctx.include_identity)
    pdf.set_title(f"OCT analysis report: {label}")
    pdf.set_subject(DISCLAIMER)
    pdf.set_creator("octviewer")
    pdf.set_keywords(f"model={model.name} {model.version}; sha256={model.sha256}")
    pdf.set_creation_date(created)


def save_report_pdf(
    scan: Scan, result: ScanResult, path: str | Path, options: PrintOptions | None = None
) -> Path:
    """Write the printable report as PDF to ``path`` (``.pdf`` added when missing)."""
    path = Path(path)
    if path.suffix.lower() != ".pdf":
        path = path.with_name(path.name + ".pdf")
    data = render_pdf(scan, result, options)
    write_report_file(path, data)
    log.info("PDF report written: %s", path.name)
    return path


def pdf_to_png(data: bytes, dpi: int = 150) -> list[Image.Image]:
    """Every page of a PDF rasterised at ``dpi`` (PDFium)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        return [doc[i].render(scale=dpi / 72).to_pil().convert("RGB") for i in range(len(doc))]
    finally:
        doc.close()


__all__ = [
    "PAGE_SIZES",
    "PrintOptions",
    "page_size",
    "pdf_to_png",
    "render_pdf",
    "result_record",
    "save_report_pdf",
]
