"""A single run's outputs: provenance, the model bundle, final_metrics.json, unreadable.txt, plots."""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.core.calibration import softmax
from octviewer.core.model.config import ModelConfig
from octviewer.errors import TrainingError
from training.data.dataset import Sample, describe
from training.data.split import requested_fold
from training.export.rundir import provenance_stamp

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.context import RunContext, RunData
    from training.evaluate.scoring import ScoredTest, Validation
    from training.fit.loop import FitResult
    from training.model.setup import BuiltModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingFacts:
    """How the loop ran, for the provenance's ``training`` block."""

    result: FitResult
    train_seconds: float


def training_provenance(
    ctx: RunContext,
    built: BuiltModel,
    data: RunData,
    test: ScoredTest,
    facts: TrainingFacts,
    n_unreadable: int,
) -> dict[str, Any]:
    cfg, argv, source, samples, split = ctx.cfg, ctx.argv, data.source, data.samples, data.split
    names = source.class_names
    fold = requested_fold(cfg)
    result, compute = facts.result, ctx.compute
    return {
        "command": shlex.join(argv) if argv else "training.run_training (Python API)",
        "mode": cfg.mode,
        "init": built.init_description,
        "data": {
            "path": str(source.root),
            "layout": source.layout,
            "patients_from": source.patients_from,
            **describe(samples, names),
            "unreadable_skipped": n_unreadable,
        },
        "split": {
            "seed": cfg.effective_split_seed,
            "val_fraction": cfg.val_fraction if fold is None else split.val_fraction,
            "by": "patient",
            **({"fold": fold[0], "folds": fold[1]} if fold else {}),
            "train": describe(split.train, names),
            "validation": describe(split.val, names),
        },
        "test": {"path": test.root, **describe(test.samples, names)} if test.root else None,
        "training": {
            "epochs_run": len(result.history),
            "epochs_max": cfg.epochs,
            "best_epoch": result.best_epoch + 1,
            "stopped_early": result.stopped_early,
            "lr": cfg.base_lr,
            "batch_size": cfg.batch_size,
            "accum_steps": cfg.accum_steps,
            "weight_decay": cfg.weight_decay,
            "label_smoothing": cfg.label_smoothing,
            "balance": cfg.balance,
            "augment": cfg.augment,
            "mixup": cfg.mixup,
            "ema": cfg.ema,
            "layer_decay": cfg.layer_decay,
            "drop_path": cfg.drop_path,
            "precision": compute.precision,
            "device": str(compute.device),
            "world_size": compute.dist.world_size,
            "train_seconds": round(facts.train_seconds, 1),
        },
        **provenance_stamp(ctx.t_start),
    }


def model_config(
    ctx: RunContext,
    built: BuiltModel,
    data: RunData,
    model: Any,
    val: Validation,
    provenance: dict[str, Any],
) -> ModelConfig:
    from octviewer.core.model.architectures import default_cam_target

    cfg, source, samples = ctx.cfg, data.source, data.samples
    licence = cfg.licence or built.licence_hint
    description = cfg.description or (
        f"{built.architecture} fine-tuned ({cfg.mode}) on {source.root.name} "
        f"({len(samples)} images, {len({s.patient for s in samples})} patients); research use only."
    )
    return ModelConfig(
        name=cfg.name,
        version=cfg.version,
        architecture=built.architecture,
        class_names=source.class_names,
        arch_kwargs=built.arch_kwargs,
        preprocess=ctx.pre,
        temperature=float(val.temperature),
        confidence_threshold=cfg.confidence_threshold,
        cam_target_layer=default_cam_target(built.architecture, model),
        licence=licence,
        description=description,
        provenance=provenance,
        metrics=val.metrics,
        training_domain=dict(cfg.training_domain),
    )


def write_bundle(
    cfg: TrainConfig, run_dir: Path, model: Any, mc: ModelConfig, ood: Any
) -> tuple[Path, str]:
    from octviewer.core.model.bundle import save_bundle

    out = Path(cfg.output).expanduser() if cfg.output else run_dir / "model.safetensors"
    try:
        dtype = "float16" if cfg.fp16_weights else "float32"
        sha = save_bundle(out, model, mc, dtype=dtype, ood=ood)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"Cannot write the model bundle {out}: {exc}", path=out) from exc
    return out, sha


def write_run_outputs(run_dir: Path, metrics: dict[str, Any], unreadable: list[Sample]) -> None:
    """final_metrics.json, and unreadable.txt when files were skipped."""
    (run_dir / "final_metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    if unreadable:
        lines = sorted({str(s.path) for s in unreadable})
        (run_dir / "unreadable.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        log.warning(
            "%d unreadable image(s) were skipped (listed in unreadable.txt):\n  %s",
            len(lines),
            "\n  ".join(lines[:50]),
        )


def write_plots(
    ctx: RunContext,
    history: list[dict[str, Any]],
    val: Validation,
    test_out: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """The run's PNGs, from the validation (and test) scores in ``val.metrics``."""
    run_dir, names, metrics = ctx.run_dir, ctx.names, val.metrics
    labels, probs_cal, cal = val.labels, val.probs, val.calibration
    probs_raw = softmax(val.logits)  # before calibration
    try:
        from training.export import plots
    except ImportError as exc:  # matplotlib is an optional extra
        log.warning("No plots: %s (install octviewer[train])", exc)
        return
    try:
        if history:
            plots.learning_curves(history, run_dir / "learning_curves.png")
        plots.confusion(
            metrics["validation"]["confusion_matrix"],
            names,
            run_dir / "confusion_val.png",
            "Validation confusion matrix",
        )
        plots.roc(labels, probs_cal, names, run_dir / "roc_val.png", "ROC one-vs-rest (validation)")
        if "ece_before" in cal:
            plots.reliability(
                probs_raw,
                probs_cal,
                labels,
                run_dir / "reliability_val.png",
                (cal["ece_before"], cal["ece_after"]),
            )
        if test_out is not None:
            plots.confusion(
                metrics["test"]["confusion_matrix"],
                names,
                run_dir / "confusion_test.png",
                "Test confusion matrix",
            )
            plots.roc(
                test_out[0], test_out[1], names, run_dir / "roc_test.png", "ROC one-vs-rest (test)"
            )
    except (OSError, ValueError, RuntimeError) as exc:
        log.warning("Plotting failed: %s", exc)
