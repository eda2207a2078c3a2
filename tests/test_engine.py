"""The engine end to end on real Kermany B-scans with a tiny random bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_models import make_tiny_bundle
from PIL import Image

from octviewer.core.calibration import calibrated_probabilities
from octviewer.core.device import choose_device, default_threads
from octviewer.core.engine import Engine
from octviewer.core.inference import AnalysisRequest
from octviewer.core.results import ResultFlag
from octviewer.core.scan import Modality, Scan, ScanMetadata
from octviewer.errors import AnalysisCancelled, AnalysisError, ModelFormatError


def kermany_scan(data_dir: Path, **meta) -> Scan:
    files = sorted((data_dir / "kermany").glob("*.jpeg"))
    frames = np.stack([np.asarray(Image.open(f)) for f in files])
    md = ScanMetadata(
        source_paths=tuple(files),
        format="JPEG",
        modality=meta.pop("modality", Modality.OCT_VOLUME),
        **meta,
    )
    return Scan(frames=frames, metadata=md)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(
        tmp_path_factory.mktemp("b") / "tiny.safetensors", temperature=2.0, confidence_threshold=0.2
    )


@pytest.fixture(scope="module")
def engine(bundle: Path) -> Engine:
    return Engine(bundle, device="cpu")


def test_analyze_real_bscans(engine: Engine, data_dir: Path) -> None:
    scan = kermany_scan(data_dir)
    calls: list[tuple[int, int]] = []
    res = engine.analyze(
        scan, AnalysisRequest(batch_size=3), progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(3, 4), (4, 4)]
    assert [f.frame_index for f in res.frames] == [0, 1, 2, 3]
    assert res.model == engine.identity and res.device == "cpu"
    for fr in res.frames:
        assert fr.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(
            fr.probabilities, calibrated_probabilities(fr.logits, 2.0), rtol=1e-5
        )
        assert fr.cam.shape == (496, 512) and fr.cam.dtype == np.float32
        assert fr.cam.min() >= 0.0 and fr.cam.max() <= 1.0
        assert fr.cam_class == fr.predicted_index
        assert fr.flags == {ResultFlag.OOD_CHECK_UNAVAILABLE}  # a bundle without statistics
    single = engine.analyze(scan, AnalysisRequest(frames=[2], cam=False, batch_size=1)).frames[0]
    np.testing.assert_allclose(single.logits, res.frames[2].logits, atol=1e-4)
    assert single.cam is None


def test_the_public_analyze_takes_the_request_fields_as_keywords(
    engine: Engine, data_dir: Path
) -> None:
    import octviewer

    scan = kermany_scan(data_dir)
    calls: list[tuple[int, int]] = []
    got = octviewer.analyze(
        scan,
        engine,
        frames=[1, 3],
        cam=False,
        batch_size=1,
        progress=lambda d, t: calls.append((d, t)),
    )
    want = engine.analyze(scan, AnalysisRequest(frames=(1, 3), cam=False))
    assert calls == [(1, 2), (2, 2)]
    assert [f.frame_index for f in got.frames] == [1, 3]
    for a, b in zip(got.frames, want.frames, strict=True):
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-4)
        assert a.cam is None
    with pytest.raises(TypeError):
        octviewer.analyze(scan, engine, camera=True)


def test_temperature_softens() -> None:
    logits = np.array([2.0, 0.0, -1.0])
    assert calibrated_probabilities(logits, 2.0).max() < calibrated_probabilities(logits, 1.0).max()


def test_flags(tmp_path: Path, data_dir: Path) -> None:
    strict = Engine(
        make_tiny_bundle(tmp_path / "s.safetensors", confidence_threshold=0.99), device="cpu"
    )
    scan = kermany_scan(
        data_dir, modality=Modality.FUNDUS, was_color=True, downsampled_from=(2000, 2000)
    )
    fr = strict.analyze(scan, AnalysisRequest(frames=[0], cam=False)).frames[0]
    assert fr.flags == {
        ResultFlag.NOT_OCT,
        ResultFlag.LOW_CONFIDENCE,
        ResultFlag.COLOR_INPUT,
        ResultFlag.DOWNSAMPLED,
        ResultFlag.OOD_CHECK_UNAVAILABLE,
    }
    assert fr.is_flagged


def test_cam_for_any_class(engine: Engine, data_dir: Path) -> None:
    scan = kermany_scan(data_dir)
    res = engine.analyze(scan, AnalysisRequest(frames=[1], cam_class="DRUSEN"))
    assert res.frames[0].cam_class == 2
    a = engine.cam(scan, 1, "DRUSEN")
    np.testing.assert_allclose(a, res.frames[0].cam, atol=1e-5)
    b = engine.cam(scan, 1, 0)
    assert b.shape == (496, 512)
    with pytest.raises(AnalysisError, match="no class"):
        engine.cam(scan, 1, "GLAUCOMA")
    with pytest.raises(AnalysisError, match="does not exist"):
        engine.analyze(scan, AnalysisRequest(frames=[9]))


def test_cancel_between_batches(engine: Engine, data_dir: Path) -> None:
    scan = kermany_scan(data_dir)
    seen: list[int] = []
    with pytest.raises(AnalysisCancelled):
        engine.analyze(
            scan,
            AnalysisRequest(batch_size=1, cam=False),
            progress=lambda d, t: seen.append(d),
            cancel=lambda: len(seen) >= 2,
        )
    assert seen == [1, 2]


def test_bad_input_does_not_crash(engine: Engine) -> None:
    md = ScanMetadata(source_paths=(Path("x.tif"),), format="TIFF", modality=Modality.OCT_BSCAN)
    weird = Scan(frames=np.full((1, 40, 30), np.nan, np.float32), metadata=md)
    fr = engine.analyze(weird).frames[0]
    assert np.isfinite(fr.probabilities).all() and fr.cam.shape == (40, 30)
    with pytest.raises(AnalysisError):
        engine.analyze("not a scan")  # type: ignore[arg-type]
    with pytest.raises(AnalysisError):
        engine.analyze(Scan(frames=np.zeros((1, 1, 5), np.uint8), metadata=md))


def test_int8_path_agrees_and_still_gives_cams(
    bundle: Path, engine: Engine, data_dir: Path
) -> None:
    q = Engine(bundle, device="cpu", quantize=True)
    assert q.quantized and q.identity == engine.identity
    scan = kermany_scan(data_dir)
    a = engine.analyze(scan, AnalysisRequest(cam=False)).probability_matrix()
    b = q.analyze(scan, AnalysisRequest(cam=True))
    np.testing.assert_allclose(b.probability_matrix(), a, atol=0.02)
    assert all(f.cam is not None and f.cam.shape == (496, 512) for f in b.frames)
    q.analyze(scan, AnalysisRequest(cam=False))  # back on the int8 layers after a CAM pass
    assert not isinstance(q.model.head, torch.nn.Linear)  # int8 again


def test_device_and_threads(monkeypatch, bundle: Path) -> None:
    assert (
        default_threads(1) == 1
        and default_threads(2) == 1
        and default_threads(4) == 3
        and default_threads(32) == 4
    )
    assert choose_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(AnalysisError, match="not available"):
            Engine(bundle, device="cuda")
    with pytest.raises(AnalysisError):
        choose_device("banana")


def test_missing_default_model(monkeypatch, tmp_path: Path) -> None:
    import octviewer.resources as res

    monkeypatch.setattr(res, "default_model_path", lambda: tmp_path / "none.safetensors")
    with pytest.raises(ModelFormatError, match="default model"):
        Engine(None)


@pytest.mark.gpu
def test_cuda_autocast(bundle: Path, engine: Engine, data_dir: Path) -> None:
    g = Engine(bundle, device="cuda")
    scan = kermany_scan(data_dir)
    np.testing.assert_allclose(
        g.analyze(scan).probability_matrix(), engine.analyze(scan).probability_matrix(), atol=0.03
    )


def test_int8_quantises_every_linear_and_keeps_float_only_for_the_cam_tail(bundle: Path) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    q = Engine(bundle, device="cpu", quantize=True)
    fp32_names = {
        n
        for n, m in Engine(bundle, device="cpu").model.named_modules()
        if type(m) is torch.nn.Linear
    }
    int8_names = {n for n, m in q.model.named_modules() if isinstance(m, DynamicInt8Linear)}
    assert fp32_names and int8_names == fp32_names  # qkv, proj, fc1, fc2 of every block, head
    assert not any(type(m) is torch.nn.Linear for m in q.model.modules())
    last = len(q.model.blocks) - 1
    tail = {f"blocks.{last}.{s}" for s in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
    assert set(q._fp32_tail) == tail | {"head"}  # only what the CAM backward runs through
    assert all(m.weight.dtype == torch.float32 for m in q._fp32_tail.values())


def test_results_say_what_arithmetic_computed_them(bundle: Path, data_dir: Path) -> None:
    """int8 and bf16 move probabilities a little: the report, its record and the summary say so."""
    from octviewer.core.report.facts import result_record
    from octviewer.core.summary import rows_for_result

    scan = kermany_scan(data_dir)
    exact = Engine(bundle, device="cpu", precision="fp32").analyze(scan, AnalysisRequest(cam=False))
    assert exact.arithmetic == "float32" and exact.computed_on == "cpu"
    int8 = Engine(bundle, device="cpu", quantize=True).analyze(scan, AnalysisRequest(cam=False))
    assert int8.arithmetic == "int8" and int8.computed_on == "cpu, int8"
    assert result_record(scan, int8, int8.frames[0])["arithmetic"] == "int8"
    assert {r.arithmetic for r in rows_for_result("x", int8, scan.n_frames)} == {"int8"}
