"""The pictures and words of the report page: the B-scan and heatmap panels (small frames
upscaled first), the colour bar, the alert and warning colours, and the fixed sentences of a
frame that is not assessed."""

from __future__ import annotations

import numpy as np
from PIL import Image

from octviewer.core import overlay
from octviewer.core.results import FrameResult
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


def image_panels(
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
