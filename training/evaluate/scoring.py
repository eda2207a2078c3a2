"""After the loop: best weights, temperature on validation, metrics, the test set, OOD statistics."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.core.model.config import PreprocessConfig
from training.data.dataset import DatasetSource, FrameDataset, Sample, discover_test
from training.evaluate.calibrate import fit_temperature, softmax
from training.evaluate.metrics import classification_report

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.data.split import Split
    from training.fit.distributed import DistInfo
    from training.fit.loop import FitResult
    from training.fit.plan import Plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validation:
    logits: np.ndarray
    labels: np.ndarray
    probs: np.ndarray  # calibrated
    temperature: float
    calibration: dict[str, Any]
    metrics: dict[str, Any]  # validation, calibration, best_epoch (test and ood added later)


@dataclass(frozen=True)
class ScoredTest:
    root: str | None
    samples: tuple[Sample, ...]
    out: tuple[np.ndarray, np.ndarray] | None  # labels, calibrated probabilities
    unreadable: list[Sample]


def calibrate_and_score(
    cfg: TrainConfig,
    plan: Plan,
    model: Any,
    result: FitResult,
    names: tuple[str, ...],
    device: Any,
    dist: DistInfo,
    precision: str,
) -> Validation:
    """Load the best weights, predict validation, fit the temperature, score validation."""
    from training.fit import batches

    plan.trainable.load_state_dict(result.best_state)
    model.to(device).eval()
    single = dataclasses.replace(dist, rank=0, world_size=1)
    val_logits, val_labels, _, _ = batches.predict(
        plan.trainable,
        plan.fit_val,
        plan.prepare_eval,
        device,
        single,
        batch_size=plan.batch_size,
        workers=plan.workers,
        precision=precision,
    )
    if cfg.calibrate and val_labels.size >= 2:
        cal = fit_temperature(val_logits, val_labels)
        log.info(
            "Temperature %.3f: NLL %.4f -> %.4f, ECE %.4f -> %.4f",
            cal.temperature,
            cal.nll_before,
            cal.nll_after,
            cal.ece_before,
            cal.ece_after,
        )
        temperature, cal_info = cal.temperature, cal.to_dict()
    else:
        temperature, cal_info = 1.0, {"temperature": 1.0, "note": "calibration off"}
    val_probs = softmax(val_logits, temperature)
    metrics: dict[str, Any] = {
        "validation": classification_report(val_labels, val_probs, names),
        "calibration": cal_info,
        "best_epoch": result.best_epoch + 1,
    }
    return Validation(val_logits, val_labels, val_probs, temperature, cal_info, metrics)


def score_test(
    cfg: TrainConfig,
    source: DatasetSource,
    split: Split,
    names: tuple[str, ...],
    regex: str,
    model: Any,
    pre: PreprocessConfig,
    device: Any,
    dist: DistInfo,
    precision: str,
    val: Validation,
) -> ScoredTest:
    """Score the test set (``--test`` or the dataset's own) into ``val.metrics["test"]``."""
    from training.fit import batches

    test_root = cfg.test or (str(source.test_root) if source.test_root else None)
    if not test_root:
        return ScoredTest(None, (), None, [])
    test_samples = discover_test(test_root, names, regex)
    overlap = {s.patient for s in test_samples} & (split.train_patients | split.val_patients)
    if overlap and source.patients_from != "image":
        log.warning(
            "%d test patient(s) also appear in the training data: test scores may be optimistic",
            len(overlap),
        )
    single = dataclasses.replace(dist, rank=0, world_size=1)
    tl, tlab, _, tbad = batches.predict(
        model,
        FrameDataset(test_samples, pre),
        lambda x: _eval_batch(x, pre),
        device,
        single,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        precision=precision,
        desc="test",
    )
    test_out = (tlab, softmax(tl, val.temperature))
    metrics = val.metrics
    metrics["test"] = classification_report(tlab, test_out[1], names)
    metrics["test"]["patient_overlap_with_training"] = len(overlap)
    log.info(
        "Test: balanced accuracy %.4f on %d images",
        metrics["test"]["balanced_accuracy"],
        tlab.size,
    )
    return ScoredTest(test_root, test_samples, test_out, [test_samples[i] for i in tbad])


def _eval_batch(x: Any, pre: PreprocessConfig) -> Any:
    from training.data.augment import eval_batch

    return eval_batch(x, pre)


def fit_ood(
    cfg: TrainConfig, model: Any, split: Split, pre: Any, metrics: dict[str, Any], n_classes: int
) -> Any:
    """Out-of-distribution statistics from the training split, threshold from validation."""
    if not cfg.ood_false_flag_rate:
        return None
    from training.evaluate.ood import extract, fit_shared_split

    model.cpu().eval()
    ood, report = fit_shared_split(
        extract(model, split.train, pre, desc="OOD train features"),
        extract(model, split.val, pre, desc="OOD validation features"),
        n_classes,
        rate=cfg.ood_false_flag_rate,
    )
    metrics["ood"] = report
    return ood
