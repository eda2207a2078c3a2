"""Patient-disjoint, stratified train/validation split, reproducible from a seed.

Every patient goes wholly to one side. Patients are stratified by their most frequent label
(a Kermany patient may have images in two classes): within each class, a seeded shuffle of
that class's patients sends ``round(val_fraction * n)`` of them (at least one when the class
has two or more patients) to validation.

Cross-validation (:func:`patient_fold`): the same seeded per-class shuffle deals the patients
round-robin into ``n_folds`` folds, so every patient is in exactly one fold and every fold has
about ``1 / n_folds`` of each class; fold ``k`` is the validation side of the k-th model.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from octviewer.errors import TrainingError
from training.data.dataset import OUTLIER, Sample

if TYPE_CHECKING:
    from training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    seed: int
    val_fraction: float
    fold: tuple[int, int] | None = None  # (k, n): validation = fold k (1-based) of n

    @property
    def train_patients(self) -> set[str]:
        return {s.patient for s in self.train}

    @property
    def val_patients(self) -> set[str]:
        return {s.patient for s in self.val}


def _primary_labels(samples: list[Sample] | tuple[Sample, ...]) -> dict[int, list[str]]:
    """Patients grouped by their most frequent class (ties: lowest class index), sorted; a
    patient with outlier images only is grouped under OUTLIER. Outlier images do not count
    towards a patient's class, so the classes' grouping is the same with or without them."""
    by_patient: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_patient[s.patient].append(s)
    primary: dict[int, list[str]] = defaultdict(list)
    for patient in sorted(by_patient):
        counts = Counter(s.label for s in by_patient[patient] if s.label != OUTLIER)
        label = min(counts, key=lambda c: (-counts[c], c)) if counts else OUTLIER
        primary[label].append(patient)
    return primary


def _dealing_order(label: int) -> tuple[bool, int]:
    """Classes first, outliers last: the classes' folds do not depend on the outliers."""
    return (label == OUTLIER, label)


