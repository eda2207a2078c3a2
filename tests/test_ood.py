"""Out-of-distribution statistics: the score, its storage in bundles, and the engine's flags."""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers_models import make_tiny_bundle, make_tiny_model, tiny_config

import octviewer
from octviewer.core.inference import AnalysisRequest
from octviewer.core.ood import (
    NetworkStats,
    OODModel,
    fit_network,
    normalize_features,
    scale_of,
    threshold_at,
)
from octviewer.core.results import ResultFlag
from octviewer.core.scan import Modality, Scan, ScanMetadata
from octviewer.errors import ModelFormatError

KERMANY_SMALL = Path(__file__).parent / "data" / "kermany_small"


def _gaussian_model(rng: np.random.Generator, d: int = 8) -> tuple[OODModel, np.ndarray]:
    centers = rng.normal(0, 3, (3, d))
    y = rng.integers(0, 3, 600)
    f = centers[y] + rng.normal(0, 1, (600, d))
    means, whiten = fit_network(f, y, 3)
    held = centers[y[:200]] + rng.normal(0, 1, (200, d))
    raw = NetworkStats(means, whiten, 0.0, 1.0).distance(held)
    net = NetworkStats(means, whiten, *scale_of(raw))
    scores = net.z(held)
    return OODModel((net,), threshold_at(scores, 0.02), {"false_flag_target": 0.02}), centers


def test_mahalanobis_scores_far_features_high_and_near_ones_low() -> None:
    rng = np.random.default_rng(0)
    ood, centers = _gaussian_model(rng)
    near = centers[[0, 1, 2]] + rng.normal(0, 1, (3, 8))
    far = centers[[0, 1, 2]] + 8.0  # shifted off every class
    s_near, s_far = ood.score([near]), ood.score([far])
    assert (s_near < ood.threshold).all() and (s_far > ood.threshold).all()
    # the distance is the class-conditional minimum: a class mean itself scores lowest
    d = ood.networks[0].distance(centers.astype(np.float32))
    assert d.max() < ood.networks[0].distance(far).min()


def test_statistics_round_trip_through_their_bundle_form() -> None:
    ood, centers = _gaussian_model(np.random.default_rng(1))
    meta, tensors = ood.to_bundle()
    again = OODModel.from_bundle(meta, tensors)
    x = centers + 0.5
    np.testing.assert_allclose(again.score([x]), ood.score([x]), rtol=1e-5)
    assert again.threshold == pytest.approx(ood.threshold)
    broken = {k: v.copy() for k, v in tensors.items()}
    next(iter(broken.values()))[0, 0] = np.nan
    with pytest.raises(ModelFormatError, match="not finite"):
        OODModel.from_bundle(meta, broken)
    with pytest.raises(ModelFormatError, match="damaged"):
        OODModel.from_bundle({**meta, "networks": 2}, tensors)


def _bundle_with_stats(tmp_path: Path, normalize: str = "none") -> tuple[Path, OODModel]:
    """A tiny timm CNN bundle whose statistics come from its own features of real B-scans."""
    import torch

    from octviewer.core.model.bundle import save_bundle
    from training.data.dataset import discover
    from training.evaluate.ood import extract, fit_shared_split

    torch.set_num_threads(1)
    config = tiny_config("timm/resnet10t", img_size=64)
    model = make_tiny_model(config).eval()
    samples = discover(KERMANY_SMALL).samples
    train, held = samples[::2], samples[1::2]
    ood, _ = fit_shared_split(
        extract(model, train, config.preprocess),
        extract(model, held, config.preprocess),
        4,
        rate=0.02,
        shrinkage=0.5,
        normalize=normalize,
    )
    path = tmp_path / f"with-ood-{normalize}.safetensors"
    save_bundle(path, model, config, ood=ood)
    return path, ood


def _as_oct(scan: Scan) -> Scan:
    """The same pixels declared an OCT B-scan, so only the OOD score can object."""
    md = dataclasses.replace(scan.metadata, modality=Modality.OCT_BSCAN)
    return Scan(scan.frames, md)


def test_bundle_stores_statistics_and_engine_scores_in_the_same_pass(tmp_path: Path) -> None:
    from octviewer.core.engine import Engine
    from octviewer.core.model.bundle import load_bundle, read_bundle_config

    path, ood = _bundle_with_stats(tmp_path)
    cfg = read_bundle_config(path)
    assert cfg.ood["method"] == "mahalanobis" and cfg.ood["threshold"] == pytest.approx(
        ood.threshold
    )
    loaded = load_bundle(path)
    assert loaded.ood is not None and len(loaded.ood.networks) == 1
    engine = Engine(path, device="cpu")
    scan = octviewer.load(KERMANY_SMALL / "CNV" / "CNV-451136-1.jpeg")
    with_cam = engine.analyze(scan, AnalysisRequest(cam=True)).frames[0]
    plain = engine.analyze(scan, AnalysisRequest(cam=False)).frames[0]
    assert with_cam.ood_score == pytest.approx(plain.ood_score, rel=1e-4, abs=1e-4)
    assert ResultFlag.OOD_CHECK_UNAVAILABLE not in plain.flags
    # in-domain image: not flagged; the same score as computed from the features directly
    assert plain.ood_threshold == pytest.approx(ood.threshold)
    assert ResultFlag.OUT_OF_DISTRIBUTION not in plain.flags and plain.assessable


