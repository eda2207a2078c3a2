"""After the loop: best weights, temperature on validation, metrics, the test set, OOD statistics."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.core.model.config import PreprocessConfig
from training.data.dataset import FrameDataset, Sample, discover_test
from training.evaluate.calibrate import fit_temperature, softmax
from training.evaluate.metrics import classification_report

if TYPE_CHECKING:
    from training.context import RunContext, RunData
    from training.data.split import Split
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


def calibrate_and_score(ctx: RunContext, plan: Plan, model: Any, result: FitResult) -> Validation:
    """Load the best weights, predict validation, fit the temperature, score validation."""
    from training.fit import batches

    device = ctx.compute.device
    plan.trainable.load_state_dict(result.best_state)
    model.to(device).eval()
    single = dataclasses.replace(ctx.compute.dist, rank=0, world_size=1)
    val_logits, val_labels, _, _ = batches.predict(
        plan.trainable,
        plan.fit_val,
        plan.prepare_eval,
        batches.Inference(device, plan.batch_size, plan.workers, ctx.compute.precision),
        single,
    )
    if ctx.cfg.calibrate and val_labels.size >= 2:
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
        "validation": classification_report(val_labels, val_probs, ctx.names),
        "calibration": cal_info,
        "best_epoch": result.best_epoch + 1,
    }
    return Validation(val_logits, val_labels, val_probs, temperature, cal_info, metrics)


def score_test(ctx: RunContext, data: RunData, model: Any, val: Validation) -> ScoredTest:
    """Score the test set (``--test`` or the dataset's own) into ``val.metrics["test"]``."""
    from training.fit import batches

    cfg, names, pre, source, split = ctx.cfg, ctx.names, ctx.pre, data.source, data.split
    test_root = cfg.test or (str(source.test_root) if source.test_root else None)
    if not test_root:
        return ScoredTest(None, (), None, [])
    test_samples = discover_test(test_root, names, data.patient_regex)
    overlap = {s.patient for s in test_samples} & (split.train_patients | split.val_patients)
    if overlap and source.patients_from != "image":
        log.warning(
            "%d test patient(s) also appear in the training data: test scores may be optimistic",
            len(overlap),
        )
    single = dataclasses.replace(ctx.compute.dist, rank=0, world_size=1)
    tl, tlab, _, tbad = batches.predict(
        model,
        FrameDataset(test_samples, pre),
        lambda x: _eval_batch(x, pre),
        batches.Inference(ctx.compute.device, cfg.batch_size, cfg.workers, ctx.compute.precision),
        single,
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


def fit_ood(ctx: RunContext, model: Any, split: Split, metrics: dict[str, Any]) -> Any:
    """Out-of-distribution statistics from the training split, threshold from validation."""
    cfg, pre = ctx.cfg, ctx.pre
    if not cfg.ood_false_flag_rate:
        return None
    from training.evaluate.ood import extract, fit_shared_split

    model.cpu().eval()
    ood, report = fit_shared_split(
        extract(model, split.train, pre, desc="OOD train features"),
        extract(model, split.val, pre, desc="OOD validation features"),
        len(ctx.names),
        rate=cfg.ood_false_flag_rate,
    )
    metrics["ood"] = report
    return ood
