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

import csv
import json
import logging
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from octviewer.errors import TrainingError
from training.calibrate import softmax
from training.distributed import DistInfo, all_gather_objects
from training.metrics import classification_report

log = logging.getLogger(__name__)

Prepare = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
EvalPrepare = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LoopConfig:
    epochs: int
    lr_groups: list[dict[str, Any]]
    warmup_epochs: float
    min_lr_ratio: float
    label_smoothing: float
    class_weights: torch.Tensor | None
    sample_weights: torch.Tensor | None  # balanced sampler when set
    batch_size: int
    accum_steps: int = 1
    patience: int = 20
    clip_grad: float | None = None
    mixup: float = 0.0
    ema_decay: float | None = None
    precision: str = "fp32"  # fp32, bf16, fp16
    max_steps_per_epoch: int | None = None
    workers: int = 0
    seed: int = 0


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_score: float
    history: list[dict[str, Any]] = field(default_factory=list)
    bad_indices: set[int] = field(default_factory=set)
    stopped_early: bool = False


class _IndexSampler(torch.utils.data.Sampler[int]):
    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def __iter__(self):  # type: ignore[override]
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def seed_epoch(seed: int, epoch: int) -> torch.Generator:
    s = (seed * 100_003 + epoch * 7_919 + 17) % (2**31)
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)
    return torch.Generator().manual_seed(s)


def epoch_indices(
    n: int, g: torch.Generator, dist: DistInfo, sample_weights: torch.Tensor | None
) -> list[int]:
    """This rank's sample order for one epoch (shuffled or class-balanced, then sharded)."""
    if sample_weights is not None:
        order = torch.multinomial(sample_weights, n, replacement=True, generator=g)
    else:
        order = torch.randperm(n, generator=g)
    idx = order.tolist()
    if dist.enabled:  # same as DistributedSampler: pad to a multiple of the world, then stride
        pad = (-len(idx)) % dist.world_size
        idx = (idx + idx[:pad])[dist.rank :: dist.world_size]
    return idx


def make_loader(
    dataset: torch.utils.data.Dataset,
    indices: list[int],
    batch_size: int,
    workers: int,
    *,
    drop_last: bool,
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=_IndexSampler(indices),
        num_workers=workers,
        drop_last=drop_last and len(indices) > batch_size,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None
) -> torch.Tensor:
    """Cross-entropy against soft targets; class weights scale each class's term and the mean
    is normalised by the weight mass (as ``F.cross_entropy(weight=...)`` does)."""
    logp = F.log_softmax(logits.float(), dim=1)
    if class_weights is None:
        return -(targets * logp).sum(dim=1).mean()
    w = class_weights.to(logits.device)
    per = -(targets * logp * w).sum(dim=1)
    return per.sum() / (targets * w).sum().clamp_min(1e-12)