def test_an_out_of_domain_input_is_flagged_and_not_assessed(tmp_path: Path) -> None:
    from octviewer.core.engine import Engine

    path, _ = _bundle_with_stats(tmp_path)
    engine = Engine(path, device="cpu")
    yy, xx = np.mgrid[0:496, 0:512]
    checker = (((yy // 16) + (xx // 16)) % 2 * 255).astype(np.uint8)  # nothing like a B-scan
    scan = Scan(checker, ScanMetadata(source_paths=(), format="PNG", modality=Modality.OCT_BSCAN))
    fr = engine.analyze(scan, AnalysisRequest(cam=False)).frames[0]
    assert ResultFlag.OUT_OF_DISTRIBUTION in fr.flags
    assert fr.ood_score > fr.ood_threshold
    assert not fr.assessable and fr.presented_class is None and fr.headline == "Not assessed"
    assert "unlike the scans the model was trained on" in (fr.reason or "")


def test_old_bundle_without_statistics_loads_and_says_the_check_is_unavailable(
    tmp_path: Path,
) -> None:
    from octviewer.core.engine import Engine

    engine = Engine(make_tiny_bundle(tmp_path / "old.safetensors"), device="cpu")
    assert engine.ood is None
    fr = engine.analyze(
        octviewer.load(KERMANY_SMALL / "DME" / "DME-30521-9.jpeg"), AnalysisRequest(cam=False)
    ).frames[0]
    assert ResultFlag.OOD_CHECK_UNAVAILABLE in fr.flags and fr.ood_score is None
    assert fr.assessable  # no statistics: the class is still shown, with the caution


def test_other_device_is_a_caution_not_an_abstention(tmp_path: Path) -> None:
    from octviewer.core.engine import Engine

    path = make_tiny_bundle(
        tmp_path / "dom.safetensors",
        training_domain={"manufacturers": ["Heidelberg Engineering"], "scan_type": "macular"},
    )
    engine = Engine(path, device="cpu")
    scan = octviewer.load(KERMANY_SMALL / "DME" / "DME-30521-9.jpeg")
    for maker, flagged in (("Topcon", True), ("HEIDELBERG ENGINEERING", False), (None, False)):
        md = dataclasses.replace(scan.metadata, manufacturer=maker)
        fr = engine.analyze(Scan(scan.frames, md), AnalysisRequest(cam=False)).frames[0]
        assert (ResultFlag.OTHER_DEVICE in fr.flags) is flagged, maker
        assert fr.assessable


def test_damaged_statistics_refuse_the_bundle(tmp_path: Path) -> None:
    from octviewer.core.model.bundle import load_bundle, save_bundle

    path, ood = _bundle_with_stats(tmp_path)
    loaded = load_bundle(path)
    bad = dataclasses.replace(ood, networks=(*ood.networks, ood.networks[0]))
    meta, _ = bad.to_bundle()
    # config says two networks but the file holds one network's tensors
    out = tmp_path / "bad.safetensors"
    save_bundle(out, loaded.model, loaded.config, ood=ood)
    raw = out.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    cfg = json.loads(header["__metadata__"]["octviewer.config"])
    cfg["ood"] = meta
    header["__metadata__"]["octviewer.config"] = json.dumps(cfg)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    out.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    with pytest.raises(ModelFormatError, match="out-of-distribution statistics"):
        load_bundle(out)


def test_ood_command_adds_statistics_to_an_existing_bundle(tmp_path: Path) -> None:
    """``octviewer-train ood`` on a trained run: same weights, statistics from its own split."""
    import torch

    from octviewer.core.model.bundle import load_bundle
    from training.config import TrainConfig
    from training.rewrite.add_ood import main as ood_main
    from training.run import run_training

    torch.set_num_threads(1)
    cfg = TrainConfig(
        data=str(KERMANY_SMALL),
        run_dir=str(tmp_path / "run"),
        architecture="timm/resnet10t",
        img_size=64,
        epochs=1,
        batch_size=4,
        max_steps_per_epoch=1,
        val_fraction=0.5,
        workers=0,
        plots=False,
        ood_false_flag_rate=0.0,  # a bundle as made before statistics existed
    )
    res = run_training(cfg, argv=["octviewer-train"])
    assert load_bundle(res.bundle).ood is None
    out = tmp_path / "with-ood.safetensors"
    rc = ood_main(
        [
            str(res.bundle),
            "--data",
            str(KERMANY_SMALL),
            "--output",
            str(out),
            "--model-version",
            "1.0.1",
            "--training-domain",
            '{"manufacturers": ["Heidelberg Engineering"]}',
        ]
    )
    assert rc == 0
    new = load_bundle(out)
    assert new.ood is not None and new.config.version == "1.0.1"
    assert new.config.training_domain == {"manufacturers": ["Heidelberg Engineering"]}
    assert new.config.metrics["ood"]["heldout_images"] > 0
    assert new.config.provenance["ood"]["from_bundle"]["version"] == "1.0.0"
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(new.model(x), load_bundle(res.bundle).model(x))
    assert new.ood.networks[0].normalize == "none" and "normalize" not in new.config.ood
    l2_out = tmp_path / "with-l2.safetensors"
    args = [str(res.bundle), "--data", str(KERMANY_SMALL), "--output", str(l2_out)]
    assert ood_main([*args, "--normalize", "l2", "--shrinkage", "0.05"]) == 0
    l2 = load_bundle(l2_out)
    assert l2.ood is not None and l2.config.ood["normalize"] == "l2"
    assert l2.config.ood["shrinkage"] == 0.05 and l2.config.metrics["ood"]["normalize"] == "l2"


def test_a_score_that_is_not_a_number_withholds_the_class(tmp_path: Path) -> None:
    """A NaN score must never read as 'in distribution' (NaN > threshold is False)."""
    from octviewer.core.engine import Engine
    from octviewer.core.inference import result_flags

    path, _ = _bundle_with_stats(tmp_path)
    engine = Engine(path, device="cpu")
    scan = octviewer.load(KERMANY_SMALL / "CNV" / "CNV-451136-1.jpeg")
    probs = np.full(4, 0.25, np.float32)

    def flags(score: float) -> frozenset[ResultFlag]:
        return result_flags(scan, probs, score, engine.config, engine.ood)

    assert ResultFlag.OUT_OF_DISTRIBUTION in flags(float("nan"))
    assert ResultFlag.OUT_OF_DISTRIBUTION not in flags(-1.0)


def test_l2_normalised_statistics_round_trip_and_score_differently() -> None:
    """The ``"normalize": "l2"`` variant: stored in the bundle JSON, read back, and scored on
    unit-length features; a model without it writes exactly the JSON of older bundles."""
    rng = np.random.default_rng(2)
    plain, centers = _gaussian_model(rng)
    assert "normalize" not in plain.to_bundle()[0]  # old bundles' JSON unchanged
    assert OODModel.from_bundle(*plain.to_bundle()).networks[0].normalize == "none"
    y = rng.integers(0, 3, 600)
    f = centers[y] + rng.normal(0, 1, (600, 8))
    means, whiten = fit_network(normalize_features(f, "l2"), y, 3)
    held = centers[y[:200]] + rng.normal(0, 1, (200, 8))
    raw = NetworkStats(means, whiten, 0.0, 1.0, "l2").distance(held)
    net = NetworkStats(means, whiten, *scale_of(raw), "l2")
    l2 = OODModel((net,), threshold_at(net.z(held), 0.02))
    meta, tensors = l2.to_bundle()
    assert meta["normalize"] == "l2"
    again = OODModel.from_bundle(meta, tensors)
    x = centers + rng.normal(0, 1, centers.shape)
    s = again.score([x])
    np.testing.assert_allclose(s, l2.score([x]), rtol=1e-5)
    assert np.isfinite(s).all() and not np.allclose(s, plain.score([x]))
    # the scale of a feature vector no longer matters, only its direction
    np.testing.assert_allclose(again.score([3.0 * x]), s, rtol=1e-6)
    with pytest.raises(ModelFormatError, match="normalisation"):
        OODModel.from_bundle({**meta, "normalize": "l1"}, tensors)


def test_l2_statistics_travel_in_a_bundle_and_the_engine_uses_them(tmp_path: Path) -> None:
    from octviewer.core.engine import Engine
    from octviewer.core.model.bundle import load_bundle, read_bundle_config

    path, ood = _bundle_with_stats(tmp_path, normalize="l2")
    assert read_bundle_config(path).ood["normalize"] == "l2"
    loaded = load_bundle(path)
    assert loaded.ood is not None and loaded.ood.networks[0].normalize == "l2"
    plain_path, _ = _bundle_with_stats(tmp_path)
    assert "normalize" not in read_bundle_config(plain_path).ood
    scan = octviewer.load(KERMANY_SMALL / "CNV" / "CNV-451136-1.jpeg")
    fr = Engine(path, device="cpu").analyze(scan, AnalysisRequest(cam=False)).frames[0]
    old = Engine(plain_path, device="cpu").analyze(scan, AnalysisRequest(cam=False)).frames[0]
    assert np.isfinite(fr.ood_score) and fr.ood_threshold == pytest.approx(ood.threshold)
    assert fr.ood_score != pytest.approx(old.ood_score)
