"""bf16 inference on CPUs that compute it natively: chosen only there, close to fp32, opt-out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers_models import make_tiny_bundle, make_tiny_model, tiny_config

import octviewer
from octviewer import cli
from octviewer.core import device as device_mod
from octviewer.core.engine import Engine
from octviewer.core.inference import AnalysisRequest
from octviewer.core.scan import Modality, Scan, ScanMetadata
from octviewer.errors import AnalysisError

KERMANY_SMALL = Path(__file__).parent / "data" / "kermany_small"
CNN_MEMBERS = [{"architecture": "timm/test_resnet"}, {"architecture": "timm/test_resnet"}]


def _real_volume() -> Scan:
    """The twelve real Kermany B-scans of tests/data as one volume (cropped to one size)."""
    from PIL import Image

    files = sorted(KERMANY_SMALL.rglob("*.jpeg"))
    frames = [np.asarray(Image.open(f).convert("L")) for f in files]
    rows = min(f.shape[0] for f in frames)
    cols = min(f.shape[1] for f in frames)
    md = ScanMetadata(source_paths=tuple(files), format="JPEG", modality=Modality.OCT_VOLUME)
    return Scan(np.stack([f[:rows, :cols] for f in frames]), md)


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the CPU has AVX512-BF16 (bf16 is then emulated on CPUs without it: slow, exact
    enough for a test)."""
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))


def test_bf16_only_where_the_cpu_computes_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(device_mod.cpu_flags.__wrapped__(), frozenset)  # the real reader runs
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "fma"}))
    assert device_mod.autocast_dtype(cpu) is None  # AVX512 without BF16: emulated, not used
    for flags in ({"avx512_bf16"}, {"amx_bf16", "amx_tile"}):
        monkeypatch.setattr(device_mod, "cpu_flags", lambda f=flags: frozenset(f))
        assert device_mod.autocast_dtype(cpu) is torch.bfloat16
        assert device_mod.autocast_dtype(cpu, "fp32") is None
        assert device_mod.autocast_dtype(torch.device("mps")) is None
    with pytest.raises(AnalysisError, match="precision"):
        device_mod.autocast_dtype(cpu, "fp8")


@pytest.mark.parametrize("arch", ["mirage_vit", "ensemble"])
def test_bf16_results_stay_close_to_fp32(native_bf16, tmp_path: Path, arch: str) -> None:
    kwargs = (
        {"arch_kwargs": {"members": CNN_MEMBERS, "hflip_tta": True}} if arch != "mirage_vit" else {}
    )
    if arch == "ensemble":
        kwargs["cam_target_layer"] = "stack"
    bundle = make_tiny_bundle(tmp_path / "tiny.safetensors", arch, **kwargs)
    ref = Engine(bundle, device="cpu", precision="fp32")
    fast = Engine(bundle, device="cpu")
    assert ref.compute_dtype == "float32" and fast.compute_dtype == "bfloat16"
    if arch == "ensemble":  # CNN weights in oneDNN's channels-last layout
        conv = next(p for p in fast.model.parameters() if p.ndim == 4)
        assert conv.is_contiguous(memory_format=torch.channels_last)
    scan = _real_volume()
    a, b = (
        ref.analyze(scan, AnalysisRequest(batch_size=4)),
        fast.analyze(scan, AnalysisRequest(batch_size=4)),
    )
    assert b.extra["compute"] == "bfloat16" and a.extra["compute"] == "float32"
    pa, pb = a.probability_matrix(), b.probability_matrix()
    assert np.isfinite(pb).all()
    np.testing.assert_allclose(pb, pa, atol=0.03)  # bf16 keeps 8 bits of mantissa
    for fa, fb in zip(a.frames, b.frames, strict=True):
        assert fb.cam is not None and fb.cam.dtype == np.float32 and fb.cam.shape == scan.shape
        if fa.cam_class == fb.cam_class and fa.cam.std() > 0 and fb.cam.std() > 0:
            assert np.corrcoef(fa.cam.ravel(), fb.cam.ravel())[0, 1] > 0.9
    one = fast.cam(scan, 0, "DME")  # the single-frame CAM path under bf16 too
    assert one.shape == scan.shape and np.isfinite(one).all()


def test_bf16_keeps_the_ood_score(native_bf16, tmp_path: Path) -> None:
    """The OOD statistics are fp32; bf16 features move the score a little, not the decision
    for in-domain B-scans."""
    from octviewer.core.model.bundle import save_bundle
    from training.data.dataset import discover
    from training.evaluate.ood import extract, fit_shared_split

    config = tiny_config("timm/resnet10t", img_size=64)
    model = make_tiny_model(config).eval()
    samples = discover(KERMANY_SMALL).samples
    ood, _ = fit_shared_split(
        extract(model, samples[::2], config.preprocess),
        extract(model, samples[1::2], config.preprocess),
        4,
        rate=0.02,
        shrinkage=0.5,
    )
    path = tmp_path / "with-ood.safetensors"
    save_bundle(path, model, config, ood=ood)
    scan = _real_volume()
    a = Engine(path, device="cpu", precision="fp32").analyze(scan, AnalysisRequest(cam=False))
    b = Engine(path, device="cpu").analyze(scan, AnalysisRequest(cam=True))
    sa = np.array([f.ood_score for f in a.frames])
    sb = np.array([f.ood_score for f in b.frames])
    spread = float(np.subtract(*np.percentile(sa, [90, 10])))
    assert np.isfinite(sb).all() and np.abs(sb - sa).max() <= 0.1 * max(spread, 1.0)


def test_int8_stays_fp32_and_fp32_opts_out(native_bf16, tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path / "tiny.safetensors")
    assert Engine(bundle, device="cpu", quantize=True).compute_dtype == "float32"
    assert Engine(bundle, device="cpu", precision="FP32").compute_dtype == "float32"
    with pytest.raises(AnalysisError, match="precision"):
        Engine(bundle, device="cpu", precision="half")


def test_cli_precision_option(native_bf16, tmp_path: Path, monkeypatch) -> None:
    bundle = make_tiny_bundle(tmp_path / "tiny.safetensors")
    src = Path(__file__).parent / "data" / "report" / "CNV-53018-1.jpeg"
    shutil.copy(src, tmp_path / src.name)
    engines: list[Engine] = []
    real = octviewer.load_model

    def spy(*args, **kwargs) -> Engine:
        engines.append(real(*args, **kwargs))
        return engines[-1]

    monkeypatch.setattr(octviewer, "load_model", spy)
    for choice, dtype in (("fp32", "float32"), ("auto", "bfloat16")):
        code = cli.main(
            ["analyze", str(tmp_path / src.name), "--model", str(bundle), "--out",
             str(tmp_path / choice), "--device", "cpu", "--no-progress", "--precision", choice]
        )  # fmt: skip
        assert code == cli.EXIT_OK and engines[-1].compute_dtype == dtype


def test_app_setting_round_trips(tmp_path: Path) -> None:
    from octviewer.ui.settings import Settings

    s = Settings.at(tmp_path / "s.ini")
    assert s.precision == "auto"  # bf16 allowed by default, where the hardware has it
    s.precision = "fp32"
    assert Settings.at(tmp_path / "s.ini").precision == "fp32"
    s.precision = "anything else"
    assert s.precision == "auto"
