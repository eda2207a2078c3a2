"""Rendering a whole report image and writing it as PNG with its text chunks."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from octviewer._version import __version__
from octviewer.core import overlay, report_volume
from octviewer.core.filemode import apply_umask
from octviewer.core.report.facts import (
    choose_frame,
    identity_rows,
    metadata_rows,
    source_label,
    text_chunks,
)
from octviewer.core.report.panels import (
    ALERT,
    HEATMAP_LEGEND,
    WARN_EDGE,
    WARN_FILL,
    _colorbar,
    _draw_answer,
    _fonts,
    _panels,
)
from octviewer.core.report_charts import (
    MUTED,
    draw_key_values,
    draw_probability_strip,
    draw_wrapped,
    line_height,
    text,
    text_width,
    wrap,
)
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
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
            f"The result refers to frame {fr.frame_index}, but the scan has {scan.n_frames} frame(s)."
        )
    created = created or _dt.datetime.now().astimezone()
    revealed = fr.assessable or show_unreliable
    left, right = _panels(
        scan, fr if revealed else replace(fr, cam=None), colormap, opacity, contours
    )
    pw, ph = left.size
    width = max(1280, 2 * pw + 3 * 32)
    u = width / 1600
    f = _fonts(max(0.85, u))
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
    d = ImageDraw.Draw(img)
    lh = line_height(f.body)

    # header: title left, disclaimer banner right
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
    y += draw_wrapped(d, margin, y, sub, f.body, inner, MUTED) + round(lh * 0.4)

    # images
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
    y += ph + round(lh * 0.35)
    if right is not None:
        cb_x = margin + pw + gap
        cb_w, cb_h = min(pw, round(260 * u) if u > 1 else 260), max(10, round(lh * 0.55))
        text(d, (cb_x, y), "low", f.small, MUTED)
        bar_x = cb_x + text_width("low ", f.small) + 4
        img.paste(_colorbar(colormap, cb_w, cb_h), (round(bar_x), round(y + lh * 0.12)))
        text(d, (bar_x + cb_w + 6, y), "high attention", f.small, MUTED)
        y += lh
        y += draw_wrapped(d, cb_x, y, HEATMAP_LEGEND, f.body, pw)
    y += round(lh * 0.8)

    # two columns: result (left), scan facts (right)
    col_w = (inner - gap) / 2
    x_left, x_right = margin, margin + col_w + gap
    y_left = y_right = y
    y_left += _draw_answer(d, x_left, y_left, col_w, fr, f, show_unreliable)
    for flag in fr.cautions:
        lines_h = len(
            wrap(flag.warning, f.body, col_w - 2 * f.body.size - text_width("Warning: ", f.bold))
        )
        box_h = lines_h * lh + f.body.size
        d.rectangle(
            (x_left, y_left, x_left + col_w, y_left + box_h),
            fill=WARN_FILL,
            outline=WARN_EDGE,
            width=2,
        )
        text(d, (x_left + f.body.size, y_left + f.body.size / 2), "Warning:", f.bold, WARN_EDGE)
        off = f.body.size + text_width("Warning: ", f.bold)
        draw_wrapped(
            d,
            x_left + off,
            y_left + f.body.size / 2,
            flag.warning,
            f.body,
            col_w - off - f.body.size,
        )
        y_left += box_h + round(lh * 0.4)

    text(d, (x_right, y_right), "Scan", f.h2)
    y_right += line_height(f.h2)
    y_right += draw_key_values(
        d, x_right, y_right, metadata_rows(scan, fr.frame_index), f.body, f.bold, col_w
    )
    if include_identity:
        y_right += round(lh * 0.5)
        text(d, (x_right, y_right), "Patient (included on request)", f.h2)
        y_right += line_height(f.h2)
        y_right += draw_key_values(
            d, x_right, y_right, identity_rows(scan.identity), f.body, f.bold, col_w
        )
    y = max(y_left, y_right) + round(lh * 0.6)

    # volume: per-frame probability strip
    if len(result.frames) > 1:
        text(d, (margin, y), "Class probability per frame", f.h2)
        y += line_height(f.h2)
        strip_h = round(300 * max(1.0, u))
        draw_probability_strip(
            d,
            (margin, y, width - margin, y + strip_h),
            [fr_.frame_index for fr_ in result.frames],
            scan.n_frames,
            fr.class_names,
            result.probability_matrix(),
            fr.frame_index,
            f.small,
            assessable=[fr_.assessable for fr_ in result.frames],
        )
        y += strip_h + round(lh * 0.5)
    if volume_panel is not None:
        img.paste(volume_panel, (margin, y))
        y += volume_panel.height + round(lh * 0.5)

    # footer
    d.line((margin, y, width - margin, y), fill=(200, 200, 200), width=1)
    y += round(lh * 0.4)
    model = result.model
    footer = [
        f"Model: {model.name} {model.version}  ·  {model.architecture}  ·  SHA-256 {model.short_sha}"
        + (f"  ·  licence: {model.licence}" if model.licence else ""),
        f"octviewer {__version__}  ·  analysed on {result.device}  ·  report created "
        f"{created.strftime('%Y-%m-%d %H:%M')} ({created.strftime('%Z') or 'local time'})",
    ]
    for line in footer:
        y += draw_wrapped(d, margin, y, line, f.small, inner, MUTED)
    text(d, (margin, y + 4), DISCLAIMER, f.bold, ALERT)
    y += line_height(f.bold) + margin

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
    info = PngInfo()
    for k, v in img.info.items():
        if isinstance(v, str):
            info.add_text(k, v)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".octviewer-", suffix=".png", dir=path.parent)
        try:
            apply_umask(fd)  # mkstemp makes it 0600; a report gets the user's normal mode
            with os.fdopen(fd, "wb") as fh:
                img.save(fh, format="PNG", pnginfo=info, compress_level=3)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ReportError(
            f"The report could not be written to {path}: {e.strerror or e}. "
            "Check that the folder exists, is writable and has free space."
        ) from e
    log.info("Report written: %s", path.name)
    return path
