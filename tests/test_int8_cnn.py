"""Static int8 for CNN ensembles (issue 17): calibration stored in the bundle, int8
convolutions at load, Grad-CAM and OOD features in the same forward, fallbacks and refusals."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_models import tiny_config
from PIL import Image
from test_hostile_bundles import rewrite

from octviewer.core.engine import Engine
from octviewer.core.inference import AnalysisRequest
from octviewer.core.model.architectures import create_model
from octviewer.core.model.bundle import load_bundle, read_bundle_config, save_bundle
from octviewer.core.ood import FeatureTap
from octviewer.core.preprocess import preprocess_frames
from octviewer.core.scan import Modality, Scan, ScanMetadata
from octviewer.errors import ModelFormatError

DATA = Path(__file__).parent / "data"
IMAGES = sorted((DATA / "kermany_small").rglob("*.jpeg"))
MEMBERS = [{"architecture": "timm/test_resnet"}, {"architecture": "timm/test_resnet"}]
SIZE = 64


def _config(**kw):
    return tiny_config(
        "ensemble",
        img_size=SIZE,
        arch_kwargs={"members": MEMBERS, "hflip_tta": True},
        cam_target_layer="stack",
        **kw,
    )


def _frames() -> np.ndarray:
    """The 12 real Kermany B-scans of tests/data, as uint8 frames of one size."""
    out = []
    for p in IMAGES:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("L").resize((512, 496))))
    return np.stack(out)


def _inputs(frames: np.ndarray) -> torch.Tensor:
    return preprocess_frames(frames, _config().preprocess)


@pytest.fixture(autouse=True)
def _no_int8_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests look at the int8 modules torch.ao builds: not those of the int8 cache."""
    monkeypatch.setenv("OCTVIEWER_INT8_CACHE", "off")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny 2-member ensemble, without and with a calibration made on the test images."""
    from training.rewrite.add_int8 import calibrate

    d = tmp_path_factory.mktemp("int8cnn")
    torch.manual_seed(0)
    model = create_model("ensemble", 4, members=MEMBERS, hflip_tta=True).eval()
    plain = d / "plain.safetensors"
    save_bundle(plain, model, _config())
    from training.data.dataset import Sample

    samples = [Sample(path=p, label=0, patient=p.stem) for p in IMAGES]
    block = {
        "method": "static-fx",
        "backend": "x86",
        "images": len(samples),
        "views": 2,
        "ranges": calibrate(model, samples, _config(), batch_size=4),
    }
    calibrated = d / "calibrated.safetensors"
    save_bundle(calibrated, model, dataclasses.replace(_config(), int8=block))
    return {"plain": plain, "calibrated": calibrated}


def test_calibrated_bundle_loads_int8_convolutions(bundles: dict[str, Path]) -> None:
    from torch.ao.nn.quantized import Conv2d as QConv2d

    q = Engine(bundles["calibrated"], device="cpu", quantize=True)
    assert q.quantized and q.int8_kind == "static"
    kinds = [type(m) for m in q.model.modules()]
    assert any(issubclass(k, QConv2d) for k in kinds)  # int8 kernels (incl. fused conv+relu)
    assert not any(k is torch.nn.Conv2d for k in kinds)  # no float convolution left
    assert all(m.fc.weight.dtype == torch.float32 for m in q.model.members)  # heads stay float
    assert q.compute_dtype == "float32"  # no autocast around int8 kernels
    # the stored weights are untouched: the same file loads as the same float network
    assert read_bundle_config(bundles["calibrated"]).int8["ranges"]


@pytest.mark.parametrize("vnni", [True, False])
def test_int8_agrees_with_fp32_and_keeps_the_ood_features(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch, vnni: bool
) -> None:
    """Both activation widths: 8-bit (CPUs with VNNI) and 7-bit (the others)."""
    import octviewer.core.model.int8_static as int8_static

    monkeypatch.setattr(int8_static, "reduce_range_here", lambda: not vnni)
    fp32 = Engine(bundles["calibrated"], device="cpu", precision="fp32")
    int8 = Engine(bundles["calibrated"], device="cpu", quantize=True)
    assert int8._int8.activation_bits == (8 if vnni else 7)
    x = _inputs(_frames())
    taps = FeatureTap(), FeatureTap()
    a = fp32._predict(x, taps[0])
    b = int8._predict(x, taps[1])
    assert not np.array_equal(a, b)  # int8 really computes differently
    pa = torch.softmax(torch.from_numpy(a), 1).numpy()
    pb = torch.softmax(torch.from_numpy(b), 1).numpy()
    assert np.abs(pa - pb).max() < 0.02
    big_margin = np.sort(pa, 1)[:, -1] - np.sort(pa, 1)[:, -2] > 0.02
    assert (pa.argmax(1) == pb.argmax(1))[big_margin].all()
    for fa, fb in zip(taps[0].features(), taps[1].features(), strict=True):
        cos = (fa * fb).sum(1) / (np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1))
        assert fa.shape == fb.shape and cos.min() > 0.99


def test_cam_works_on_the_int8_engine(bundles: dict[str, Path]) -> None:
    frames = _frames()[:3]
    scan = Scan(frames, ScanMetadata((IMAGES[0],), "JPEG", Modality.OCT_BSCAN))
    int8 = Engine(bundles["calibrated"], device="cpu", quantize=True)
    fp32 = Engine(bundles["calibrated"], device="cpu", precision="fp32")
    r8, r32 = (
        int8.analyze(scan, AnalysisRequest(cam=True)),
        fp32.analyze(scan, AnalysisRequest(cam=True)),
    )
    assert r8.extra["int8"] == "static" and r32.extra["int8"] == ""
    for f8, f32 in zip(r8.frames, r32.frames, strict=True):
        assert f8.cam is not None and f8.cam.shape == frames.shape[1:]
        assert np.isfinite(f8.cam).all() and 0.0 <= f8.cam.min() <= f8.cam.max() <= 1.0
        assert f8.cam_class == f32.cam_class
    heat = int8.cam(scan, 1, 2)  # another class of a frame: the kept graph, backward again
    assert heat.shape == frames.shape[1:] and np.isfinite(heat).all()


def test_bundle_without_calibration_falls_back(
    bundles: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="octviewer.core.model.int8_static"):
        q = Engine(bundles["plain"], device="cpu", quantize=True)
    assert q.quantized and q.int8_kind == "dynamic"
    assert "no int8 calibration" in caplog.text and "octviewer-train int8" in caplog.text
    assert any(type(m) is torch.nn.Conv2d for m in q.model.modules())


def test_calibration_of_another_graph_falls_back(
    bundles: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stored activation names that the graph here does not have (another torch version):
    not a damaged bundle, so it loads, with the dynamic path and the reason logged."""

    def rename(cfg: dict) -> None:
        obs = cfg["int8"]["ranges"]["members.1"]
        obs["activation_post_process_999"] = obs.pop(sorted(obs)[-1])

    path = rewrite(bundles["calibrated"], tmp_path / "other.safetensors", config=rename)
    with caplog.at_level(logging.INFO, logger="octviewer.core.model.int8_static"):
        q = Engine(path, device="cpu", quantize=True)
    assert q.int8_kind == "dynamic"
    assert "could not be built" in caplog.text and "members.1" in caplog.text
    x = _inputs(_frames()[:2])
    assert np.isfinite(q.predict_logits(x)).all()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda b: b["ranges"]["members.0"].update(activation_post_process_0=["RAW:NaN", 1.0]), "finite"),
        (lambda b: b["ranges"]["members.0"].update(activation_post_process_0=[0.0, "RAW:1e400"]), "finite"),
        (lambda b: b["ranges"]["members.0"].update(activation_post_process_0=[0.0, 1e9]), "finite"),
        (lambda b: b["ranges"]["members.0"].update(activation_post_process_0=[2.0, 1.0]), "above high"),
        (lambda b: b["ranges"]["members.0"].update(activation_post_process_0=[0.0]), "low, high"),
        (lambda b: b["ranges"]["members.0"].update(activation_post_process_0="big"), "low, high"),
        (lambda b: b["ranges"]["members.0"].update({"__class__": [0.0, 1.0]}), "activation name"),
        (lambda b: b["ranges"].update({"../x": {}}), "network name"),
        (lambda b: b["ranges"].update(
            {"members.0": {f"activation_post_process_{i}": [0, 1] for i in range(2001)}}
        ), "1 to 2000"),
        (lambda b: b.update(ranges=[1, 2]), "JSON object"),
        (lambda b: b.update(images=-1), "images"),
        (lambda b: b.update(method="x" * 100), "method"),
    ],
)  # fmt: skip
def test_hostile_calibration_blocks_are_refused(
    bundles: dict[str, Path], tmp_path: Path, edit, match: str
) -> None:
    path = rewrite(
        bundles["calibrated"], tmp_path / "bad.safetensors", config=lambda c: edit(c["int8"])
    )
    with pytest.raises(ModelFormatError, match=match):
        read_bundle_config(path)
    with pytest.raises(ModelFormatError):
        Engine(path, device="cpu", quantize=True)


