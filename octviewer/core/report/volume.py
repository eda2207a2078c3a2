"""The report's disease map: the localizer with every B-scan's line in its class colour,
drawn with Pillow from :mod:`octviewer.core.disease_map` (the window draws the same map with
Qt); the page (:mod:`.pdf_page`) places it beside its legend and :func:`map_summary`, so one
report tells the whole volume: the per-frame strip and where in the macula each answer lies.
The ``octviewer:disease_map`` text chunk holds the same facts as JSON.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image, ImageDraw

from octviewer.core import disease_map as dm
from octviewer.core.presentation import frame_number
from octviewer.core.results import ScanResult
from octviewer.core.scan import Scan

CHUNK_KEY = "octviewer:disease_map"
HOW_TO_READ = (
    "Each B-scan is drawn where it was taken, in the colour of the class the model presents "
    f"for it; stronger colour = higher confidence. Dashed white: not assessed. The frame shown "
    f"at the top of this report is {dm.MARKER_TEXT}."
)


def localizer_rgb(scan: Scan) -> Image.Image:
    assert scan.localizer is not None
    img = np.asarray(scan.localizer.image)
    if img.dtype != np.uint8:
        f = img.astype(np.float32)
        lo, hi = float(f.min()), float(f.max())
        img = ((f - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(f)).astype(np.uint8)
    if img.ndim == 3:
        return Image.fromarray(img[:, :, :3], "RGB")
    return Image.fromarray(img, "L").convert("RGB")


def _dashed(
    draw: ImageDraw.ImageDraw,
    p0: tuple[float, float],
    p1: tuple[float, float],
    fill: tuple[int, ...],
    width: int,
    dash: float,
) -> None:
    (x0, y0), (x1, y1) = p0, p1
    length = float(np.hypot(x1 - x0, y1 - y0))
    n = max(1, int(length / (2 * dash)))
    for k in range(n):
        a, b = (2 * k) / (2 * n), (2 * k + 1) / (2 * n)
        draw.line(
            (x0 + (x1 - x0) * a, y0 + (y1 - y0) * a, x0 + (x1 - x0) * b, y0 + (y1 - y0) * b),
            fill=fill,
            width=width,
        )


def map_image(m: dm.DiseaseMap, scan: Scan, size: int, current: int | None) -> Image.Image:
    """The localizer scaled to ``size`` pixels on its longer side with the map drawn on it."""
    base = localizer_rgb(scan)
    s = size / max(base.size)
    base = base.resize((round(base.width * s), round(base.height * s)), Image.Resampling.LANCZOS)
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    w = max(2, round(m.line_width * s))
    for ln in m.lines:
        _draw_line(d, ln, s, w, ln.strength)
    if current is not None and 0 <= current < len(m.lines):
        ln = m.lines[current]  # outlined, then drawn again at full strength: it keeps its colour
        xy = (ln.start[0] * s, ln.start[1] * s, ln.end[0] * s, ln.end[1] * s)
        for rgb, width in dm.marker_rims(w):
            d.line(xy, fill=(*rgb, 255), width=round(width))
        _draw_line(d, ln, s, w, 1.0)
    return Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB")


def _draw_line(d: ImageDraw.ImageDraw, ln: dm.MapLine, s: float, w: int, strength: float) -> None:
    """One map line at scale ``s``: its class colour (opacity from ``strength``), dashed white
    when not assessed, thin grey when not analysed yet."""
    p0 = (ln.start[0] * s, ln.start[1] * s)
    p1 = (ln.end[0] * s, ln.end[1] * s)
    if ln.status == "assessed":
        d.line((*p0, *p1), fill=(*ln.color, round(255 * (0.25 + 0.75 * strength))), width=w)
    elif ln.status == "not assessed":
        _dashed(d, p0, p1, (*ln.color, 230), max(2, round(w * 0.6)), dash=max(4.0, 2.0 * w))
    else:
        d.line((*p0, *p1), fill=(*ln.color, 150), width=1)


def map_summary(m: dm.DiseaseMap, result: ScanResult) -> str:
    """``"6 B-scans: 2 × CNV, 1 × DME, ..., 1 not assessed"``: what the map shows, counted."""
    counts = [
        f"{sum(ln.class_name == name for ln in m.lines)} × {name}" for name in result.class_names
    ]
    summary = f"{len(m.lines)} B-scans: " + ", ".join(counts)
    n_na = sum(ln.status == "not assessed" for ln in m.lines)
    return summary + (f", {n_na} not assessed" if n_na else "")


def map_chunk(scan: Scan, result: ScanResult) -> str:
    """The map as JSON for the ``octviewer:disease_map`` text chunk (frame numbers 1-based)."""
    m = dm.build_disease_map(scan, result)
    if m is None:
        return json.dumps(
            {"title": dm.MAP_TITLE, "available": False, "reason": dm.unavailable_reason(scan)}
        )
    frames = [
        {
            "frame": frame_number(ln.frame_index),
            "status": ln.status,
            "class": ln.class_name,
            "confidence": round(ln.strength, 6) if ln.status == "assessed" else None,
            "line": [round(float(v), 2) for v in (*ln.start, *ln.end)],
        }
        for ln in m.lines
    ]
    return json.dumps(
        {"title": dm.MAP_TITLE, "available": True, "frames": frames}, ensure_ascii=False
    )
