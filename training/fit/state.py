"""What one fit trains with (model, optimiser, schedule, scaler, EMA) and what its checkpoint
``last.pt`` / ``best.pt`` holds, written every epoch and restored on ``--resume``."""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from octviewer.errors import TrainingError
from training.fit.batches import lr_lambda_factory
from training.fit.distributed import DistInfo

log = logging.getLogger(__name__)

#: The checkpoints in the run directory: the latest epoch (resume) and the best one.
LAST, BEST = "last.pt", "best.pt"


def write_history(history: list[dict[str, Any]], run_dir: Path) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    keys = [k for k in history[0] if not isinstance(history[0][k], (dict, list))]
    with (run_dir / "metrics.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)


def state_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # contiguous(): a channels_last model's conv weights must be saved in the standard layout
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


@dataclass
class LoopConfig:
    """How one fit runs (what :func:`training.fit.loop.fit` reads); beside :class:`Trainer`, which
    :func:`setup_trainer` builds from it."""

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
class Trainer:
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
class Progress:
    """What a checkpoint restores: epoch, best score so far, history, skipped images."""

    best_state: dict[str, torch.Tensor]
    start_epoch: int = 0
    best_score: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    bad_indices: set[int] = field(default_factory=set)


def setup_trainer(
    model: torch.nn.Module, n_train: int, lc: LoopConfig, device: torch.device, dist: DistInfo
) -> Trainer:
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
    return Trainer(model, ddp_model, opt, sched, scaler, ema, micro)


def restore(tr: Trainer, pg: Progress, run_dir: Path) -> None:
    """Continue from ``last.pt`` (and ``best.pt``): weights, optimiser, schedule, progress."""
    last_path, best_path = run_dir / LAST, run_dir / BEST
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


def save_checkpoint(tr: Trainer, pg: Progress, epoch: int, improved: bool, run_dir: Path) -> None:
    """best.pt when improved; last.pt (written atomically) and the history every epoch."""
    last_path, best_path = run_dir / LAST, run_dir / BEST
    if improved:
        torch.save(pg.best_state, best_path)
    ck = {
        "model": state_cpu(tr.model),
        "optimizer": tr.opt.state_dict(),
        "scheduler": tr.sched.state_dict(),
        "scaler": tr.scaler.state_dict(),
        "ema": state_cpu(tr.ema) if tr.ema is not None else None,
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
    write_history(pg.history, run_dir)
