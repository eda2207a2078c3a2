"""An ensemble's scores and outputs: temperature, metrics with patient-bootstrap intervals,
OOD statistics, provenance, the stored bundle (re-read and checked) and plots."""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.core.model.config import ModelConfig
from training.ensemble.config import EnsembleConfig
from training.ensemble.members import EvalSets, MemberLogits, Members, eval_prepare, predict_logits

log = logging.getLogger(__name__)


def bootstrap_balanced_accuracy(
    labels: np.ndarray, preds: np.ndarray, patients: list[str], k: int, *, n: int, seed: int = 0
) -> dict[str, float]:
    """95 % percentile interval of balanced accuracy, resampling *patients* with replacement
    (images of one patient are correlated, so resampling images would be too optimistic)."""
    from training.evaluate.metrics import balanced_accuracy, confusion_matrix

    groups: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        groups.setdefault(p, []).append(i)
    members = [np.asarray(v) for v in groups.values()]
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(n):
        pick = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[j] for j in pick])
        scores.append(balanced_accuracy(confusion_matrix(labels[idx], preds[idx], k)))
    lo, hi = np.percentile(scores, [2.5, 97.5])
    return {"low": float(lo), "high": float(hi), "resamples": n, "unit": "patient"}


@dataclass(frozen=True)
class Scores:
    calibration: Any  # training.evaluate.calibrate.Calibration of the ensemble's logits
    probs: np.ndarray  # calibrated
    report: dict[str, Any]  # the ensemble's validation report
    metrics: dict[str, Any]  # validation, calibration, members (ood added by the caller)


def score(cfg: EnsembleConfig, members: Members, sets: EvalSets, lg: MemberLogits) -> Scores:
    """Fit the ensemble's temperature and score it, each member and (with TTA) the plain mean."""
    from training.evaluate.calibrate import fit_temperature, softmax
    from training.evaluate.metrics import classification_report

    names, k, labels, folds = members.names, len(members.names), lg.labels, members.folds
    cal = fit_temperature(lg.logits, labels)
    probs = softmax(lg.logits, cal.temperature)
    preds = probs.argmax(1)
    patients = [s.patient for s in sets.samples]
    report = classification_report(labels, probs, names)
    report["evaluation"] = (
        f"out-of-fold: {folds} patient folds, each image predicted by the member that did not "
        "train on it"
        if folds is not None
        else "validation patients shared by all members, predicted by the whole ensemble"
    )
    report["balanced_accuracy_ci95"] = bootstrap_balanced_accuracy(
        labels, preds, patients, k, n=cfg.bootstrap
    )
    members_report = _members_report(cfg, members, sets, lg)
    if cfg.hflip_tta:
        plain_cal = fit_temperature(lg.plain, labels)
        plain = classification_report(labels, softmax(lg.plain, plain_cal.temperature), names)
        report["without_hflip_tta"] = {
            "balanced_accuracy": plain["balanced_accuracy"],
            "accuracy": plain["accuracy"],
            "ci95": bootstrap_balanced_accuracy(
                labels, lg.plain.argmax(1), patients, k, n=cfg.bootstrap
            ),
        }
    metrics: dict[str, Any] = {
        "validation": report,
        "calibration": cal.to_dict(),
        "members": members_report,
    }
    return Scores(cal, probs, report, metrics)


def _members_report(
    cfg: EnsembleConfig, members: Members, sets: EvalSets, lg: MemberLogits
) -> list[dict[str, Any]]:
    from octviewer.core.calibration import softmax
    from training.evaluate.metrics import classification_report

    out = []
    for m, logits, lab, ds, path in zip(
        members.loaded,
        lg.per_member,
        lg.labels_per_member,
        sets.datasets,
        members.paths,
        strict=True,
    ):
        r = classification_report(lab, softmax(logits, m.config.temperature), members.names)
        out.append(
            {
                "bundle": f"{path.parent.name}/{path.name}",
                "sha256": m.identity.sha256,
                "images": len(lab),
                "balanced_accuracy": r["balanced_accuracy"],
                "ci95": bootstrap_balanced_accuracy(
                    lab,
                    logits.argmax(1),
                    [s.patient for s in ds.samples],
                    len(members.names),
                    n=cfg.bootstrap,
                ),
            }
        )
    return out


def log_scores(members: Members, scores: Scores) -> None:
    report, cal = scores.report, scores.calibration
    log.info(
        "Ensemble of %d: validation balanced accuracy %.4f (95%% CI %.3f-%.3f, by patient); "
        "members %s; temperature %.3f, ECE %.4f -> %.4f",
        len(members.loaded),
        report["balanced_accuracy"],
        report["balanced_accuracy_ci95"]["low"],
        report["balanced_accuracy_ci95"]["high"],
        ", ".join(f"{r['balanced_accuracy']:.4f}" for r in scores.metrics["members"]),
        cal.temperature,
        cal.ece_before,
        cal.ece_after,
    )


def fit_ood(
    cfg: EnsembleConfig, model: Any, splits: list[Any], n_classes: int, pre: Any
) -> tuple[Any, dict[str, Any] | None]:
    """OOD statistics: one split per member (cross-validation) or one shared split."""
    if not cfg.ood_false_flag_rate:
        return None, None
    from training.evaluate.ood import extract, fit_cross_validated, fit_shared_split

    opts = {"rate": cfg.ood_false_flag_rate}
    if len(splits) == 1:
        sp = splits[0]
        return fit_shared_split(
            extract(model, sp.train, pre, desc="OOD train features"),
            extract(model, sp.val, pre, desc="OOD validation features"),
            n_classes,
            **opts,
        )
    samples = [s for sp in splits for s in sp.val]
    fold_of = np.array([k for k, sp in enumerate(splits) for _ in sp.val])
    return fit_cross_validated(extract(model, samples, pre), fold_of, n_classes, **opts)


