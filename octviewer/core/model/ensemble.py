"""An ensemble of networks stored as one model: averaged logits, one attention map.

Several networks trained on the same data with different seeds disagree on hard cases; their
averaged logits are steadier than any one of them. To keep the rest of octviewer unchanged (one
model, one forward, one Grad-CAM target), the members' final feature maps pass together through
one identity layer, ``stack``, before each member's own head:

    feats_k = member_k.forward_features(x)                  (B, C_k, h, w) for every k
    stacked = stack(cat(feats_1 ... feats_K, dim=1))         the Grad-CAM target
    logits  = mean_k member_k.forward_head(stacked[:, slice_k])

Grad-CAM of the averaged logit at ``stack`` is then the ensemble's map: each member's channels
weighted by the gradients of the mean, summed before the ReLU. Members must share the feature
grid (same architecture family and input size); they are timm models with ``forward_features``
and ``forward_head`` (CNNs; token models are not supported as members).

With ``hflip_tta`` every member also sees the horizontally mirrored B-scan (test-time
augmentation: the training augmentations include that flip); the mirrored view's feature map is
flipped back before it joins ``stack``, so the attention map stays aligned with the image.

Bundle config: ``architecture="ensemble"``, ``arch_kwargs={"members": [{"architecture":
"timm/resnet18", "arch_kwargs": {...}}, ...], "hflip_tta": false}``, ``cam_target_layer="stack"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from octviewer.errors import ModelFormatError

if TYPE_CHECKING:
    import torch

ENSEMBLE = "ensemble"
ENSEMBLE_CAM_TARGET = "stack"


def build_ensemble(
    num_classes: int,
    members: list[dict[str, Any]],
    *,
    create: Callable[..., torch.nn.Module],
    hflip_tta: bool = False,
    meta: bool = False,
) -> torch.nn.Module:
    """Build an :class:`Ensemble` from member specs. ``create`` builds one member
    (``create(architecture, num_classes, meta=..., **arch_kwargs)``: ``create_model`` passes
    itself, so this module needs no import of the architectures); ``meta`` builds the members
    on the ``meta`` device too."""
    if not isinstance(members, list) or len(members) < 2:
        raise ModelFormatError(
            "An ensemble model needs a list of at least two members in its configuration. "
            "Re-create the model bundle with octviewer-train ensemble."
        )
    nets = []
    for spec in members:
        arch = spec.get("architecture") if isinstance(spec, dict) else None
        if not isinstance(arch, str) or arch == ENSEMBLE:
            raise ModelFormatError(
                f"An ensemble member is not a valid network ({spec!r}). "
                "Re-create the model bundle with octviewer-train ensemble."
            )
        kwargs = spec.get("arch_kwargs") or {}
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ModelFormatError(
                f"The settings of the ensemble member '{arch}' are not a JSON object "
                f"({type(kwargs).__name__}). Re-create the model bundle with octviewer-train "
                "ensemble."
            )
        net = create(arch, num_classes, meta=meta, **kwargs)
        if not (hasattr(net, "forward_features") and hasattr(net, "forward_head")):
            raise ModelFormatError(
                f"The network '{arch}' cannot be an ensemble member (it has no separate "
                "feature and head stages)."
            )
        nets.append(net)
    return ensemble_of(nets, hflip_tta=bool(hflip_tta))


def ensemble_of(nets: list[torch.nn.Module], *, hflip_tta: bool) -> torch.nn.Module:
    """An :class:`Ensemble` of networks already built (e.g. from the int8 cache)."""
    return _ensemble_class()(nets, hflip_tta=hflip_tta)


def _ensemble_class() -> type:
    import torch
    from torch import nn

    class Ensemble(nn.Module):
        """Mean of the members' logits; the members' feature maps meet at ``stack``."""

        def __init__(self, members: list[nn.Module], *, hflip_tta: bool = False) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)
            self.stack = nn.Identity()
            self.hflip_tta = hflip_tta

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            heads, feats = [], []
            for m in self.members:
                heads.append(m)
                feats.append(m.forward_features(x))
                if self.hflip_tta:  # mirrored view, its map flipped back to image orientation
                    heads.append(m)
                    feats.append(m.forward_features(x.flip(-1)).flip(-1))
            if len({tuple(f.shape[2:]) for f in feats}) != 1:
                raise ValueError("ensemble members give feature maps of different sizes")
            stacked = self.stack(torch.cat(feats, dim=1))
            parts = stacked.split([f.shape[1] for f in feats], dim=1)
            logits = [m.forward_head(p) for m, p in zip(heads, parts, strict=True)]
            return torch.stack(logits).mean(0)

    return Ensemble
