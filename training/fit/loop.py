"""The train/validate loop: AdamW, warm-up + cosine, label smoothing, class weights or a
balanced sampler, mixup, EMA, AMP, gradient accumulation, DDP, early stopping and resume.

The loop is generic over what it trains: a whole network on image batches (``full``,
``linear-probe``) or only the classifier on cached features (``cached-features``). The caller
passes ``prepare_train`` / ``prepare_eval`` that turn a loaded batch into the model input.

Reproducibility: every epoch re-seeds torch/NumPy/random from ``(seed, epoch)`` and draws its
order and augmentations from its own generator, so a run resumed from ``last.pt`` repeats the
remaining epochs exactly as an uninterrupted run would (on the same device).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from octviewer.core.calibration import softmax
from octviewer.errors import TrainingError
from training.context import Compute
from training.evaluate.metrics import classification_report
from training.fit.batches import (
    EvalPrepare,
    Inference,
    Prepare,
    autocast_ctx,
    epoch_indices,
    make_loader,
    predict,
    seed_epoch,
    soft_cross_entropy,
)
from training.fit.distributed import all_gather_objects
from training.fit.state import (
    LoopConfig,
    Progress,
    Trainer,
    restore,
    save_checkpoint,
    setup_trainer,
    state_cpu,
)

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_score: float
    history: list[dict[str, Any]] = field(default_factory=list)
    bad_indices: set[int] = field(default_factory=set)
    stopped_early: bool = False


def _freeze_frozen_norms(model: torch.nn.Module) -> None:
    """Layers whose parameters are all frozen (linear probe) keep eval mode: no BatchNorm drift."""
    for m in model.modules():
        own = list(m.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            m.eval()


@dataclass(frozen=True)
class FitData:
    """What the loop trains: the module, its two datasets, and how a loaded batch becomes its
    input (augmented for training, plain for validation)."""

    model: torch.nn.Module
    train_set: torch.utils.data.Dataset
    val_set: torch.utils.data.Dataset
    class_names: tuple[str, ...]
    prepare_train: Prepare
    prepare_eval: EvalPrepare


@dataclass(frozen=True)
class _Fit:
    """One fit under way: what it trains with, its progress, its data, configuration, compute."""

    tr: Trainer
    pg: Progress
    data: FitData
    lc: LoopConfig
    compute: Compute


@dataclass(frozen=True)
class _EpochStats:
    tr_loss: float
    val_loss: float
    seen: int  # training images this rank saw
    train_time: float  # seconds of optimiser steps
    t0: float  # time.perf_counter() when the epoch began


def fit(
    data: FitData,
    lc: LoopConfig,
    compute: Compute,
    run_dir: Path,
    *,
    resume: bool = False,
    epoch_callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``data.model`` in place; returns the best (by validation balanced accuracy)
    weights. ``run_dir`` receives last.pt and best.pt; ``resume`` continues from them."""
    from tqdm.auto import tqdm

    dist = compute.dist
    tr = setup_trainer(data.model, len(data.train_set), lc, compute.device, dist)
    pg = Progress(best_state=state_cpu(data.model))
    if resume:
        restore(tr, pg, run_dir)
    f = _Fit(tr, pg, data, lc, compute)

    stopped_early = False
    epochs_bar = tqdm(
        range(pg.start_epoch, lc.epochs),
        desc="epochs",
        unit="epoch",
        disable=not dist.is_main,
        initial=pg.start_epoch,
        total=lc.epochs,
    )
    for epoch in epochs_bar:
        if pg.bad_epochs >= lc.patience:
            stopped_early = True
            break
        row = _epoch(f, epoch)
        pg.history.append(row)
        score = row["val_balanced_accuracy"]
        improved = score > pg.best_score + 1e-9
        if improved:
            pg.best_score, pg.best_epoch, pg.bad_epochs = score, epoch, 0
            pg.best_state = state_cpu(tr.eval_model())
        else:
            pg.bad_epochs += 1
        if dist.is_main:
            save_checkpoint(tr, pg, epoch, improved, run_dir)
        _log_epoch(epoch, lc, row, improved)
        epochs_bar.set_postfix(val_bacc=f"{score:.3f}", best=f"{pg.best_score:.3f}")
        if epoch_callback is not None:
            epoch_callback(epoch, row)
        if pg.bad_epochs >= lc.patience and epoch + 1 < lc.epochs:
            log.info(
                "Early stopping: no better validation balanced accuracy for %d epochs",
                pg.bad_epochs,
            )
            stopped_early = True
            break
    epochs_bar.close()
    # every rank saw the same gathered validation metrics, so all hold the same best_state
    return FitResult(
        pg.best_state, pg.best_epoch, pg.best_score, pg.history, pg.bad_indices, stopped_early
    )


def _epoch(f: _Fit, epoch: int) -> dict[str, Any]:
    """Train one epoch, validate, and return its history row."""
    t0 = time.perf_counter()
    loss_sum, seen = _train_epoch(f, epoch)
    train_time = time.perf_counter() - t0
    rep, val_loss = _validate(f)
    tr_loss = loss_sum / max(seen, 1)
    if f.compute.dist.enabled:
        tr_loss = float(np.mean(all_gather_objects(tr_loss, f.compute.dist)))  # type: ignore[arg-type]
    return _history_row(f, epoch, _EpochStats(tr_loss, val_loss, seen, train_time, t0), rep)


