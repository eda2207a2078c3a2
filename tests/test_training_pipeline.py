"""End-to-end runs of the training package on a dozen real Kermany B-scans (tiny models).

Images: tests/data/kermany_small (3 per class, 2 patients per class; see tests/data/README.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from octviewer.core.inference import AnalysisRequest
from octviewer.errors import TrainingError
from training.config import TrainConfig
from training.run import run_training

KERMANY_SMALL = Path(__file__).parent / "data" / "kermany_small"
TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 16}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _cfg(tmp_path: Path, name: str, **kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "data": str(KERMANY_SMALL),
        "run_dir": str(tmp_path / name),
        "architecture": "mirage_vit",
        "arch_kwargs": dict(TINY),
        "img_size": 64,
        "epochs": 2,
        "batch_size": 4,
        "max_steps_per_epoch": 1,
        "val_fraction": 0.5,
        "workers": 0,
        "plots": False,
    }
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_smoke_run_writes_a_bundle_the_viewer_engine_analyses(tmp_path: Path) -> None:
    import octviewer
    from octviewer.core.engine import Engine
    from octviewer.core.model.bundle import read_bundle_config

    res = run_training(
        _cfg(tmp_path, "smoke", plots=True, test=str(KERMANY_SMALL)), argv=["octviewer-train", "x"]
    )
    run = res.run_dir
    for f in (
        "split.csv",
        "metrics.csv",
        "metrics.json",
        "train.log",
        "last.pt",
        "best.pt",
        "learning_curves.png",
        "confusion_val.png",
        "reliability_val.png",
        "roc_val.png",
        "confusion_test.png",
    ):
        assert (run / f).is_file(), f
    cfg = read_bundle_config(res.bundle)
    assert cfg.class_names == ("CNV", "DME", "DRUSEN", "NORMAL")
    assert cfg.preprocess.size == (64, 64)
    assert cfg.temperature > 0
    prov = cfg.provenance
    assert prov["command"].startswith("octviewer-train")
    assert prov["split"]["seed"] == 0 and prov["split"]["by"] == "patient"
    assert prov["data"]["images"] == 12 and "torch" in prov["versions"]
    val_cm = np.asarray(cfg.metrics["validation"]["confusion_matrix"])
    assert (
        val_cm.shape == (4, 4)
        and val_cm.sum() == cfg.metrics["validation"]["n"] == prov["split"]["validation"]["images"]
    )
    assert set(cfg.metrics) >= {"validation", "test", "calibration"}
    assert np.asarray(cfg.metrics["test"]["confusion_matrix"]).sum() == 12

    engine = Engine(res.bundle, device="cpu")
    scan = octviewer.load(KERMANY_SMALL / "DME" / "DME-30521-9.jpeg")
    result = engine.analyze(scan, AnalysisRequest(cam=False))
    fr = result.frames[0]
    assert fr.class_names == cfg.class_names
    assert fr.probabilities.shape == (4,) and abs(float(fr.probabilities.sum()) - 1) < 1e-4
    # out-of-distribution statistics from the run's own training images, threshold from validation
    assert cfg.ood["method"] == "mahalanobis" and cfg.ood["networks"] == 1
    assert cfg.metrics["ood"]["heldout_images"] == prov["split"]["validation"]["images"]
    assert engine.ood is not None and fr.ood_score is not None
    assert fr.ood_threshold == pytest.approx(cfg.ood["threshold"])


def test_cached_features_mode_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    kw = {"mode": "cached-features", "epochs": 4, "max_steps_per_epoch": None, "calibrate": False}
    full = run_training(_cfg(tmp_path, "full", **kw))
    assert (full.run_dir / "features.pt").is_file()
    assert len(full.metrics) and full.metrics["best_epoch"] >= 1

    class Interrupt(Exception):
        pass

    def stop_after_two(epoch: int, row: dict[str, object]) -> None:
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_training(_cfg(tmp_path, "cut", **kw), epoch_callback=stop_after_two)
    with pytest.raises(TrainingError, match="already exists"):
        run_training(_cfg(tmp_path, "cut", **kw))
    resumed = run_training(_cfg(tmp_path, "cut", resume=True, **kw))
    a, b = load_file(str(full.bundle)), load_file(str(resumed.bundle))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    import json

    ha = json.loads((full.run_dir / "metrics.json").read_text())
    hb = json.loads((resumed.run_dir / "metrics.json").read_text())
    assert [round(h["train_loss"], 6) for h in ha] == [round(h["train_loss"], 6) for h in hb]


def test_full_mode_resume_matches(tmp_path: Path) -> None:
    import torch

    kw = {"epochs": 2, "calibrate": False}
    full = run_training(_cfg(tmp_path, "a", **kw))

    def stop(epoch: int, row: dict[str, object]) -> None:
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(_cfg(tmp_path, "b", **kw), epoch_callback=stop)
    resumed = run_training(_cfg(tmp_path, "b", resume=True, **kw))
    la = torch.load(full.run_dir / "last.pt", weights_only=True)["model"]
    lb = torch.load(resumed.run_dir / "last.pt", weights_only=True)["model"]
    for k in la:
        torch.testing.assert_close(la[k], lb[k], rtol=1e-4, atol=1e-5)


def test_unreadable_images_are_skipped_and_listed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(KERMANY_SMALL, data)
    (data / "CNV" / "CNV-999-1.jpeg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "NORMAL" / "NORMAL-998-1.png").write_bytes(b"")
    res = run_training(_cfg(tmp_path, "bad", data=str(data), epochs=1))
    assert len(res.unreadable) == 2
    listed = (res.run_dir / "unreadable.txt").read_text()
    assert "CNV-999-1.jpeg" in listed and "NORMAL-998-1.png" in listed
    assert res.metrics["validation"]["n"] + len(res.unreadable) <= 14
    assert "CNV-999-1.jpeg" not in (res.run_dir / "split.csv").read_text()


def test_existing_run_dir_is_not_overwritten_silently(tmp_path: Path) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.docx").write_text("precious")
    with pytest.raises(TrainingError, match="already exists"):
        run_training(_cfg(tmp_path, "mine"))
    with pytest.raises(TrainingError, match="does not look like"):
        run_training(_cfg(tmp_path, "mine", overwrite=True))
    assert (other / "thesis.docx").read_text() == "precious"


def test_cli_help_and_error_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in (
        "--init",
        "--mode",
        "--img-size",
        "--ema",
        "--mixup",
        "--resume",
        "--fp16-weights",
        "torchrun",
    ):
        assert opt in out
    rc = main(["--data", str(tmp_path / "nothing"), "--run-dir", str(tmp_path / "r")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_cnn_trains_in_bf16_channels_last_on_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--precision bf16 on a CPU (autocast) with a channels_last CNN still gives a normal bundle."""
    import torch
    from safetensors.torch import load_file

    import octviewer
    from octviewer.core.engine import Engine
    from training import run as run_mod

    seen: list[bool] = []
    real = run_mod.use_channels_last

    def spy(model: torch.nn.Module) -> bool:
        seen.append(real(model))
        return seen[-1]

    monkeypatch.setattr(run_mod, "use_channels_last", spy)
    res = run_training(
        _cfg(
            tmp_path,
            "bf16",
            architecture="timm/resnet10t",
            arch_kwargs={},
            precision="bf16",
            device="cpu",
        )
    )
    assert seen == [True]
    tensors = load_file(str(res.bundle))
    assert all(t.is_contiguous() for t in tensors.values())
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float32}
    assert json_precision(res.run_dir) == "bf16"
    engine = Engine(res.bundle, device="cpu")
    result = engine.analyze(
        octviewer.load(KERMANY_SMALL / "DME" / "DME-30521-9.jpeg"), AnalysisRequest(cam=True)
    )
    fr = result.frames[0]
    assert abs(float(fr.probabilities.sum()) - 1) < 1e-4
    assert fr.cam is not None and np.isfinite(fr.cam).all()


def json_precision(run_dir: Path) -> str:
    """The precision the run actually used, as train.log records it ("... on cpu, bf16, ...")."""
    for line in (run_dir / "train.log").read_text().splitlines():
        if "Training timm/" in line and " on cpu, " in line:
            return line.split(" on cpu, ", 1)[1].split(",", 1)[0]
    return ""
