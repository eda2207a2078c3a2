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
from training.evaluate.metrics import classification_report
from training.fit.batches import (
    EvalPrepare,
    Prepare,
    autocast_ctx,
    epoch_indices,
    make_loader,
    predict,
    seed_epoch,
    soft_cross_entropy,
)
from training.fit.distributed import DistInfo, all_gather_objects
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


def fit(
    model: torch.nn.Module,
    train_set: torch.utils.data.Dataset,
    val_set: torch.utils.data.Dataset,
    class_names: tuple[str, ...],
    lc: LoopConfig,
    *,
    prepare_train: Prepare,
    prepare_eval: EvalPrepare,
    device: torch.device,
    dist: DistInfo,
    run_dir: Path,
    resume: bool = False,
    epoch_callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` in place; returns the best (by validation balanced accuracy) weights."""
    from tqdm.auto import tqdm

    tr = setup_trainer(model, len(train_set), lc, device, dist)
    pg = Progress(best_state=state_cpu(model))
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume:
        restore(tr, pg, run_dir, last_path, best_path)

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
        t0 = time.perf_counter()
        loss_sum, seen = _train_epoch(
            tr, train_set, epoch, lc, prepare_train, len(class_names), device, dist, pg.bad_indices
        )
        train_time = time.perf_counter() - t0
        rep, val_loss = _validate(
            tr, val_set, class_names, lc, prepare_eval, device, dist, pg.bad_indices
        )
        tr_loss = loss_sum / max(seen, 1)
        if dist.enabled:
            tr_loss = float(np.mean(all_gather_objects(tr_loss, dist)))  # type: ignore[arg-type]
        row = _history_row(epoch, tr_loss, val_loss, rep, tr, train_time, t0, seen, dist)
        pg.history.append(row)
        score = row["val_balanced_accuracy"]
        improved = score > pg.best_score + 1e-9
        if improved:
            pg.best_score, pg.best_epoch, pg.bad_epochs = score, epoch, 0
            pg.best_state = state_cpu(tr.eval_model())
        else:
            pg.bad_epochs += 1
        if dist.is_main:
            save_checkpoint(tr, pg, epoch, improved, run_dir, last_path, best_path)
        _log_epoch(epoch, lc, tr_loss, val_loss, score, row, improved)
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


def _train_epoch(
    tr: Trainer,
    train_set: torch.utils.data.Dataset,
    epoch: int,
    lc: LoopConfig,
    prepare_train: Prepare,
    k: int,
    device: torch.device,
    dist: DistInfo,
    bad_indices: set[int],
) -> tuple[float, int]:
    """One epoch of optimiser steps; returns the summed loss and the images it saw."""
    from tqdm.auto import tqdm

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
        bad_indices.update(int(i) for i in bidx[~ok])
        x, y = x[ok], y[ok]
        boundary = (micro_done + 1) % lc.accum_steps == 0 or micro_done + 1 == tr.micro
        if x.shape[0] > 0:
            loss = _forward_backward(
                tr, x, y, g, boundary, epoch, lc, prepare_train, k, device, dist
            )
            loss_sum += loss * x.shape[0]
            seen += x.shape[0]
        if boundary:
            _optimizer_step(tr, lc)
        steps_bar.update(1)
        steps_bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.4f}")
    steps_bar.close()
    return loss_sum, seen


def _forward_backward(
    tr: Trainer,
    x: torch.Tensor,
    y: torch.Tensor,
    g: torch.Generator,
    boundary: bool,
    epoch: int,
    lc: LoopConfig,
    prepare_train: Prepare,
    k: int,
    device: torch.device,
    dist: DistInfo,
) -> float:
    """Loss and gradients of one micro-batch (DDP syncs only on an accumulation boundary)."""
    x = prepare_train(x.to(device, non_blocking=True), g)
    y = y.to(device)
    targets = F.one_hot(y.clamp_min(0), k).float() * (1 - lc.label_smoothing)
    targets += lc.label_smoothing / k
    targets[y < 0] = 1.0 / k  # outlier exposure: a finding outside the classes -> uniform
    if lc.mixup > 0:
        from training.data.augment import mixup

        x, targets = mixup(x, targets, lc.mixup, g)
    sync = nullcontext() if (boundary or not dist.enabled) else tr.ddp_model.no_sync()
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


def _validate(
    tr: Trainer,
    val_set: torch.utils.data.Dataset,
    class_names: tuple[str, ...],
    lc: LoopConfig,
    prepare_eval: EvalPrepare,
    device: torch.device,
    dist: DistInfo,
    bad_indices: set[int],
) -> tuple[dict[str, Any], float]:
    """The validation report and loss of the model being evaluated (EMA when on)."""
    logits, labels, _, vbad = predict(
        tr.eval_model(),
        val_set,
        prepare_eval,
        device,
        dist,
        batch_size=lc.batch_size,
        workers=lc.workers,
        precision=lc.precision,
        desc="validate",
    )
    bad_indices.update(-1 - b for b in vbad)  # negative = validation index
    if labels.size == 0:
        raise TrainingError("No validation image could be read: check the dataset.")
    rep = classification_report(labels, softmax(logits), class_names)
    val_loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels).long()))
    return rep, val_loss


def _history_row(
    epoch: int,
    tr_loss: float,
    val_loss: float,
    rep: dict[str, Any],
    tr: Trainer,
    train_time: float,
    t0: float,
    seen: int,
    dist: DistInfo,
) -> dict[str, Any]:
    return {
        "epoch": epoch + 1,
        "train_loss": tr_loss,
        "val_loss": val_loss,
        "val_accuracy": rep["accuracy"],
        "val_balanced_accuracy": rep["balanced_accuracy"],
        "val_macro_f1": rep["macro_f1"],
        "val_mcc": rep["mcc"],
        "val_auroc_macro": rep["auroc_macro_ovr"],
        "lr": tr.opt.param_groups[-1]["lr"],
        "train_seconds": train_time,
        "epoch_seconds": time.perf_counter() - t0,
        "train_images_per_s": seen * dist.world_size / train_time if train_time > 0 else None,
        "val_confusion_matrix": rep["confusion_matrix"],
    }


def _log_epoch(
    epoch: int,
    lc: LoopConfig,
    tr_loss: float,
    val_loss: float,
    score: float,
    row: dict[str, Any],
    improved: bool,
) -> None:
    log.info(
        "epoch %d/%d  train loss %.4f  val loss %.4f  val bal.acc %.4f  (%.1f s)%s",
        epoch + 1,
        lc.epochs,
        tr_loss,
        val_loss,
        score,
        row["epoch_seconds"],
        "  *best*" if improved else "",
    )
