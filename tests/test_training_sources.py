"""Training on several sources: the combined CSV, folds dealt per source and independent of the
outlier-exposure images, outliers trained toward a uniform output, and the real-data variation
augmentations (deterministic under a seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.data.dataset import OUTLIER, Sample, discover
from training.data.split import fold_patients, patient_fold
from training.data.variation import GROUPS, apply_variation

NAMES = ("CNV", "DME", "DRUSEN", "NORMAL")


def _samples(source: str, n_patients: int, *, outliers: int = 0) -> list[Sample]:
    out = [
        Sample(Path(f"/{source}/{p}-{i}.png"), p % 4, f"{source}/{p:03d}", source=source)
        for p in range(n_patients)
        for i in range(2)
    ]
    out += [
        Sample(Path(f"/{source}/o{p}.png"), OUTLIER, f"{source}/o{p:03d}", source=source)
        for p in range(outliers)
    ]
    return out


def test_a_sources_folds_do_not_change_when_another_source_or_outliers_join() -> None:
    a = _samples("a", 40)
    b = _samples("b", 30, outliers=12)
    for fold in range(1, 5):
        alone = patient_fold(a, NAMES, n_folds=4, fold=fold, seed=3)
        both = patient_fold(a + b, NAMES, n_folds=4, fold=fold, seed=3)
        assert {s.patient for s in both.val if s.source == "a"} == alone.val_patients
        without = patient_fold(
            [s for s in a + b if s.label != OUTLIER], NAMES, n_folds=4, fold=fold, seed=3
        )
        assert both.val == without.val  # outliers change no class's fold


def test_outliers_are_dealt_into_folds_but_never_validated_on() -> None:
    samples = _samples("b", 20, outliers=8)
    seen: set[str] = set()
    for fold in range(1, 5):
        split = patient_fold(samples, NAMES, n_folds=4, fold=fold, seed=0)
        assert all(s.label != OUTLIER for s in split.val)
        held = fold_patients(samples, NAMES, n_folds=4, fold=fold, seed=0)
        outliers = {s.patient for s in samples if s.label == OUTLIER} & held
        assert not outliers & {s.patient for s in split.train}
        seen |= outliers
    assert len(seen) == 8  # every outlier patient is held out by exactly one fold


def test_sources_csv_namespaces_patients_and_labels_other_findings(tmp_path: Path) -> None:
    from PIL import Image

    from training.data.sources import write_sources_csv

    for name, rows in (
        ("k", [("CNV/CNV-1-1.png", "CNV", "1"), ("NORMAL/NORMAL-3-1.png", "NORMAL", "3")]),
        ("o", [("CNV/amd_1_1.png", "CNV", "1"), ("other/ERM/erm_2_1.png", "", "2")]),
    ):
        lines = ["path\tclass\tpatient_id"]
        for rel, cls, pat in rows:
            (tmp_path / name / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name / rel)
            lines.append(f"{rel}\t{cls}\t{pat}")
        (tmp_path / name / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "all.csv"
    counts = write_sources_csv([("k", tmp_path / "k"), ("o", tmp_path / "o")], out)
    assert counts[("o", "OTHER")] == 1
    ds = discover(out, class_names=("CNV", "NORMAL"), outlier_label="OTHER")
    assert sorted((s.patient, s.label, s.source) for s in ds.samples) == [
        ("k/1", 0, "k"),
        ("k/3", 1, "k"),
        ("o/1", 0, "o"),
        ("o/2", OUTLIER, "o"),
    ]
    # without --outlier-label the other findings are simply not part of the data
    assert len(discover(out, class_names=("CNV", "NORMAL")).samples) == 3


def test_outlier_targets_are_uniform() -> None:
    import torch.nn.functional as F

    from training.fit.batches import soft_cross_entropy

    logits = torch.tensor([[4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, OUTLIER])
    k = 4
    targets = F.one_hot(y.clamp_min(0), k).float()
    targets[y < 0] = 1.0 / k
    loss = soft_cross_entropy(logits[1:], targets[1:], None)
    assert float(loss) == pytest.approx(np.log(4))  # a uniform output is the optimum


@pytest.mark.parametrize("group", GROUPS)
def test_each_variation_group_is_deterministic_and_stays_in_range(group: str) -> None:
    x = torch.rand(16, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    a = apply_variation(x, (group,), torch.Generator().manual_seed(7))
    b = apply_variation(x, (group,), torch.Generator().manual_seed(7))
    c = apply_variation(x, (group,), torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, x)  # 16 images at p = 0.5: some change


def test_display_group_uses_the_vol_transform_inverse() -> None:
    from training.data import variation

    x = torch.full((1, 1, 4, 4), 0.5)
    refl = x ** (1 / 0.25)
    assert torch.allclose(refl**0.25, x)
    out = variation.display_mapping(x.repeat(64, 1, 1, 1), torch.Generator().manual_seed(0))
    changed = out[(out - 0.5).abs().amax(dim=(1, 2, 3)) > 1e-6]
    assert len(changed) > 10  # about half the images are re-mapped


def test_unknown_variation_group_is_refused() -> None:
    from octviewer.errors import TrainingError
    from training.config import TrainConfig

    with pytest.raises(TrainingError, match="augment-extra"):
        TrainConfig(data="d", run_dir="r", augment_extra=("blur-everything",))
