"""One training run end to end: data -> split -> train -> calibrate -> metrics -> bundle -> plots.

:func:`run_training` is the API the command line calls; tests call it directly. :func:`_run`
orchestrates the steps, each in its own module: :mod:`training.data.samples`,
:mod:`training.data.split`, :mod:`training.fit.plan`, :mod:`training.fit.loop`,
:mod:`training.evaluate.scoring`, :mod:`training.export.outputs`
(provenance stamp and run directory: :mod:`training.export.rundir`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.core.model.config import PreprocessConfig
from octviewer.errors import OCTViewerError, TrainingError
from training.config import TrainConfig
from training.context import Compute, RunContext, RunData
from training.data.dataset import DEFAULT_PATIENT_REGEX, describe, discover
from training.data.split import Split, choose_split, requested_fold
from training.export.rundir import attach_log, prepare_run_dir
from training.fit.plan import device_and_precision, use_channels_last

if TYPE_CHECKING:
    from training.fit.loop import FitResult
    from training.fit.plan import Plan

log = logging.getLogger(__name__)


__all__ = ["RunResult", "main_entry", "run_training"]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    bundle: Path | None  # None on ranks other than 0
    sha256: str | None
    metrics: dict[str, Any]
    unreadable: tuple[str, ...]


# --- the run ---------------------------------------------------------------------------------
def run_training(
    cfg: TrainConfig,
    *,
    argv: list[str] | None = None,
    epoch_callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train as ``cfg`` says and write the bundle. Raises TrainingError (or another
    OCTViewerError) for anything the user can fix."""
    import torch

    from training.fit.distributed import broadcast_object, init_distributed, shutdown

    t_start = time.perf_counter()
    dist = init_distributed()
    refusal = None
    if dist.is_main:
        try:
            prepare_run_dir(cfg)
        except TrainingError as exc:
            refusal = str(exc)
    refusal = broadcast_object(refusal, dist)  # every rank stops, none waits forever
    if refusal:
        shutdown(dist)
        raise TrainingError(str(refusal))
    run_dir = Path(cfg.run_dir).expanduser()
    handler = attach_log(run_dir) if dist.is_main else None
    if not dist.is_main:  # one console log per run, not one per GPU
        logging.getLogger().setLevel(logging.WARNING)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if dist.is_main:
            if cfg.resume and (run_dir / "config.json").is_file():
                old = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
                changed = {
                    k: (old.get(k), v)
                    for k, v in cfg.to_dict().items()
                    if old.get(k) != v and k not in ("resume", "overwrite")
                }
                if changed:
                    log.warning("Resuming with changed options: %s", changed)
            cfg.save(run_dir / "config.json")
        log.info("octviewer-train: %s", " ".join(argv) if argv else "(API call)")
        return _run(cfg, run_dir, dist, argv, epoch_callback, t_start)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        shutdown(dist)