def patient_split(
    samples: list[Sample] | tuple[Sample, ...],
    class_names: tuple[str, ...],
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    if not 0.0 < val_fraction < 1.0:
        raise TrainingError(
            f"The validation fraction must be between 0 and 1 (got {val_fraction})."
        )
    primary = _primary_labels(samples)
    rng = np.random.default_rng(seed)
    val_patients: set[str] = set()
    for label in sorted(primary, key=_dealing_order):
        patients = primary[label]
        order = rng.permutation(len(patients))
        n_val = round(val_fraction * len(patients))
        if len(patients) >= 2:
            n_val = min(max(n_val, 1), len(patients) - 1)
        else:
            n_val = 0
            log.warning(
                "Class %s has a single patient: all its images go to training, none to validation",
                "outliers" if label == OUTLIER else class_names[label],
            )
        val_patients.update(patients[i] for i in order[:n_val])
    train = tuple(s for s in samples if s.patient not in val_patients)
    val = tuple(s for s in samples if s.patient in val_patients and s.label != OUTLIER)
    if not val:
        raise TrainingError(
            "Not enough patients to hold out a validation set: add images from more patients "
            "or give a larger --val-fraction."
        )
    known = [s for s in samples if s.label != OUTLIER]
    missing = sorted({class_names[s.label] for s in known} - {class_names[s.label] for s in val})
    if missing:
        log.warning("Validation set has no images of: %s (too few patients)", ", ".join(missing))
    return Split(train=train, val=val, seed=seed, val_fraction=val_fraction)


def patient_fold(
    samples: list[Sample] | tuple[Sample, ...],
    class_names: tuple[str, ...],
    *,
    n_folds: int,
    fold: int,
    seed: int = 0,
) -> Split:
    """Fold ``fold`` (1-based) of ``n_folds`` as validation, the other folds as training.

    Each source (``Sample.source``) is dealt on its own, from a generator seeded afresh, so
    one source's folds do not change when another is added. Outlier-exposure images
    (``OUTLIER``) of the validation patients are left out of both sides."""
    if n_folds < 2 or not 1 <= fold <= n_folds:
        raise TrainingError(
            f"Fold {fold} of {n_folds} does not exist: use 1 <= fold <= folds, folds >= 2."
        )
    val_patients = fold_patients(samples, class_names, n_folds=n_folds, fold=fold, seed=seed)
    train = tuple(s for s in samples if s.patient not in val_patients)
    val = tuple(s for s in samples if s.patient in val_patients and s.label != OUTLIER)
    if not val or not train:
        raise TrainingError(
            f"Not enough patients for {n_folds} folds: add images from more patients or use "
            "fewer --folds."
        )
    return Split(train, val, seed=seed, val_fraction=len(val) / len(samples), fold=(fold, n_folds))


def fold_patients(
    samples: list[Sample] | tuple[Sample, ...],
    class_names: tuple[str, ...],
    *,
    n_folds: int,
    fold: int,
    seed: int = 0,
) -> set[str]:
    """The patients of fold ``fold`` (1-based), outlier-only patients included: each source
    dealt on its own (see :func:`patient_fold`)."""
    val_patients: set[str] = set()
    for source in sorted({s.source for s in samples}):
        of_source = [s for s in samples if s.source == source]
        val_patients |= _deal(of_source, class_names, n_folds, fold, seed)
    return val_patients


def _deal(
    samples: list[Sample], class_names: tuple[str, ...], n_folds: int, fold: int, seed: int
) -> set[str]:
    """The patients of fold ``fold``: a seeded per-class shuffle dealt round-robin."""
    rng = np.random.default_rng(seed)
    val_patients: set[str] = set()
    dealt = 0  # continue the round-robin across classes so small classes do not pile up in fold 1
    groups = _primary_labels(samples)
    for label in sorted(groups, key=_dealing_order):
        patients = groups[label]
        order = rng.permutation(len(patients))
        for j, i in enumerate(order):
            if (dealt + j) % n_folds == fold - 1:
                val_patients.add(patients[i])
        dealt += len(patients)
        if len(patients) < n_folds:
            log.warning(
                "Class %s has %d patients for %d folds: some folds have none of it",
                "outliers" if label == OUTLIER else class_names[label],
                len(patients),
                n_folds,
            )
    return val_patients


def save_split(split: Split, class_names: tuple[str, ...], path: Path) -> None:
    """Write ``split.csv``: subset, path, frame, label, patient (one row per image)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["subset", "path", "frame", "label", "patient"])
        for subset, items in (("train", split.train), ("val", split.val)):
            for s in items:
                w.writerow(
                    [
                        subset,
                        str(s.path),
                        "" if s.frame is None else s.frame,
                        "OUTLIER" if s.label == OUTLIER else class_names[s.label],
                        s.patient,
                    ]
                )


def load_split(
    path: Path, samples: list[Sample], class_names: tuple[str, ...], seed: int, val_fraction: float
) -> Split:
    """Re-read a saved split (used on resume so the subsets are exactly the same)."""
    subset_of: dict[tuple[str, str], str] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            subset_of[(row["path"], row["frame"])] = row["subset"]
    train, val = [], []
    for s in samples:
        key = (str(s.path), "" if s.frame is None else str(s.frame))
        where = subset_of.get(key)
        if where == "train":
            train.append(s)
        elif where == "val":
            val.append(s)
    if not train or not val:
        raise TrainingError(
            f"The saved split {path} does not match the dataset any more; start a new run "
            "directory instead of resuming."
        )
    return Split(train=tuple(train), val=tuple(val), seed=seed, val_fraction=val_fraction)


def requested_fold(cfg: TrainConfig) -> tuple[int, int] | None:
    """``(fold, folds)`` when ``cfg`` asks for one cross-validation fold, else ``None``."""
    return (cfg.fold, cfg.folds) if cfg.folds and cfg.fold else None


def choose_split(
    cfg: TrainConfig,
    samples: tuple[Sample, ...],
    names: tuple[str, ...],
    split_csv: Path,
    is_main: bool,
) -> Split:
    """The run's split: the saved one on resume, else a new fold or split (saved by rank 0)."""
    fold = requested_fold(cfg)
    if cfg.resume and split_csv.is_file():
        split = load_split(
            split_csv, list(samples), names, cfg.effective_split_seed, cfg.val_fraction
        )
        return dataclasses.replace(split, fold=fold)
    if fold is not None:
        split = patient_fold(
            samples, names, n_folds=fold[1], fold=fold[0], seed=cfg.effective_split_seed
        )
    else:
        split = patient_split(
            samples, names, val_fraction=cfg.val_fraction, seed=cfg.effective_split_seed
        )
    if is_main:
        save_split(split, names, split_csv)
    return split
