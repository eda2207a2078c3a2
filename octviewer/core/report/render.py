"""Rendering a whole report image and writing it as PNG with its text chunks."""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageDraw

from octviewer.core import overlay
from octviewer.core.presentation import frame_text
from octviewer.core.report import volume as report_volume
from octviewer.core.report.charts import line_height
from octviewer.core.report.facts import choose_frame, text_chunks
from octviewer.core.report.output import png_bytes, write_report_file
from octviewer.core.report.panels import image_panels, scaled_fonts
from octviewer.core.report.sections import (
    Page,
    draw_columns,
    draw_footer,
    draw_header,
    draw_heatmap_key,
    draw_images,
    draw_strip,
)
from octviewer.core.results import ScanResult
from octviewer.core.scan import Scan
from octviewer.errors import ReportError

log = logging.getLogger(__name__)


def render_report(
    scan: Scan,
    result: ScanResult,
    *,
    frame_index: int | None = None,
    include_identity: bool = False,
    colormap: str = overlay.DEFAULT_COLORMAP,
    opacity: float = overlay.DEFAULT_OPACITY,
    contours: tuple[float, ...] = (),
    created: _dt.datetime | None = None,
    show_unreliable: bool = False,
) -> Image.Image:
    """Render the report of one frame (default: the most suspicious analysed frame).

    ``show_unreliable``: for a frame that is not assessed, draw its probabilities and heatmap
    anyway (marked unreliable); by default they are left out.
    Returns an RGB image whose ``info`` holds the text chunks :func:`save_report` writes.
    """
    fr = choose_frame(result, frame_index)
    if not 0 <= fr.frame_index < scan.n_frames:
        raise ReportError(
            f"The result refers to {frame_text(fr.frame_index)}, but the scan has "
            f"{scan.n_frames} frame(s)."
        )
    created = created or _dt.datetime.now().astimezone()
    revealed = fr.assessable or show_unreliable
    left, right = image_panels(
        scan, fr if revealed else replace(fr, heatmap=None), colormap, opacity, contours
    )
    pw, ph = left.size
    width = max(1280, 2 * pw + 3 * 32)
    u = width / 1600
    f = scaled_fonts(max(0.85, u))
    margin = round(32 * u) if u > 1 else 32
    gap = width - 2 * margin - 2 * pw
    inner = width - 2 * margin
    volume_panel = (
        report_volume.map_panel(scan, result, inner, fr.frame_index, f)
        if scan.is_volume and len(result.frames) > 1
        else None
    )
    height_bound = ph + round(1600 * max(1.0, u)) + (380 if len(result.frames) > 1 else 0)
    height_bound += 0 if volume_panel is None else volume_panel.height + 40
    img = Image.new("RGB", (width, height_bound), "white")
    page = Page(
        img, ImageDraw.Draw(img), f, width, margin, gap, inner, pw, ph, u, line_height(f.body)
    )

    y = draw_header(page, scan, fr, include_identity)
    y = draw_images(page, y, scan, fr, left, right, revealed)
    if right is not None:
        y = draw_heatmap_key(page, y, colormap)
    y += round(page.lh * 0.8)
    y = draw_columns(page, y, scan, fr, include_identity, show_unreliable)
    if len(result.frames) > 1:
        y = draw_strip(page, y, scan, result, fr)
    if volume_panel is not None:
        img.paste(volume_panel, (margin, y))
        y += volume_panel.height + round(page.lh * 0.5)
    y = draw_footer(page, y, result, created)

    out = img.crop((0, 0, width, min(y, height_bound)))
    out.info.update(
        text_chunks(
            scan,
            result,
            fr,
            include_identity=include_identity,
            created=created,
            show_unreliable=show_unreliable,
        )
    )
    if volume_panel is not None:
        out.info[report_volume.CHUNK_KEY] = report_volume.map_chunk(scan, result)
    return out


def save_report(
    scan: Scan,
    result: ScanResult,
    path: str | Path,
    *,
    frame_index: int | None = None,
    include_identity: bool = False,
    colormap: str = overlay.DEFAULT_COLORMAP,
    opacity: float = overlay.DEFAULT_OPACITY,
    contours: tuple[float, ...] = (),
    created: _dt.datetime | None = None,
    show_unreliable: bool = False,
) -> Path:
    """Render the report and write it as PNG (with its text chunks) to ``path``; returns it.

    The file is written to a temporary name first and renamed, so a failed write never leaves
    a half-written report behind.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    img = render_report(
        scan,
        result,
        frame_index=frame_index,
        include_identity=include_identity,
        colormap=colormap,
        opacity=opacity,
        contours=contours,
        created=created,
        show_unreliable=show_unreliable,
    )
    write_report_file(path, png_bytes(img, compress_level=3))
    log.info("Report written: %s", path.name)
    return path
