"""Unit tests of the training package: metrics, calibration, patient split, options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from octviewer.errors import TrainingError
from training.config import TrainConfig, read_config_file
from training.data.dataset import Sample, discover
from training.data.split import patient_split
from training.evaluate.calibrate import expected_calibration_error, fit_temperature, nll, softmax
from training.evaluate.metrics import (
    balanced_accuracy,
    binary_auroc,
    classification_report,
    confusion_matrix,
    macro_f1,
    matthews_corrcoef,
)

KERMANY_SMALL = Path(__file__).parent / "data" / "kermany_small"


def test_metrics_match_hand_computed_confusion_matrix() -> None:
    # 3 classes; truth 4x A, 3x B, 3x C
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 2])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 1], [1, 2, 0], [0, 0, 3]]
    # recalls 2/4, 2/3, 3/3 -> balanced accuracy 13/18
    assert balanced_accuracy(cm) == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    # F1: A p=2/3 r=1/2 -> 4/7; B p=2/3 r=2/3 -> 2/3; C p=3/4 r=1 -> 6/7
    assert macro_f1(cm) == pytest.approx((4 / 7 + 2 / 3 + 6 / 7) / 3)
    # MCC by Gorodkin: c=7, s=10, t=(4,3,3), p=(3,3,4)
    num = 7 * 10 - (4 * 3 + 3 * 3 + 3 * 4)
    den = np.sqrt((100 - (16 + 9 + 9)) * (100 - (9 + 9 + 16)))
    assert matthews_corrcoef(cm) == pytest.approx(num / den)


def test_auroc_with_ties_by_hand() -> None:
    # positives 0.8, 0.5 ; negatives 0.5, 0.2: pairs (0.8>0.5 1)(0.8>0.2 1)(0.5=0.5 .5)(0.5>0.2 1) = 3.5/4
    assert binary_auroc(np.array([1, 1, 0, 0]), np.array([0.8, 0.5, 0.5, 0.2])) == pytest.approx(
        0.875
    )
    assert binary_auroc(np.array([1, 1]), np.array([0.1, 0.2])) is None


def test_metrics_agree_with_sklearn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + np.eye(4)[y] * 1.5
    p = softmax(logits)
    rep = classification_report(y, p, ("a", "b", "c", "d"))
    pred = p.argmax(1)
    assert rep["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert rep["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert rep["weighted_f1"] == pytest.approx(sk.f1_score(y, pred, average="weighted"))
    assert rep["mcc"] == pytest.approx(sk.matthews_corrcoef(y, pred))
    assert rep["auroc_macro_ovr"] == pytest.approx(
        sk.roc_auc_score(y, p, multi_class="ovr", average="macro")
    )
    assert rep["auroc_weighted_ovr"] == pytest.approx(
        sk.roc_auc_score(y, p, multi_class="ovr", average="weighted")
    )
    assert rep["confusion_matrix"] == sk.confusion_matrix(y, pred).tolist()


def test_temperature_fit_lowers_nll_of_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    # labels drawn from softmax(true_logits): calibrated at T = 1; then made 4x over-confident
    true_logits = rng.normal(size=(4000, 4)) * 1.5
    p = softmax(true_logits)
    y = np.array([rng.choice(4, p=row) for row in p])
    over = true_logits * 4.0
    cal = fit_temperature(over, y)
    assert cal.temperature == pytest.approx(4.0, rel=0.15)
    assert cal.nll_after < cal.nll_before - 0.1
    assert cal.ece_after < cal.ece_before
    assert nll(over, y, cal.temperature) == pytest.approx(cal.nll_after)
    assert expected_calibration_error(softmax(over, cal.temperature), y) == pytest.approx(
        cal.ece_after
    )


def _samples(n_patients: int, per_patient: int, n_classes: int) -> list[Sample]:
    out = []
    for p in range(n_patients):
        for i in range(per_patient):
            out.append(Sample(Path(f"/x/{p}-{i}.png"), label=p % n_classes, patient=f"P{p}"))
    return out


def test_patient_split_is_disjoint_stratified_and_reproducible() -> None:
    samples = _samples(40, 5, 4)
    names = ("a", "b", "c", "d")
    s1 = patient_split(samples, names, val_fraction=0.25, seed=7)
    s2 = patient_split(samples, names, val_fraction=0.25, seed=7)
    s3 = patient_split(samples, names, val_fraction=0.25, seed=8)
    assert not (s1.train_patients & s1.val_patients)
    assert len(s1.train) + len(s1.val) == len(samples)
    assert [x.path for x in s1.val] == [x.path for x in s2.val]
    assert {x.patient for x in s1.val} != {x.patient for x in s3.val}
    # stratified: 10 patients per class, 25 % -> 2 or 3 per class in validation
    per_class = {c: len({x.patient for x in s1.val if x.label == c}) for c in range(4)}
    assert all(2 <= n <= 3 for n in per_class.values()), per_class


def test_patient_folds_partition_the_patients() -> None:
    from training.data.split import patient_fold

    samples = _samples(40, 5, 4)
    names = ("a", "b", "c", "d")
    folds = [patient_fold(samples, names, n_folds=4, fold=k, seed=3) for k in range(1, 5)]
    vals = [f.val_patients for f in folds]
    assert set().union(*vals) == {s.patient for s in samples}
    assert sum(map(len, vals)) == 40  # disjoint
    for f in folds:
        assert not f.val_patients & f.train_patients and f.fold is not None
        assert sorted({s.label for s in f.val}) == [0, 1, 2, 3]  # stratified
    again = patient_fold(samples, names, n_folds=4, fold=2, seed=3)
    assert again.val == folds[1].val
    with pytest.raises(TrainingError, match="does not exist"):
        patient_fold(samples, names, n_folds=4, fold=5)


def test_kermany_names_give_patients_and_split_keeps_them_together() -> None:
    ds = discover(KERMANY_SMALL)
    assert ds.class_names == ("CNV", "DME", "DRUSEN", "NORMAL")
    assert ds.patients_from == "name"
    assert {s.patient for s in ds.samples} >= {"451136", "4674526", "30521", "8549730"}
    split = patient_split(ds.samples, ds.class_names, val_fraction=0.5, seed=0)
    assert not (split.train_patients & split.val_patients)


def test_bad_datasets_are_refused(tmp_path: Path) -> None:
    one = tmp_path / "one"
    (one / "CNV").mkdir(parents=True)
    (one / "CNV" / "CNV-1-1.jpeg").write_bytes(
        (KERMANY_SMALL / "CNV" / "CNV-451136-1.jpeg").read_bytes()
    )
    with pytest.raises(TrainingError, match="only one class"):
        discover(one)
    (one / "DME").mkdir()
    with pytest.raises(TrainingError, match="hold no images"):
        discover(one)
    with pytest.raises(TrainingError, match="does not exist"):
        discover(tmp_path / "missing")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "x.png").write_bytes(b"")
    with pytest.raises(TrainingError, match="no class sub-folders"):
        discover(flat)


def test_csv_dataset_with_patient_column(tmp_path: Path) -> None:
    rows = ["path,label,patient"]
    for f in sorted(KERMANY_SMALL.rglob("*.jpeg")):
        rows.append(f"{f},{f.parent.name},pt{f.stem.split('-')[1]}")
    (tmp_path / "d.csv").write_text("\n".join(rows), encoding="utf-8")
    ds = discover(tmp_path / "d.csv")
    assert ds.layout == "csv" and ds.patients_from == "csv" and len(ds.samples) == 12
    assert all(s.patient.startswith("pt") for s in ds.samples)


def test_config_file_and_validation(tmp_path: Path) -> None:
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"epochs": 3, "batch-size": 8}), encoding="utf-8")
    assert read_config_file(f) == {"epochs": 3, "batch_size": 8}
    f.write_text(json.dumps({"epochz": 3}), encoding="utf-8")
    with pytest.raises(TrainingError, match="epochz"):
        read_config_file(f)
    with pytest.raises(TrainingError, match="--mode"):
        TrainConfig(data="d", run_dir="r", mode="fast")
    assert TrainConfig(data="d", run_dir="r", architecture="timm/resnet18").input_size == 224


def test_fold_options_go_together(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="go together"):
        TrainConfig(data=str(tmp_path), run_dir="r", folds=4)
    with pytest.raises(TrainingError, match="between 1 and --folds"):
        TrainConfig(data=str(tmp_path), run_dir="r", folds=4, fold=0)
    assert TrainConfig(data=str(tmp_path), run_dir="r", folds=4, fold=4).fold == 4
