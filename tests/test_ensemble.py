"""Ensemble models: averaged logits, one Grad-CAM target, bundle round trip, engine use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from octviewer.core.cam import OnePassCam
from octviewer.core.inference import AnalysisRequest
from octviewer.core.model.architectures import create_model, default_cam_target
from octviewer.errors import ModelFormatError

MEMBERS = [{"architecture": "timm/test_resnet"}, {"architecture": "timm/test_resnet"}]


def _ensemble(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("ensemble", 3, members=MEMBERS)


def test_logits_are_the_mean_of_the_members() -> None:
    model = _ensemble()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = torch.stack([m(x) for m in model.members]).mean(0)
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=1e-5)
    assert default_cam_target("ensemble", model) == "stack"


def test_cam_matches_pytorch_grad_cam_at_the_stack() -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = _ensemble(1)
    x = torch.rand(2, 1, 96, 96)
    ours = OnePassCam(model, "stack").predict_and_cam(x, [2, 0])[1].numpy()
    with GradCAM(model, [model.stack], reshape_transform=None) as ref_cam:
        ref = ref_cam(x.clone(), targets=[ClassifierOutputTarget(2), ClassifierOutputTarget(0)])
    np.testing.assert_allclose(scale_cam_image(ours, (96, 96)), ref, atol=2e-3)


@pytest.mark.parametrize(
    "members", [None, [], [{"architecture": "timm/test_resnet"}], [{"x": 1}, {"x": 2}]]
)
def test_bad_member_lists_are_refused(members: object) -> None:
    with pytest.raises(ModelFormatError, match="ensemble"):
        create_model("ensemble", 3, members=members)


def test_bundle_round_trip_and_engine(tmp_path: Path) -> None:
    from helpers_models import tiny_config

    from octviewer.core.engine import Engine
    from octviewer.core.model.bundle import load_bundle, save_bundle
    from octviewer.core.scan import Modality, Scan, ScanMetadata

    cfg = tiny_config(
        "ensemble",
        ("A", "B", "C"),
        img_size=64,
        arch_kwargs={"members": MEMBERS},
        cam_target_layer="stack",
    )
    model = _ensemble(2)
    path = tmp_path / "ens.safetensors"
    save_bundle(path, model, cfg)
    loaded = load_bundle(path)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.model(x).numpy(), model(x).numpy(), atol=1e-5)
    frame = (np.random.default_rng(0).random((50, 70)) * 255).astype(np.uint8)
    scan = Scan(
        frame,
        ScanMetadata(source_paths=(Path("x.png"),), format="PNG", modality=Modality.OCT_BSCAN),
    )
    result = Engine(path, device="cpu").analyze(scan, AnalysisRequest(cam=True))
    fr = result.frames[0]
    assert fr.cam is not None and fr.cam.shape == (50, 70)
    assert float(fr.cam.min()) >= 0.0 and float(fr.cam.max()) <= 1.0
    assert abs(float(fr.probabilities.sum()) - 1.0) < 1e-5
    # int8: each member's classifier runs after "stack" although it is registered before it,
    # so it must keep a float32 copy for the CAM backward (it failed on the default model)
    q = Engine(path, device="cpu", quantize=True)
    assert {f"members.{k}.fc" for k in range(2)} <= set(q._fp32_tail)
    qfr = q.analyze(scan, AnalysisRequest(cam=True)).frames[0]
    assert qfr.cam is not None and qfr.predicted_index == fr.predicted_index


def test_hflip_tta_averages_both_views_and_keeps_the_cam_aligned() -> None:
    torch.manual_seed(3)
    model = create_model("ensemble", 3, members=MEMBERS, hflip_tta=True)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        views = [m(v) for m in model.members for v in (x, x.flip(-1))]
        np.testing.assert_allclose(model(x).numpy(), torch.stack(views).mean(0).numpy(), atol=1e-5)
        # A mirrored input gives the same logits (both views are averaged)...
        np.testing.assert_allclose(model(x.flip(-1)).numpy(), model(x).numpy(), atol=1e-5)
    # ...and a mirrored attention map.
    cam = OnePassCam(model, "stack")
    a = cam.predict_and_cam(x, [1, 1])[1]
    b = cam.predict_and_cam(x.flip(-1), [1, 1])[1]
    np.testing.assert_allclose(b.numpy(), a.flip(-1).numpy(), atol=1e-5)