def ensemble_provenance(
    argv: list[str], cfg: EnsembleConfig, members: Members, sets: EvalSets, t0: float
) -> dict[str, Any]:
    from training.data.dataset import describe
    from training.export.rundir import provenance_stamp

    first, folds, last_epochs = members.first, members.folds, members.last_epochs
    return {
        "command": shlex.join(argv),
        "mode": "ensemble",
        "members": [
            {
                "bundle": f"{path.parent.name}/{path.name}",
                "sha256": m.identity.sha256,
                "name": m.config.name,
                "command": (m.config.provenance or {}).get("command"),
                "training": (m.config.provenance or {}).get("training"),
                "weights": (
                    f"final epoch {last_epochs[i]} (last.pt)"
                    if last_epochs
                    else "best validation epoch (the member bundle)"
                ),
            }
            for i, (m, path) in enumerate(zip(members.loaded, members.paths, strict=True))
        ],
        "member_weights": cfg.member_weights,
        "data": (first.provenance or {}).get("data"),
        "split": {
            **((first.provenance or {}).get("split") or {}),
            "validation": describe(sets.samples, members.names),
            **(
                {"cross_validation": True, "folds": folds, "fold": None, "train": None}
                if folds is not None
                else {}
            ),
        },
        **provenance_stamp(t0),
    }


def ensemble_config(
    cfg: EnsembleConfig,
    members: Members,
    arch_kwargs: dict[str, Any],
    scores: Scores,
    provenance: dict[str, Any],
) -> ModelConfig:
    from octviewer.core.model.ensemble import ENSEMBLE, ENSEMBLE_CAM_TARGET

    first = members.first
    return ModelConfig(
        name=cfg.name,
        version=cfg.version,
        architecture=ENSEMBLE,
        class_names=members.names,
        arch_kwargs=arch_kwargs,
        preprocess=members.pre,
        temperature=float(scores.calibration.temperature),
        confidence_threshold=cfg.confidence_threshold,
        cam_target_layer=ENSEMBLE_CAM_TARGET,
        licence=cfg.licence or first.licence,
        description=cfg.description
        or f"Ensemble of {len(members.loaded)} {first.architecture} models; research use only.",
        provenance=provenance,
        metrics=scores.metrics,
        training_domain=dict(cfg.training_domain or first.training_domain),
    )


@dataclass(frozen=True)
class EnsembleBundle:
    """What the ensemble bundle stores: the module, its config and the OOD statistics."""

    model: Any
    config: ModelConfig  # its metrics are the run's metrics (stored_weights is added to them)
    ood: Any  # OODModel, or None without statistics


def store_checked(
    cfg: EnsembleConfig,
    out: Path,
    bundle: EnsembleBundle,
    sets: EvalSets,
    lg: MemberLogits,
    folds: int | None,
) -> str:
    """Write the bundle, re-read it, compare its validation logits with float32, and write it
    again with that check in its metrics (``bundle.config.metrics`` gains ``stored_weights``)."""
    from octviewer.core.model.bundle import save_bundle

    model, config, metrics = bundle.model, bundle.config, bundle.config.metrics
    dtype = cfg.weights_dtype
    save_bundle(out, model, config, dtype=dtype, ood=bundle.ood)
    check_set, prepare = sets.datasets[0], eval_prepare(config.preprocess)
    reference = (
        lg.logits
        if folds is None
        else predict_logits(model, check_set, prepare, "float32 ensemble", cfg.batch_size)[0]
    )
    stored = check_stored(
        out,
        reference,
        lambda m: predict_logits(m, check_set, prepare, "stored bundle", cfg.batch_size)[0],
    )
    metrics["stored_weights"] = {"dtype": dtype, **stored}
    # the same weights again, now with the check in the bundle's own metrics
    sha = save_bundle(
        out, model, dataclasses.replace(config, metrics=metrics), dtype=dtype, ood=bundle.ood
    )
    log.info(
        "Stored %s weights: %d/%d validation predictions as in float32 (max |logit diff| %.4f)",
        dtype,
        stored["agreement"],
        stored["n"],
        stored["max_abs_logit_diff"],
    )
    return sha


def check_stored(out: Path, logits: Any, predict: Any) -> dict[str, Any]:
    """Re-read the written bundle and compare its logits (``predict(model)``) with ``logits``."""
    from octviewer.core.model.bundle import load_bundle

    lg = predict(load_bundle(out).model)
    return {
        "n": len(lg),
        "agreement": int((lg.argmax(1) == logits.argmax(1)).sum()),
        "max_abs_logit_diff": float(np.abs(lg - logits).max()),
    }


def write_outputs(
    cfg: EnsembleConfig,
    run_dir: Path,
    members: Members,
    scores: Scores,
    lg: MemberLogits,
) -> None:
    """final_metrics.json and, unless --no-plots, the validation plots."""
    (run_dir / "final_metrics.json").write_text(
        json.dumps(scores.metrics, indent=1), encoding="utf-8"
    )
    if not cfg.plots:
        return
    from octviewer.core.calibration import softmax
    from training.export import plots

    names, folds, cal = members.names, members.folds, scores.calibration
    what = f"Out of fold ({folds}-fold patient CV)" if folds is not None else "Validation"
    plots.confusion(scores.report["confusion_matrix"], names, run_dir / "confusion_val.png", what)
    plots.reliability(
        softmax(lg.logits),
        scores.probs,
        lg.labels,
        run_dir / "reliability_val.png",
        (cal.ece_before, cal.ece_after),
    )
    plots.roc(lg.labels, scores.probs, names, run_dir / "roc_val.png", f"ROC one-vs-rest: {what}")
