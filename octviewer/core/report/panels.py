"""The drawn parts of a report: fonts, the B-scan and heatmap panels, the colour bar and
the model-output answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from octviewer.core import overlay
from octviewer.core.report.charts import (
    INK,
    MUTED,
    draw_probability_bars,
    draw_wrapped,
    line_height,
    text,
)
from octviewer.core.report.fonts import font
from octviewer.core.results import NOT_EXCLUDED, FrameResult
from octviewer.core.scan import Scan

MIN_PANEL_WIDTH = 640  # frames narrower than this are upscaled for readability
MAX_UPSCALE = 4.0
WARN_FILL = (255, 243, 205)
WARN_EDGE = (204, 140, 0)
ALERT = (176, 0, 32)
NOT_ASSESSED_HEADLINE = "NOT ASSESSED"
UNRELIABLE_CAPTION = "Model output (unreliable, not assessed)"
WITHHELD = (
    "The model's probabilities and heatmap are left out because this frame is not assessed "
    "(export with 'Show model output anyway' / --show-unreliable to include them, marked "
    "unreliable)."
)


@dataclass(frozen=True)
class _Fonts:
    small: Any
    body: Any
    bold: Any
    h2: Any
    h1: Any


def _fonts(unit: float) -> _Fonts:
    def px(n: float) -> int:
        return max(10, round(n * unit))

    return _Fonts(
        font(px(15)), font(px(18)), font(px(18), True), font(px(22), True), font(px(30), True)
    )


def frame_panels(
    scan: Scan, fr: FrameResult, colormap: str, opacity: float, contours: tuple[float, ...] = ()
) -> tuple[Image.Image, Image.Image | None]:
    frame = scan.frame_as_uint8(fr.frame_index)
    rows, cols = frame.shape
    scale = min(MAX_UPSCALE, max(1.0, MIN_PANEL_WIDTH / cols))
    size = (round(cols * scale), round(rows * scale))
    left = Image.fromarray(frame, "L").convert("RGB")
    right = None
    cam = fr.cam  # upsampled from the model's grid here, where it is drawn
    if cam is not None:
        right = Image.fromarray(overlay.blend(frame, cam, colormap, opacity, contours), "RGB")
    if scale > 1.0:
        left = left.resize(size, Image.Resampling.BICUBIC)
        right = right.resize(size, Image.Resampling.BICUBIC) if right is not None else None
    return left, right


def colorbar(colormap: str, width: int, height: int) -> Image.Image:
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    return Image.fromarray(overlay.colorize(ramp, colormap)[..., :3], "RGB")


def _draw_answer(
    d: ImageDraw.ImageDraw,
    x: float,
    y: float,
    width: float,
    fr: FrameResult,
    f: _Fonts,
    show_unreliable: bool,
) -> int:
    """The headline and the probabilities; returns the height used.

    Assessable: the class and its probability in large type, bars. Not assessed: NOT ASSESSED
    and the reason, then the probabilities only small and captioned unreliable when asked."""
    lh = line_height(f.body)
    h = 0
    text(d, (x, y), "Model output", f.h2)
    h += line_height(f.h2)
    if fr.assessable:
        headline = f"{fr.predicted_class}  {100 * fr.confidence:.1f} %"
        if fr.reassurance_withheld:
            text(d, (x, y + h), NOT_EXCLUDED, f.h1, WARN_EDGE)
            h += line_height(f.h1) + 2
            text(d, (x, y + h), headline, f.h2, WARN_EDGE)
        elif fr.is_flagged:
            text(d, (x, y + h), "UNCERTAIN — " + headline, f.h1, WARN_EDGE)
        else:
            text(d, (x, y + h), headline, f.h1, INK)
        h += line_height(f.h1) + 4
        h += draw_probability_bars(
            d, x, y + h, width, fr.class_names, fr.probabilities, fr.predicted_index, f.body, f.bold
        )
        if fr.ood_text:
            h += draw_wrapped(d, x, y + h, fr.ood_text.capitalize() + ".", f.small, width, MUTED)
        return h + round(lh * 0.5)
    text(d, (x, y + h), NOT_ASSESSED_HEADLINE, f.h1, ALERT)
    h += line_height(f.h1) + 4
    h += draw_wrapped(d, x, y + h, fr.reason_text or "", f.body, width) + round(lh * 0.4)
    if fr.ood_text:
        h += draw_wrapped(d, x, y + h, fr.ood_text.capitalize() + ".", f.small, width, MUTED)
    if show_unreliable:
        text(d, (x, y + h), UNRELIABLE_CAPTION, f.small, ALERT)
        h += line_height(f.small)
        h += draw_probability_bars(
            d,
            x,
            y + h,
            width * 0.7,
            fr.class_names,
            fr.probabilities,
            fr.predicted_index,
            f.small,
            f.small,
        )
    else:
        h += draw_wrapped(d, x, y + h, WITHHELD, f.small, width, MUTED)
    return h + round(lh * 0.5)
