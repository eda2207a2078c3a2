"""The PNG report: the printable page (:mod:`octviewer.core.report.pdf`) rasterised by PDFium
at :data:`PNG_DPI`, with the report's facts for machines in PNG text chunks.

One layout serves both files, so the PNG has the fixed size of the page (A4 portrait
1654 × 2339 px, US Letter 1700 × 2200 px at 200 dpi) whatever the input; the B-scan, heatmap,
localizer and strip are scaled into their panels.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from octviewer.core.report import volume as report_volume
from octviewer.core.report.facts import choose_frame, text_chunks
from octviewer.core.report.output import png_bytes, write_report_file
from octviewer.core.report.pdf import PrintOptions, pdf_to_png, render_pdf
from octviewer.core.results import ScanResult
from octviewer.core.scan import Scan

log = logging.getLogger(__name__)

#: The PNG report's resolution. At 200 dpi a B-scan panel (90 mm wide) is about 710 px, the
#: width of a typical B-scan (512-768 px), so speckle, layers and the heatmap stay legible.
PNG_DPI = 200
PAGE_CHUNK = "octviewer:page"


def report_options(options: PrintOptions | None = None, **keywords: Any) -> PrintOptions:
    """``options``, or the options named by the keywords of :class:`PrintOptions`
    (``frame_index``, ``include_identity``, ``colormap``, ``opacity``, ``contours``,
    ``created``, ``show_unreliable``, ``page``); ``created`` is fixed to now when unset, so the
    page and its text chunks state the same time."""
    if options is not None and keywords:
        raise TypeError("Pass either a PrintOptions or its keywords, not both.")
    opts = options if options is not None else PrintOptions(**keywords)
    if opts.created is None:
        opts = replace(opts, created=_dt.datetime.now().astimezone())
    return opts


def report_chunks(scan: Scan, result: ScanResult, options: PrintOptions) -> dict[str, str]:
    """The PNG text chunks of a report (see :mod:`octviewer.core.report`)."""
    fr = choose_frame(result, options.frame_index)
    chunks = text_chunks(
        scan,
        result,
        fr,
        include_identity=options.include_identity,
        created=options.created,
        show_unreliable=options.show_unreliable,
    )
    chunks[PAGE_CHUNK] = options.page
    if scan.is_volume and len(result.frames) > 1:
        chunks[report_volume.CHUNK_KEY] = report_volume.map_chunk(scan, result)
    return chunks


def render_report(
    scan: Scan,
    result: ScanResult,
    options: PrintOptions | None = None,
    *,
    dpi: int = PNG_DPI,
    **keywords: Any,
) -> Image.Image:
    """The report of one frame (default: the most suspicious analysed frame) as an RGB image:
    the printable page at ``dpi``. ``info`` holds the text chunks :func:`save_report` writes.

    ``options`` or its keywords (:func:`report_options`); ``show_unreliable``: for a frame that
    is not assessed, draw its probabilities and heatmap anyway (marked unreliable)."""
    opts = report_options(options, **keywords)
    return _page_image(scan, result, opts, render_pdf(scan, result, opts), dpi)


def _page_image(
    scan: Scan, result: ScanResult, opts: PrintOptions, pdf: bytes, dpi: int
) -> Image.Image:
    """The page of ``pdf`` rasterised at ``dpi``, with the report's text chunks."""
    img = pdf_to_png(pdf, dpi)[0]
    img.info.update(report_chunks(scan, result, opts))
    img.info["dpi"] = (dpi, dpi)
    return img


def _png_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix.lower() == ".png" else path.with_name(path.name + ".png")


def _write_png(path: Path, img: Image.Image) -> None:
    write_report_file(path, png_bytes(img, dpi=img.info["dpi"], compress_level=3))
    log.info("Report written: %s", path.name)


def save_report(
    scan: Scan,
    result: ScanResult,
    path: str | Path,
    options: PrintOptions | None = None,
    **keywords: Any,
) -> Path:
    """Render the report and write it as PNG (with its text chunks and its resolution) to
    ``path`` (``.png`` added when missing); returns the path.

    The file is written to a temporary name first and renamed, so a failed write never leaves
    a half-written report behind.
    """
    path = _png_path(path)
    _write_png(path, render_report(scan, result, options, **keywords))
    return path


def save_report_and_pdf(
    scan: Scan, result: ScanResult, path: str | Path, options: PrintOptions | None = None
) -> tuple[Path, Path]:
    """The PNG report at ``path`` and the same page as PDF beside it (``.pdf``), from one
    rendering of the page (so both state the same creation time); returns both paths."""
    opts = report_options(options)
    pdf = render_pdf(scan, result, opts)
    png = _png_path(path)
    _write_png(png, _page_image(scan, result, opts, pdf, PNG_DPI))
    pdf_path = png.with_suffix(".pdf")
    write_report_file(pdf_path, pdf)
    log.info("PDF report written: %s", pdf_path.name)
    return png, pdf_path
