"""The MIRAGE fine-tuning augmentations, applied to whole batches (CPU or GPU).

Order per batch of resized frames ``x`` (B, 1, H, W) in [0, 1]:

1. random horizontal flip (p = 0.5);
   then the real-data variation groups named in ``AugmentConfig.extra``
   (:mod:`training.data.variation`);
2. random affine per image: rotation ±10°, shift up to 10 % of each side, scale 0.9-1.1,
   shear ±5°, bilinear, the uncovered area filled with ``fill`` (1 = white, as Kermany's
   padding is white);
3. ``octviewer.core.preprocess.normalize`` (the viewer's normalisation);
4. intensity ×U(0.8, 1.2), clipped to [0, 1]. It comes after the per-image min-max on purpose:
   before it, the min-max would undo the scaling.

One ``torch.Generator`` drives everything, so a seeded epoch is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from octviewer.core.model.config import PreprocessConfig


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5
    rotate_deg: float = 10.0
    translate: float = 0.10
    scale: tuple[float, float] = (0.9, 1.1)
    shear_deg: float = 5.0
    intensity: tuple[float, float] = (0.8, 1.2)
    fill: float = 1.0
    #: groups of ``training.data.variation`` (real-data variation), applied before the affine warp
    extra: tuple[str, ...] = ()


def _uniform(
    n: int, lo: float, hi: float, g: torch.Generator, device: torch.device
) -> torch.Tensor:
    return (torch.rand(n, generator=g) * (hi - lo) + lo).to(device)


def random_affine(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Per-image random affine warp of (B, C, H, W) with constant fill."""
    b = x.shape[0]
    dev = x.device
    angle = _uniform(b, -cfg.rotate_deg, cfg.rotate_deg, g, dev) * math.pi / 180
    shear = _uniform(b, -cfg.shear_deg, cfg.shear_deg, g, dev) * math.pi / 180
    scale = _uniform(b, cfg.scale[0], cfg.scale[1], g, dev)
    tx = _uniform(b, -cfg.translate, cfg.translate, g, dev) * 2  # grid units span 2
    ty = _uniform(b, -cfg.translate, cfg.translate, g, dev) * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    # forward map M = R(angle) @ Shear_x(shear) * scale; affine_grid needs the inverse map
    a = torch.stack([cos, -sin * 1.0 + cos * torch.tan(shear)], dim=-1)
    c = torch.stack([sin, cos + sin * torch.tan(shear)], dim=-1)
    m = torch.stack([a, c], dim=1) * scale[:, None, None]  # (B, 2, 2)
    inv = torch.linalg.inv(m)
    t = torch.stack([tx, ty], dim=-1)[..., None]  # (B, 2, 1)
    theta = torch.cat([inv, -inv @ t], dim=2).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(
        x - cfg.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out + cfg.fill


def augment_batch(
    x: torch.Tensor, pre: PreprocessConfig, cfg: AugmentConfig, g: torch.Generator
) -> torch.Tensor:
    """Augment then normalise a batch of resized frames (see the module docstring)."""
    from octviewer.core.preprocess import normalize

    b = x.shape[0]
    flip = (torch.rand(b, generator=g) < cfg.hflip).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if cfg.extra:
        from training.data.variation import apply_variation

        x = apply_variation(x, cfg.extra, g)
    x = random_affine(x, cfg, g).clamp_(0.0, 1.0)
    x = normalize(x, pre)
    factor = _uniform(b, cfg.intensity[0], cfg.intensity[1], g, x.device)
    return (x * factor[:, None, None, None]).clamp_(0.0, 1.0)


def eval_batch(x: torch.Tensor, pre: PreprocessConfig) -> torch.Tensor:
    """What the viewer does to a resized frame: normalisation only."""
    from octviewer.core.preprocess import normalize

    return normalize(x, pre)


def mixup(
    x: torch.Tensor, targets: torch.Tensor, alpha: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018) on inputs and soft targets with lambda ~ Beta(alpha, alpha)."""
    if alpha <= 0 or x.shape[0] < 2:
        return x, targets
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]
