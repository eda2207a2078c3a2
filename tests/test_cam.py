"""One-pass Grad-CAM: a known answer, parity with pytorch-grad-cam, gradients only in the tail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from octviewer.core.cam import OnePassCam
from octviewer.core.heatmap import upsample_cam
from octviewer.core.model.architectures import create_model


class _PatchEmbed(nn.Module):
    def __init__(self, grid: tuple[int, int], patch: int) -> None:
        super().__init__()
        self.grid_size = grid
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B,1,H,W) -> (B, N, 2)
        m = nn.functional.avg_pool2d(x, self.patch).flatten(1)
        return torch.stack([m, 1 - m], dim=-1)


class RegionModel(nn.Module):
    """A token model that only looks at patch ``region`` (row, col) of a (2, 3) grid: the
    class-1 logit is the brightness of that patch. Its Grad-CAM must sit on that patch."""

    num_prefix_tokens = 1

    def __init__(self, region: tuple[int, int]) -> None:
        super().__init__()
        self.patch_embed = _PatchEmbed((2, 3), 16)
        mask = torch.zeros(6)
        mask[region[0] * 3 + region[1]] = 1.0
        self.register_buffer("mask", mask)
        self.target = nn.Identity()
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x) * self.mask[None, :, None]  # sees only the region
        prefix = torch.zeros(x.shape[0], 1, 2)
        t = self.target(torch.cat([prefix, tokens], dim=1))
        return self.head(t[:, 1:].sum(1))


@pytest.mark.parametrize("region", [(0, 0), (1, 2), (0, 1)])
def test_cam_sits_on_the_only_region_the_model_uses(region: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 1, 32, 48) * 0.5 + 0.25  # texture everywhere
    cam = OnePassCam(RegionModel(region), "target")
    _logits, grids = cam.predict_and_cam(x, [1])
    g = grids[0].numpy()
    assert g.shape == (2, 3)
    assert np.unravel_index(g.argmax(), g.shape) == region and g.sum() == pytest.approx(g.max())
    full = upsample_cam(g, (100, 150))  # the original frame grid, non-square
    r0, c0 = region[0] * 50, region[1] * 50
    inside = full[r0 : r0 + 50, c0 : c0 + 50].sum()
    peak = np.unravel_index(full.argmax(), full.shape)
    assert r0 <= peak[0] < r0 + 50 and c0 <= peak[1] < c0 + 50
    assert (
        inside / full.sum() > 0.6
    )  # one cell of six; bilinear blur spills half a cell and full.max() == pytest.approx(1.0) and full.min() >= 0


def test_upsample_keeps_zero_and_range() -> None:
    assert not upsample_cam(np.zeros((4, 4)), (30, 20)).any()
    up = upsample_cam(np.array([[0.0, 2.0], [np.nan, 1.0]]), (9, 7))
    assert (
        up.shape == (9, 7)
        and up.dtype == np.float32
        and up.min() >= 0
        and up.max() == pytest.approx(1.0)
    )


def _lively_vit(img: tuple[int, int] = (64, 64)) -> nn.Module:
    """A tiny MIRAGE-type ViT with large random weights, so its CAMs are not all zero (as they
    are for a fresh random init)."""
    torch.manual_seed(0)
    m = create_model(
        "mirage_vit", 2, embed_dim=32, depth=2, num_heads=2, img_size=img, patch_size=16
    )
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m.eval()


def test_matches_pytorch_grad_cam_on_a_rectangular_vit() -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = _lively_vit((64, 96))
    gh, gw = model.patch_embed.grid_size
    assert (gh, gw) == (4, 6)
    x = torch.rand(3, 1, 64, 96) * 0.3
    x[0, 0, 10:26, 60:76] += 0.7
    classes = [1, 0, 1]
    ours = OnePassCam(model, "blocks.-1.norm1").predict_and_cam(x, classes)[1].numpy()
    assert ours.max() > 0  # not the all-zero random-init CAM

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return (
            t[:, model.num_prefix_tokens :]
            .reshape(t.shape[0], gh, gw, t.shape[2])
            .permute(0, 3, 1, 2)
        )

    with GradCAM(model, [model.blocks[-1].norm1], reshape_transform=reshape) as ref_cam:
        ref = ref_cam(x.clone(), targets=[ClassifierOutputTarget(c) for c in classes])
    # fused-attention kernels differ between grad and no-grad mode: small numeric drift
    np.testing.assert_allclose(scale_cam_image(ours, (96, 64)), ref, atol=0.05)
    assert np.corrcoef(scale_cam_image(ours, (96, 64)).ravel(), ref.ravel())[0, 1] > 0.99


def test_matches_pytorch_grad_cam_on_a_cnn() -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(1)
    model = create_model("timm/test_resnet", 3)
    x = torch.rand(2, 1, 96, 96)
    ours = OnePassCam(model, "layer4").predict_and_cam(x, [2, 0])[1].numpy()
    with GradCAM(model, [model.layer4], reshape_transform=None) as ref_cam:
        ref = ref_cam(x.clone(), targets=[ClassifierOutputTarget(2), ClassifierOutputTarget(0)])
    np.testing.assert_allclose(scale_cam_image(ours, (96, 96)), ref, atol=2e-3)


def test_gradients_only_in_the_tail_and_many_classes_from_one_pass() -> None:
    model = create_model(
        "mirage_vit", 3, embed_dim=32, depth=3, num_heads=2, img_size=64, patch_size=16
    )
    torch.manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)  # not all-zero CAMs
    reached: list[str] = []
    for i, blk in enumerate(model.blocks):
        blk.register_full_backward_hook(lambda *_a, i=i: reached.append(f"block{i}"))
    cam = OnePassCam(model, "blocks.-1.norm1")
    x = torch.rand(2, 1, 64, 64)
    cp = cam.forward(x)
    assert cp.activations.is_leaf and cp.activations.grad_fn is None
    per_class = [cam.cams(cp, [c, c], retain_graph=True) for c in range(3)]
    assert set(reached) <= {"block2"}  # nothing before the last block took part
    for c in range(3):
        torch.testing.assert_close(per_class[c], cam.predict_and_cam(x, [c, c])[1])
    with torch.no_grad():
        torch.testing.assert_close(cp.logits, model(x))
