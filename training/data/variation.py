"""The variation real macular B-scans have beyond one export style, as batch augmentations.

Each group has a name (``octviewer-train --augment-extra NAME,...``) so that it can be measured
alone and left out (docs/TRAINING.md, "Augmentations measured"). All work on resized frames
``x`` (B, 1, H, W) in [0, 1] before normalisation, and draw every random number from one
``torch.Generator``, so a seeded batch is reproducible.

* ``display``: raw-vs-exported intensity mapping. The frame is taken back to ``.vol``
  reflectivity through HEYEX's fourth root (``octviewer.core.io.vol_display``) and shown again
  through a neighbouring mapping: another root (exponent 1/5.5 .. 1/3) or the logarithm eyepy
  and some exporters use.
* ``speckle``: averaging depth. Multiplicative speckle (a single, unaveraged B-scan; Optovue
  and most line scans average fewer frames than Kermany's exports) or a 3x3 box blur (deeper
  averaging).
* ``contrast``: gamma 0.7-1.4 and a contrast stretch 0.8-1.25 about the mean (other devices'
  brightness and contrast settings).
* ``zoom``: scale and aspect. An anisotropic zoom: the horizontal scale 0.65-1.5 times the
  vertical (512, 768 or 1024 A-scans over the same 6 mm, or a 9 mm line), zoomed in (a crop) or
  out (a scan padded into a larger canvas, black or white, as EDI and rotated exports are).
* ``overlay``: burned-in annotations. A scale bar and a block of text-like marks in a corner,
  white or black, as exports and screenshots carry.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from octviewer.core.io.vol_display import DISPLAY_EXPONENT

#: The groups, in the order they are applied.
GROUPS = ("display", "speckle", "contrast", "zoom", "overlay")

#: Probability that a group changes a given image.
PROBABILITY = 0.5


def _u(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def _chosen(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def _per_image(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.device, x.dtype)[:, None, None, None]


def display_mapping(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Show the reflectivity behind ``x`` through a neighbouring display mapping."""
    b = x.shape[0]
    refl = x.clamp(0, 1) ** (1.0 / DISPLAY_EXPONENT)
    exponent = _per_image(1.0 / _u(b, 3.0, 5.5, g), x)
    root = refl**exponent
    log = ((torch.log(refl + 2.44e-4) + 8.3) / 8.285).clamp(0, 1)
    use_log = _per_image(_chosen(b, 0.3, g).float(), x)
    out = use_log * log + (1 - use_log) * root
    pick = _per_image(_chosen(b, PROBABILITY, g).float(), x)
    return pick * out + (1 - pick) * x


def speckle(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Multiplicative speckle (fewer frames averaged) or a box blur (more)."""
    b = x.shape[0]
    sigma = _per_image(_u(b, 0.05, 0.35, g), x)
    noise = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
    noisy = (x * (1 + sigma * noise)).clamp(0, 1)
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    kind = torch.rand(b, generator=g)
    use_noise = _per_image((kind < PROBABILITY * 0.7).float(), x)
    use_blur = _per_image(((kind >= PROBABILITY * 0.7) & (kind < PROBABILITY)).float(), x)
    return use_noise * noisy + use_blur * blurred + (1 - use_noise - use_blur) * x


def contrast(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Gamma and a contrast stretch about each image's mean."""
    b = x.shape[0]
    gamma = _per_image(torch.exp(_u(b, math.log(0.7), math.log(1.4), g)), x)
    stretch = _per_image(_u(b, 0.8, 1.25, g), x)
    y = x.clamp(0, 1) ** gamma
    m = y.mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - m) * stretch + m).clamp(0, 1)
    pick = _per_image(_chosen(b, PROBABILITY, g).float(), x)
    return pick * y + (1 - pick) * x


def zoom(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Anisotropic zoom in (crop) or out (padding, black or white), at a random position."""
    b = x.shape[0]
    sy = torch.exp(_u(b, math.log(0.6), math.log(1.3), g))  # output size / input size
    sx = sy * torch.exp(_u(b, math.log(0.65), math.log(1.5), g))
    # keep the scan on the canvas: shift at most the slack (or the overhang when zoomed in)
    tx = _u(b, -1, 1, g) * (1 - sx).abs()
    ty = _u(b, -1, 1, g) * (1 - sy).abs()
    fill = (torch.rand(b, generator=g) < 0.5).float()
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / sx, 1 / sy
    theta[:, 0, 2], theta[:, 1, 2] = -tx / sx, -ty / sy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    f = _per_image(fill, x)
    out = F.grid_sample(x - f, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = (out + f).clamp(0, 1)
    pick = _per_image(_chosen(b, PROBABILITY, g).float(), x)
    return pick * out + (1 - pick) * x


def overlay(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A scale bar and a block of text-like marks burned into a corner."""
    out = x.clone()
    b, _, h, w = x.shape
    for i in range(b):
        if float(torch.rand(1, generator=g)) >= PROBABILITY:
            continue
        value = float(torch.rand(1, generator=g) < 0.8)  # mostly white, as exports draw them
        bottom = bool(torch.rand(1, generator=g) < 0.5)
        right = bool(torch.rand(1, generator=g) < 0.5)
        # scale bar: 8-25 % of the width, 1-3 px thick, a few pixels from the corner
        bar_w = max(2, int(w * float(_u(1, 0.08, 0.25, g))))
        bar_h = 1 + int(torch.randint(0, 3, (1,), generator=g))
        y0 = h - 4 - bar_h if bottom else 3
        x0 = w - 4 - bar_w if right else 3
        out[i, :, y0 : y0 + bar_h, x0 : x0 + bar_w] = value
        # text: a row of glyph-sized marks beside the bar's corner, on the other side
        gh = max(3, h // 40)
        ty0 = 3 if bottom else h - 3 - gh
        for k in range(int(torch.randint(3, 12, (1,), generator=g))):
            gx = 3 + k * (gh + 1) if not right else w - 3 - (k + 1) * (gh + 1)
            if gx < 0 or gx + gh > w:
                break
            mask = torch.rand(gh, gh, generator=g) < 0.45
            patch = out[i, 0, ty0 : ty0 + gh, gx : gx + gh]
            patch[mask.to(patch.device)] = value
    return out


_APPLY = {
    "display": display_mapping,
    "speckle": speckle,
    "contrast": contrast,
    "zoom": zoom,
    "overlay": overlay,
}


def apply_variation(x: torch.Tensor, groups: tuple[str, ...], g: torch.Generator) -> torch.Tensor:
    """Apply the named groups (a subset of :data:`GROUPS`) in their fixed order."""
    for name in GROUPS:
        if name in groups:
            x = _APPLY[name](x, g)
    return x.clamp(0, 1)
