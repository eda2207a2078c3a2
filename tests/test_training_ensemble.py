"""`octviewer-train ensemble`: members trained on one split become one bundle the engine runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from octviewer.core.inference import AnalysisRequest
from octviewer.errors import TrainingError
from training.cli import main as train_main
from training.config import TrainConfig
from training.ensemble.report import bootstrap_balanced_accuracy
from training.run import run_training

KERMANY_SMALL = Path(__file__).parent / "data" / "kermany_small"


def _member(tmp_path: Path, seed: int, split_seed: int = 0, epochs: int = 1, **kw: object) -> Path:
    cfg = TrainConfig(
        data=str(KERMANY_SMALL),
        run_dir=str(tmp_path / f"m{seed}-{split_seed}"),
        architecture="timm/test_resnet",
        img_size=64,
        epochs=epochs,
        batch_size=4,
        max_steps_per_epoch=1,
        val_fraction=0.5,
        workers=0,
        plots=False,
        seed=seed,
        split_seed=split_seed,
        **kw,  # type: ignore[arg-type]
    )
    res = run_training(cfg, argv=["octviewer-train", "member"])
    assert res.bundle is not None
    return res.bundle


def _shared_split_args(tmp_path: Path, a: Path, b: Path) -> list[str]:
    """Two member bundles, the data, the first member's split and a run directory."""
    split = tmp_path / "m1-0" / "split.csv"
    return [str(a), str(b), "--data", str(KERMANY_SMALL), "--split", str(split),
            "--run-dir", str(tmp_path / "ens")]  # fmt: skip


def test_ensemble_of_two_members_runs_in_the_engine(tmp_path: Path) -> None:
    import torch

    import octviewer
    from octviewer.core.engine import Engine
    from octviewer.core.model.bundle import read_bundle_config

    torch.set_num_threads(1)
    a, b = _member(tmp_path, 1), _member(tmp_path, 2)
    assert (tmp_path / "m1-0" / "split.csv").read_text() == (
        tmp_path / "m2-0" / "split.csv"
    ).read_text()
    out = tmp_path / "ens" / "model.safetensors"
    rc = train_main(
        [
            "ensemble",
            *_shared_split_args(tmp_path, a, b),
            "--bootstrap",
            "50",
            "--no-plots",
            "--name",
            "ens-test",
            "--hflip-tta",
            "--int8-weights",
        ]
    )
    assert rc == 0 and out.is_file()
    cfg = read_bundle_config(out)
    assert cfg.architecture == "ensemble" and cfg.cam_target_layer == "stack"
    assert cfg.arch_kwargs["hflip_tta"] is True and cfg.weights_dtype == "int8"
    assert "without_hflip_tta" in cfg.metrics["validation"]
    assert len(cfg.provenance["members"]) == 2
    ci = cfg.metrics["validation"]["balanced_accuracy_ci95"]
    assert 0.0 <= ci["low"] <= cfg.metrics["validation"]["balanced_accuracy"] <= ci["high"] <= 1.0
    scan = octviewer.load(next(KERMANY_SMALL.glob("CNV/*.jpeg")))
    res = Engine(out, device="cpu").analyze(scan, AnalysisRequest(cam=True))
    assert res.frames[0].cam is not None and res.frames[0].cam.shape == scan.shape
    assert res.model.name == "ens-test"