def _train_epoch(f: _Fit, epoch: int) -> tuple[float, int]:
    """One epoch of optimiser steps; returns the summed loss and the images it saw."""
    from tqdm.auto import tqdm

    tr, lc, dist, train_set = f.tr, f.lc, f.compute.dist, f.data.train_set
    g = seed_epoch(lc.seed, epoch)
    idx = epoch_indices(len(train_set), g, dist, lc.sample_weights)
    loader = make_loader(train_set, idx, lc.batch_size, lc.workers, drop_last=True)
    tr.model.train()
    _freeze_frozen_norms(tr.model)
    tr.opt.zero_grad(set_to_none=True)
    loss_sum, seen = 0.0, 0
    steps_bar = tqdm(
        total=tr.micro,
        desc=f"epoch {epoch + 1}",
        unit="batch",
        leave=False,
        disable=not dist.is_main,
    )
    for micro_done, (x, y, bidx, ok) in enumerate(loader):
        if micro_done >= tr.micro:
            break
        f.pg.bad_indices.update(int(i) for i in bidx[~ok])
        x, y = x[ok], y[ok]
        boundary = (micro_done + 1) % lc.accum_steps == 0 or micro_done + 1 == tr.micro
        if x.shape[0] > 0:
            loss = _forward_backward(f, x, y, g, boundary, epoch)
            loss_sum += loss * x.shape[0]
            seen += x.shape[0]
        if boundary:
            _optimizer_step(tr, lc)
        steps_bar.update(1)
        steps_bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.4f}")
    steps_bar.close()
    return loss_sum, seen


def _forward_backward(
    f: _Fit, x: torch.Tensor, y: torch.Tensor, g: torch.Generator, boundary: bool, epoch: int
) -> float:
    """Loss and gradients of one micro-batch (DDP syncs only on an accumulation boundary)."""
    tr, lc, device = f.tr, f.lc, f.compute.device
    k = len(f.data.class_names)
    x = f.data.prepare_train(x.to(device, non_blocking=True), g)
    y = y.to(device)
    targets = F.one_hot(y.clamp_min(0), k).float() * (1 - lc.label_smoothing)
    targets += lc.label_smoothing / k
    targets[y < 0] = 1.0 / k  # outlier exposure: a finding outside the classes -> uniform
    if lc.mixup > 0:
        from training.data.augment import mixup

        x, targets = mixup(x, targets, lc.mixup, g)
    sync = nullcontext() if (boundary or not f.compute.dist.enabled) else tr.ddp_model.no_sync()
    with sync:
        with autocast_ctx(device, lc.precision):
            logits = tr.ddp_model(x)
        loss = soft_cross_entropy(logits, targets, lc.class_weights)
        tr.scaler.scale(loss / lc.accum_steps).backward()
    if not torch.isfinite(loss):
        raise TrainingError(
            f"The training loss became {loss.item()} at epoch {epoch + 1}: lower --lr "
            "or use --precision fp32/bf16."
        )
    return float(loss.detach())


def _optimizer_step(tr: Trainer, lc: LoopConfig) -> None:
    if lc.clip_grad:
        tr.scaler.unscale_(tr.opt)
        torch.nn.utils.clip_grad_norm_(tr.model.parameters(), lc.clip_grad)
    tr.scaler.step(tr.opt)
    tr.scaler.update()
    tr.opt.zero_grad(set_to_none=True)
    tr.sched.step()
    if tr.ema is not None:
        tr.ema.update(tr.model)


def _validate(f: _Fit) -> tuple[dict[str, Any], float]:
    """The validation report and loss of the model being evaluated (EMA when on)."""
    lc = f.lc
    logits, labels, _, vbad = predict(
        f.tr.eval_model(),
        f.data.val_set,
        f.data.prepare_eval,
        Inference(f.compute.device, lc.batch_size, lc.workers, lc.precision),
        f.compute.dist,
        desc="validate",
    )
    f.pg.bad_indices.update(-1 - b for b in vbad)  # negative = validation index
    if labels.size == 0:
        raise TrainingError("No validation image could be read: check the dataset.")
    rep = classification_report(labels, softmax(logits), f.data.class_names)
    val_loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels).long()))
    return rep, val_loss


def _history_row(f: _Fit, epoch: int, st: _EpochStats, rep: dict[str, Any]) -> dict[str, Any]:
    world = f.compute.dist.world_size
    return {
        "epoch": epoch + 1,
        "train_loss": st.tr_loss,
        "val_loss": st.val_loss,
        "val_accuracy": rep["accuracy"],
        "val_balanced_accuracy": rep["balanced_accuracy"],
        "val_macro_f1": rep["macro_f1"],
        "val_mcc": rep["mcc"],
        "val_auroc_macro": rep["auroc_macro_ovr"],
        "lr": f.tr.opt.param_groups[-1]["lr"],
        "train_seconds": st.train_time,
        "epoch_seconds": time.perf_counter() - st.t0,
        "train_images_per_s": st.seen * world / st.train_time if st.train_time > 0 else None,
        "val_confusion_matrix": rep["confusion_matrix"],
    }


def _log_epoch(epoch: int, lc: LoopConfig, row: dict[str, Any], improved: bool) -> None:
    log.info(
        "epoch %d/%d  train loss %.4f  val loss %.4f  val bal.acc %.4f  (%.1f s)%s",
        epoch + 1,
        lc.epochs,
        row["train_loss"],
        row["val_loss"],
        row["val_balanced_accuracy"],
        row["epoch_seconds"],
        "  *best*" if improved else "",
    )