def _run(
    cfg: TrainConfig,
    run_dir: Path,
    dist: Any,
    argv: list[str] | None,
    epoch_callback: Callable[[int, dict[str, Any]], None] | None,
    t_start: float,
) -> RunResult:
    """The steps of one run: samples, split, plan, loop, evaluate, OOD, provenance, outputs."""
    from training.data.samples import readable_samples, split_datasets
    from training.evaluate import scoring
    from training.export import outputs
    from training.fit.plan import plan_training
    from training.model.setup import build_model

    regex = cfg.patient_regex or DEFAULT_PATIENT_REGEX
    source = discover(
        cfg.data, class_names=cfg.classes, patient_regex=regex, outlier_label=cfg.outlier_label
    )
    names = source.class_names
    pre = PreprocessConfig(
        size=(cfg.input_size, cfg.input_size),
        interpolation=cfg.interpolation,
        normalization=cfg.normalization,
    )
    readable = readable_samples(cfg, source, pre, names)
    samples, unreadable = readable.samples, list(readable.unreadable)
    split = choose_split(cfg, samples, names, run_dir / "split.csv", dist.is_main)
    datasets = split_datasets(readable, split, pre)
    del readable  # the full decoded cache; each dataset keeps its own share
    _log_split(cfg, split, names)
    data = RunData(source, samples, split, regex)

    device, precision = device_and_precision(cfg, dist.local_rank)
    ctx = RunContext(cfg, names, pre, Compute(device, precision, dist), run_dir, argv, t_start)
    built = build_model(cfg, len(names), names)
    model = built.model
    _prepare_model(cfg, model)
    plan = plan_training(ctx, model, split, datasets)
    unreadable += plan.unreadable
    _log_training(ctx, built)
    t_train = time.perf_counter()
    result = _fit(ctx, plan, epoch_callback)
    facts = outputs.TrainingFacts(result, time.perf_counter() - t_train)
    unreadable += [split.train[i] for i in sorted(b for b in result.bad_indices if b >= 0)]
    unreadable += [split.val[-1 - b] for b in sorted(b for b in result.bad_indices if b < 0)]
    if not dist.is_main:
        return RunResult(run_dir, None, None, {}, ())

    val = scoring.calibrate_and_score(ctx, plan, model, result)
    test = scoring.score_test(ctx, data, model, val)
    unreadable += test.unreadable
    metrics = val.metrics
    ood_model = scoring.fit_ood(ctx, model, split, metrics)

    model.cpu().eval()
    provenance = outputs.training_provenance(ctx, built, data, test, facts, len(unreadable))
    mc = outputs.model_config(ctx, built, data, model, val, provenance)
    out, sha = outputs.write_bundle(cfg, run_dir, model, mc, ood_model)
    outputs.write_run_outputs(run_dir, metrics, unreadable)
    if cfg.plots:
        outputs.write_plots(ctx, result.history, val, test.out)
    log.info(
        "Bundle %s (sha256 %s); validation balanced accuracy %.4f; run took %.1f s",
        out,
        sha,
        metrics["validation"]["balanced_accuracy"],
        time.perf_counter() - t_start,
    )
    return RunResult(run_dir, out, sha, metrics, tuple(sorted({str(s.path) for s in unreadable})))


def _fit(
    ctx: RunContext,
    plan: Plan,
    epoch_callback: Callable[[int, dict[str, Any]], None] | None,
) -> FitResult:
    from training.fit import loop

    data = loop.FitData(
        plan.trainable,
        plan.fit_train,
        plan.fit_val,
        ctx.names,
        prepare_train=plan.prepare_train,
        prepare_eval=plan.prepare_eval,
    )
    return loop.fit(
        data,
        plan.loop_config,
        ctx.compute,
        ctx.run_dir,
        resume=ctx.cfg.resume,
        epoch_callback=epoch_callback,
    )


def _log_training(ctx: RunContext, built: Any) -> None:
    cfg = ctx.cfg
    log.info(
        "Training %s (%s, init: %s) on %s, %s, %d epochs, lr %.2e",
        built.architecture,
        cfg.mode,
        built.init_description,
        ctx.compute.device,
        ctx.compute.precision,
        cfg.epochs,
        cfg.base_lr,
    )


def _log_split(cfg: TrainConfig, split: Split, names: tuple[str, ...]) -> None:
    fold = requested_fold(cfg)
    log.info(
        "Split (seed %d%s): train %s; validation %s",
        cfg.effective_split_seed,
        f", fold {fold[0]} of {fold[1]}" if fold else "",
        describe(split.train, names),
        describe(split.val, names),
    )


def _prepare_model(cfg: TrainConfig, model: Any) -> None:
    """channels_last for CNNs and gradient checkpointing, when the whole network trains."""
    if cfg.mode == "full" and use_channels_last(model):
        import torch

        model.to(memory_format=torch.channels_last)
    if cfg.grad_checkpointing and cfg.mode == "full":
        if hasattr(model, "set_grad_checkpointing"):
            model.set_grad_checkpointing(True)
        else:
            log.warning("This architecture has no gradient checkpointing; option ignored")


def main_entry(cfg: TrainConfig, argv: list[str]) -> int:
    """Run and turn user errors into a message + exit code 2 (used by the CLI)."""
    try:
        res = run_training(cfg, argv=argv)
    except OCTViewerError as exc:
        log.error("%s", exc)
        sys.stderr.write(f"octviewer-train: error: {exc}\n")
        return 2
    if res.bundle is not None:
        v = res.metrics["validation"]
        sys.stdout.write(
            f"Model bundle: {res.bundle}\nValidation balanced accuracy {v['balanced_accuracy']:.4f}, "
            f"accuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}\nRun directory: {res.run_dir}\n"
        )
    return 0