def test_member_weights_last_takes_each_final_epoch(tmp_path: Path) -> None:
    """--member-weights last: the validation patients choose no checkpoint, and the stored
    ensemble holds exactly the final-epoch weights of last.pt."""
    import torch
    from safetensors.torch import load_file

    from octviewer.core.model.bundle import read_bundle_config
    from training.ensemble.command import parse_config, run_ensemble

    torch.set_num_threads(1)
    a, b = _member(tmp_path, 1, epochs=2), _member(tmp_path, 2, epochs=2)
    argv = [str(a), str(b), "--data", str(KERMANY_SMALL), "--split", str(a.parent / "split.csv")]
    argv += ["--bootstrap", "20", "--no-plots", "--member-weights", "last", "--int8-weights"]
    res = run_ensemble(parse_config([*argv, "--run-dir", str(tmp_path / "e")]), argv)
    from octviewer.core.model.bundle import load_bundle

    stored = load_bundle(res.bundle).model.state_dict()
    for i, member in enumerate((a, b)):
        last = torch.load(member.parent / "last.pt", weights_only=True)["model"]
        for key, value in last.items():
            if value.is_floating_point():  # int8 rounding: within one step of each channel
                step = value.abs().amax() / 127 if value.ndim > 1 else value.abs().amax() / 1000
                assert (stored[f"members.{i}.{key}"] - value).abs().max() <= step + 1e-6, key
    assert len(load_file(str(res.bundle))) > len(stored)  # the int8 scales are stored too
    check = res.metrics["stored_weights"]
    assert check["dtype"] == "int8" and check["n"] > 0 and 0 <= check["agreement"] <= check["n"]
    prov = read_bundle_config(res.bundle).provenance
    assert read_bundle_config(res.bundle).metrics["stored_weights"] == check
    assert prov["member_weights"] == "last"
    assert prov["members"][0]["weights"] == "final epoch 2 (last.pt)"

    (b.parent / "last.pt").unlink()
    with pytest.raises(TrainingError, match=r"needs .*last\.pt"):
        run_ensemble(parse_config([*argv, "--run-dir", str(tmp_path / "f")]), argv)


def test_cross_validated_members_give_out_of_fold_metrics(tmp_path: Path) -> None:
    """One run per patient fold: every image is scored once, by the member that never saw it,
    and the bundle still averages all members."""
    import torch

    from octviewer.core.model.bundle import read_bundle_config
    from training.ensemble.command import parse_config, run_ensemble

    torch.set_num_threads(1)
    runs = [_member(tmp_path, k, folds=3, fold=k) for k in (1, 2, 3)]
    vals = [
        {
            r.split(",")[1]
            for r in (b.parent / "split.csv").read_text().splitlines()
            if r.startswith("val,")
        }
        for b in runs
    ]
    assert not (vals[0] & vals[1] or vals[0] & vals[2] or vals[1] & vals[2])
    assert sum(map(len, vals)) == 12  # every image validated exactly once
    argv = [*map(str, runs), "--data", str(KERMANY_SMALL), "--bootstrap", "20", "--no-plots"]
    res = run_ensemble(parse_config([*argv, "--run-dir", str(tmp_path / "cv")]), argv)
    val = res.metrics["validation"]
    assert val["n"] == 12 and val["evaluation"].startswith("out-of-fold: 3 patient folds")
    assert [m["images"] for m in res.metrics["members"]] == [len(v) for v in vals]
    cfg = read_bundle_config(res.bundle)
    assert len(cfg.arch_kwargs["members"]) == 3
    assert cfg.provenance["split"]["cross_validation"] is True
    assert cfg.provenance["split"]["validation"]["images"] == 12
    ood = res.metrics["ood"]  # each member's statistics from its own folds, scored out of fold
    assert ood["evaluation"].startswith("out of fold") and ood["heldout_images"] == 12
    assert [f["n"] for f in ood["per_fold"]] == [len(v) for v in vals]
    assert cfg.ood["networks"] == 3 and len(cfg.ood["center"]) == 3

    with pytest.raises(TrainingError, match="exactly one run per fold"):
        args = [str(runs[0]), str(runs[1]), "--data", str(KERMANY_SMALL)]
        run_ensemble(parse_config([*args, "--run-dir", str(tmp_path / "x")]), args)


def test_members_on_different_splits_are_refused(tmp_path: Path) -> None:
    a, b = _member(tmp_path, 1, split_seed=0), _member(tmp_path, 2, split_seed=5)
    with pytest.raises(TrainingError, match="different patient splits"):
        from training.ensemble.command import parse_config, run_ensemble

        cfg = parse_config(_shared_split_args(tmp_path, a, b))
        run_ensemble(cfg, ["x"])


def test_bootstrap_resamples_patients() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    preds = labels.copy()
    ci = bootstrap_balanced_accuracy(labels, preds, ["a", "a", "b", "b", "c", "c"], 2, n=100)
    assert ci["low"] == ci["high"] == 1.0  # a perfect classifier stays perfect in every resample
    preds[0] = 1
    ci = bootstrap_balanced_accuracy(labels, preds, ["a", "a", "b", "b", "c", "c"], 2, n=200)
    assert ci["low"] < ci["high"] <= 1.0
