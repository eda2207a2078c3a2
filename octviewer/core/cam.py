"""One-pass Grad-CAM: the forward that gives the prediction also gives the attention map.

How: a forward hook on the target layer. Everything *before* the target runs under
``torch.no_grad()`` (no graph, no saved activations); the hook switches gradients on, replaces
the target's output by a detached leaf that requires grad, and the rest of the network (for a
ViT: the last block and the head) records the only graph there is. The backward of the chosen
class logit(s) then runs through that tail only. For several classes the same graph is reused
(``torch.autograd.grad(..., retain_graph=True)``).

Why not pytorch-grad-cam's ``GradCAM`` on the hot path: it needs its own forward with the full
autograd graph kept for the whole network (activations of all blocks held in memory), then a
backward through every block down to the input — about 3.6x one forward for MIRAGE-Base and
1.5 GB peak instead of about 0.7 GB — plus a second forward when the prediction has already been
computed, and importing it costs about 1.4 s (matplotlib, scikit-learn, OpenCV). The result is
mathematically the same (gradients at the target do not depend on anything before it), and
``tests/test_cam.py`` checks this implementation against ``GradCAM`` itself.

Token models (ViTs): the target's output (B, T, D) loses its ``model.num_prefix_tokens``
prefix and is reshaped to ``model.patch_embed.grid_size`` (16x16 for MIRAGE at 512, not the
library's 14x14). CNNs: the target's (B, C, H, W) output is used as is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from octviewer.core.model.architectures import get_submodule, is_token_model
from octviewer.errors import AnalysisError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass
class CamPass:
    """The result of :meth:`OnePassCam.forward`: logits (B, K) and the graph needed for CAMs."""

    logits: torch.Tensor
    activations: torch.Tensor  # the target's output as a leaf tensor that requires grad
    graph_logits: torch.Tensor  # logits attached to the graph (for backward)


class OnePassCam:
    """Prediction + Grad-CAM with gradients only from the head back to ``target_layer``."""

    def __init__(self, model: torch.nn.Module, target_layer: str) -> None:
        self.model = model
        self.target_layer = target_layer
        self.target = get_submodule(model, target_layer)
        self.token_model = is_token_model(model)

    def forward(self, x: torch.Tensor) -> CamPass:
        """Run the model once; the part after the target records a graph."""
        import torch

        captured: list[torch.Tensor] = []

        def hook(_module: torch.nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
            if captured:  # a target called twice in one forward: keep the first
                return out
            torch.set_grad_enabled(True)  # restored when the outer no_grad() exits
            leaf = out.detach().requires_grad_(True)
            captured.append(leaf)
            return leaf

        handle = self.target.register_forward_hook(hook)
        try:
            with torch.no_grad():
                logits = self.model(x)
        finally:
            handle.remove()
        if not captured or not logits.requires_grad:
            raise AnalysisError(
                f"The attention map could not be computed: layer '{self.target_layer}' is not on "
                "the path to the prediction. Fix cam_target_layer in the model bundle."
            )
        return CamPass(logits=logits.detach().float(), activations=captured[0], graph_logits=logits)

    def cams(
        self, cp: CamPass, classes: Sequence[int], *, retain_graph: bool = False
    ) -> torch.Tensor:
        """Grad-CAM grids (B, gh, gw), float32, for ``classes[b]`` of each sample ``b``."""
        import torch

        b = cp.graph_logits.shape[0]
        if len(classes) != b:
            raise ValueError(f"need one class per sample, got {len(classes)} for {b}")
        idx = torch.as_tensor(list(classes), device=cp.graph_logits.device)
        # Samples are independent in eval mode, so the gradient of the sum is per-sample.
        score = cp.graph_logits.gather(1, idx[:, None]).sum()
        (grads,) = torch.autograd.grad(score, cp.activations, retain_graph=retain_graph)
        return gradcam_from(self._to_grid(cp.activations.detach()), self._to_grid(grads))

    def _to_grid(self, t: torch.Tensor) -> torch.Tensor:
        """Activations to (B, C, gh, gw)."""
        if t.ndim == 4:
            return t.float()
        if t.ndim == 3 and self.token_model:
            gh, gw = (int(v) for v in self.model.patch_embed.grid_size)
            n = int(getattr(self.model, "num_prefix_tokens", 0))
            tokens = t[:, n:, :]
            if tokens.shape[1] != gh * gw:
                raise AnalysisError(
                    f"The model's token count ({tokens.shape[1]}) does not match its patch grid "
                    f"{gh}x{gw}; the attention map cannot be drawn."
                )
            return tokens.reshape(t.shape[0], gh, gw, t.shape[2]).permute(0, 3, 1, 2).float()
        raise AnalysisError(
            f"Layer '{self.target_layer}' gives activations of shape {tuple(t.shape)}: not usable "
            "for an attention map. Fix cam_target_layer in the model bundle."
        )

    def predict_and_cam(
        self, x: torch.Tensor, classes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, K) and CAM grids (B, gh, gw) for ``classes`` (None: each predicted class)."""
        cp = self.forward(x)
        chosen = cp.logits.argmax(1).tolist() if classes is None else list(classes)
        return cp.logits, self.cams(cp, chosen)


def gradcam_from(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: ReLU(sum_c mean_hw(dY/dA_c) * A_c) for (B, C, H, W) inputs; (B, H, W)."""
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return (weights * acts).sum(dim=1).clamp_min(0.0)