def test_a_block_of_an_unknown_kind_falls_back(
    bundles: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = rewrite(
        bundles["calibrated"],
        tmp_path / "future.safetensors",
        config=lambda c: c["int8"].update(method="static-pt2e"),
    )
    with caplog.at_level(logging.INFO, logger="octviewer.core.model.int8_static"):
        assert Engine(path, device="cpu", quantize=True).int8_kind == "dynamic"
    assert "another kind" in caplog.text


def test_train_int8_command_writes_a_calibrated_bundle(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    from training.cli import main

    out = tmp_path / "with-int8.safetensors"
    argv = ["int8", str(bundles["plain"]), "--data", str(DATA / "kermany_small")]
    argv += ["--output", str(out), "--images", "8", "--check-images", "4"]
    argv += ["--batch-size", "4", "--model-version", "0.0.2"]
    assert main(argv) == 0
    cfg = read_bundle_config(out)
    assert cfg.version == "0.0.2" and cfg.int8["images"] == 8 and cfg.int8["views"] == 2
    assert set(cfg.int8["ranges"]) == {"members.0", "members.1"}
    measured = cfg.int8["measured"]
    assert measured["images"] == 4 and 0.0 <= measured["max_probability_change"] < 0.05
    assert "octviewer-train int8" in cfg.provenance["int8"]["command"]
    step = cfg.provenance["int8"]  # the layout every re-writing step records (training/rewrite)
    plain = read_bundle_config(bundles["plain"])
    assert (
        step["from_bundle"]["version"] == plain.version and len(step["from_bundle"]["sha256"]) == 64
    )
    assert step["data"] and step["date"] and "git_commit" in step
    before, after = load_bundle(bundles["plain"]).model, load_bundle(out).model
    for (k, v), (k2, v2) in zip(
        before.state_dict().items(), after.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2)  # weights untouched
    assert Engine(out, device="cpu", quantize=True).int8_kind == "static"


def test_train_int8_refuses_a_single_network(tmp_path: Path) -> None:
    from helpers_models import make_tiny_bundle

    from training.cli import main

    single = make_tiny_bundle(tmp_path / "vit.safetensors")
    argv = ["int8", str(single), "--data", str(DATA / "kermany_small")]
    assert main([*argv, "--output", str(tmp_path / "o.safetensors")]) == 2
    assert not (tmp_path / "o.safetensors").exists()


def test_static_int8_builds_without_the_modules_the_packaged_app_leaves_out(
    bundles: dict[str, Path],
) -> None:
    """build.spec excludes networkx and triton; torch.fx pulls networkx in when it records
    stack traces. A fresh process with both blocked must still get the static path."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['networkx'] = None\n"
        "sys.modules['triton'] = None\n"
        "from octviewer.core.engine import Engine\n"
        f"e = Engine({str(bundles['calibrated'])!r}, device='cpu', quantize=True)\n"
        "print('KIND', e.int8_kind)\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=False
    )
    assert "KIND static" in out.stdout, out.stderr[-2000:]


def test_the_float_backbone_is_freed_after_quantisation(bundles: dict[str, Path]) -> None:
    """torch.ao keeps float layers alive (closures in the graph's node meta, a functools.cache
    keyed by graphs): once a member is quantised, no float convolution kernel of it, nor of
    the fused copies quantisation makes, may stay reachable."""
    import gc

    from octviewer.core.model.int8_static import StaticInt8, calibration_for

    def float_kernels() -> set[int]:
        gc.collect()
        return {
            id(o)
            for o in gc.get_objects()
            if isinstance(o, torch.Tensor) and o.dtype == torch.float32 and o.ndim == 4
        }

    ranges, _ = calibration_for(read_bundle_config(bundles["calibrated"]))
    before = float_kernels()
    model = load_bundle(bundles["calibrated"]).model
    other = {id(p) for p in model.members[1].parameters()}
    StaticInt8(ranges, (SIZE, SIZE)).on_unit("members.0", model.members[0], model)
    assert float_kernels() - before - other == set()
    with torch.no_grad():
        assert model.members[0].forward_features(torch.rand(1, 1, SIZE, SIZE)).ndim == 4


def test_self_test_checks_the_int8_path_of_a_calibrated_bundle(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The packaged app's self-test proves torch.ao's int8 graphs work there."""
    from octviewer.core.engine import Engine
    from octviewer.core.io import load
    from octviewer.selftest.checks import check_int8
    from octviewer.selftest.outcome import SelfTestRun

    scan = load(IMAGES[0])
    run = SelfTestRun()
    check_int8(bundles["calibrated"], Engine(bundles["calibrated"], device="cpu"), scan, run)
    assert run.ok and run.int8.startswith("static int8, same class")
    skipped = SelfTestRun()
    check_int8(bundles["plain"], Engine(bundles["plain"], device="cpu"), scan, skipped)
    assert skipped.ok and skipped.int8 == ""
    # a broken int8 stack (as a packaging gap would give) fails the self-test, it does not crash it
    from octviewer.core.model import int8_static

    def broken(*a, **k):
        raise ImportError("No module named 'torch.ao.quantization.fx'")

    monkeypatch.setattr(int8_static, "load_int8", broken)
    bad = SelfTestRun()
    check_int8(bundles["calibrated"], Engine(bundles["calibrated"], device="cpu"), scan, bad)
    assert not bad.ok and "int8" in bad.failures[0]