def lr_lambda_factory(
    total_steps: int, warmup_steps: int, min_ratio: float
) -> Callable[[int], float]:
    def fn(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(max(progress, 0.0), 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return fn


def autocast_ctx(device: torch.device, precision: str):
    """Mixed precision: fp16/bf16 on a GPU; bf16 also on a CPU (oneDNN, about 2x with AVX512-BF16)."""
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        return nullcontext()
    if device.type == "cpu":
        if precision != "bf16":
            return nullcontext()
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    prepare: EvalPrepare,
    device: torch.device,
    dist: DistInfo,
    *,
    batch_size: int,
    workers: int,
    precision: str = "fp32",
    desc: str = "eval",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Logits for the whole dataset (gathered across ranks): (logits, labels, indices, bad)."""
    from tqdm.auto import tqdm

    n = len(dataset)
    mine = list(range(dist.rank, n, dist.world_size))
    loader = make_loader(dataset, mine, batch_size, workers, drop_last=False)
    was_training = model.training
    model.eval()
    logits, labels, indices, bad = [], [], [], []
    for x, y, idx, ok in tqdm(loader, desc=desc, leave=False, disable=not dist.is_main):
        bad.extend(int(i) for i in idx[~ok])
        if not ok.any():
            continue
        x, y, idx = x[ok], y[ok], idx[ok]
        with autocast_ctx(device, precision):
            out = model(prepare(x.to(device, non_blocking=True)))
        logits.append(out.float().cpu().numpy())
        labels.append(y.numpy())
        indices.append(idx.numpy())
    model.train(was_training)
    k = _num_outputs(model)
    part = (
        np.concatenate(logits) if logits else np.zeros((0, k), np.float32),
        np.concatenate(labels) if labels else np.zeros(0, np.int64),
        np.concatenate(indices) if indices else np.zeros(0, np.int64),
        bad,
    )
    parts = all_gather_objects(part, dist)
    lg = np.concatenate([p[0] for p in parts])  # type: ignore[index]
    lb = np.concatenate([p[1] for p in parts])  # type: ignore[index]
    ix = np.concatenate([p[2] for p in parts])  # type: ignore[index]
    all_bad = sorted({b for p in parts for b in p[3]})  # type: ignore[index]
    order = np.argsort(ix, kind="stable")
    return lg[order], lb[order], ix[order], all_bad


def _num_outputs(model: torch.nn.Module) -> int:
    m = model.module if hasattr(model, "module") else model
    head = m.get_classifier() if hasattr(m, "get_classifier") else m
    return int(getattr(head, "out_features", 0))


def _write_history(history: list[dict[str, Any]], run_dir: Path) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    keys = [k for k in history[0] if not isinstance(history[0][k], (dict, list))]
    with (run_dir / "metrics.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)


def _freeze_frozen_norms(model: torch.nn.Module) -> None:
    """Layers whose parameters are all frozen (linear probe) keep eval mode: no BatchNorm drift."""
    for m in model.modules():
        own = list(m.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            m.eval()


def _state_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # contiguous(): a channels_last model's conv weights must be saved in the standard layout
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


@dataclass
class _Trainer:
    """What one fit trains with: the model (and its DDP wrapper), optimiser, schedule, scaler, EMA."""

    model: torch.nn.Module
    ddp_model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Any
    ema: Any
    micro: int  # micro-batches per epoch

    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model


@dataclass
class _Progress:
    """What a checkpoint restores: epoch, best score so far, history, skipped images."""

    best_state: dict[str, torch.Tensor]
    start_epoch: int = 0
    best_score: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    bad_indices: set[int] = field(default_factory=set)


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

    tr = _setup(model, len(train_set), lc, device, dist)
    pg = _Progress(best_state=_state_cpu(model))
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume:
        _restore(tr, pg, run_dir, last_path, best_path)

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
            pg.best_state = _state_cpu(tr.eval_model())
        else:
            pg.bad_epochs += 1
        if dist.is_main:
            _checkpoint(tr, pg, epoch, improved, run_dir, last_path, best_path)
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


def _setup(
    model: torch.nn.Module, n_train: int, lc: LoopConfig, device: torch.device, dist: DistInfo
) -> _Trainer:
    model.to(device)
    ddp_model: torch.nn.Module = model
    if dist.enabled:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = torch.optim.AdamW(lc.lr_groups)
    per_rank = math.ceil(n_train / dist.world_size)
    micro = per_rank // lc.batch_size if per_rank > lc.batch_size else 1
    if lc.max_steps_per_epoch:
        micro = min(micro, lc.max_steps_per_epoch * lc.accum_steps)
    steps_per_epoch = max(1, math.ceil(micro / lc.accum_steps))
    total = steps_per_epoch * lc.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda_factory(total, round(lc.warmup_epochs * steps_per_epoch), lc.min_lr_ratio)
    )
    use_scaler = device.type == "cuda" and lc.precision == "fp16"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    ema = None
    if lc.ema_decay:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=lc.ema_decay)
    return _Trainer(model, ddp_model, opt, sched, scaler, ema, micro)


def _restore(tr: _Trainer, pg: _Progress, run_dir: Path, last_path: Path, best_path: Path) -> None:
    """Continue from ``last.pt`` (and ``best.pt``): weights, optimiser, schedule, progress."""
    if not last_path.is_file():
        raise TrainingError(
            f"Nothing to resume in {run_dir}: there is no last.pt (the run never finished an "
            "epoch). Start again with --overwrite.",
            path=run_dir,
        )
    ck = torch.load(last_path, map_location="cpu", weights_only=True)
    tr.model.load_state_dict(ck["model"])
    tr.opt.load_state_dict(ck["optimizer"])
    tr.sched.load_state_dict(ck["scheduler"])
    tr.scaler.load_state_dict(ck["scaler"])
    if tr.ema is not None and ck.get("ema") is not None:
        tr.ema.load_state_dict(ck["ema"])
    pg.start_epoch = int(ck["epoch"]) + 1
    pg.best_score, pg.best_epoch, pg.bad_epochs = (
        float(ck["best_score"]),
        int(ck["best_epoch"]),
        int(ck["bad_epochs"]),
    )
    pg.history = list(ck["history"])
    pg.bad_indices = set(ck.get("bad_indices", []))
    if best_path.is_file():
        pg.best_state = torch.load(best_path, map_location="cpu", weights_only=True)
    log.info(
        "Resumed from %s at epoch %d (best %.4f at epoch %d)",
        last_path,
        pg.start_epoch + 1,
        pg.best_score,
        pg.best_epoch + 1,
    )


def _train_epoch(
    tr: _Trainer,
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
    tr: _Trainer,
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
    targets = F.one_hot(y, k).float() * (1 - lc.label_smoothing) + lc.label_smoothing / k
    if lc.mixup > 0:
        from training.augment import mixup

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


def _optimizer_step(tr: _Trainer, lc: LoopConfig) -> None:
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
    tr: _Trainer,
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
    tr: _Trainer,
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


def _checkpoint(
    tr: _Trainer,
    pg: _Progress,
    epoch: int,
    improved: bool,
    run_dir: Path,
    last_path: Path,
    best_path: Path,
) -> None:
    """best.pt when improved; last.pt (written atomically) and the history every epoch."""
    if improved:
        torch.save(pg.best_state, best_path)
    ck = {
        "model": _state_cpu(tr.model),
        "optimizer": tr.opt.state_dict(),
        "scheduler": tr.sched.state_dict(),
        "scaler": tr.scaler.state_dict(),
        "ema": _state_cpu(tr.ema) if tr.ema is not None else None,
        "epoch": epoch,
        "best_score": pg.best_score,
        "best_epoch": pg.best_epoch,
        "bad_epochs": pg.bad_epochs,
        "history": pg.history,
        "bad_indices": sorted(pg.bad_indices),
        "torch_rng": torch.get_rng_state(),
    }
    tmp = last_path.with_suffix(".pt.partial")
    torch.save(ck, tmp)
    tmp.replace(last_path)
    _write_history(pg.history, run_dir)


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
