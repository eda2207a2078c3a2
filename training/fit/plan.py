"""What the loop trains and how: device and precision, class balance, the trainable module and
its inputs (whole network on images, or only the head on cached features), the LoopConfig."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from octviewer.errors import TrainingError
from training.data.dataset import OUTLIER, FrameDataset, Sample

if TYPE_CHECKING:
    import torch

    from training.config import TrainConfig
    from training.context import RunContext
    from training.data.split import Split
    from training.fit import batches
    from training.fit.state import LoopConfig

log = logging.getLogger(__name__)


def device_and_precision(cfg: TrainConfig, local_rank: int) -> tuple[Any, str]:
    import torch

    if cfg.device == "auto":
        dev = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(cfg.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError("--device cuda was asked for but no CUDA GPU is available.")
    precision = cfg.precision
    if precision == "auto":
        precision = (
            ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if dev.type == "cuda" else "fp32"
        )
    if dev.type == "cpu" and precision == "fp16":
        log.warning("fp16 needs a GPU; the CPU trains in fp32 (--precision bf16 works on a CPU)")
        precision = "fp32"
    elif dev.type not in ("cuda", "cpu") and precision != "fp32":
        log.warning("Mixed precision %s is not used on %s; training in fp32", precision, dev.type)
        precision = "fp32"
    if dev.type == "cpu" and precision == "bf16" and not cpu_has_fast_bf16():
        log.warning(
            "This CPU has no native bf16 (AVX512-BF16/AMX): bf16 training will be slow; "
            "consider --precision fp32"
        )
    return dev, precision


def cpu_has_fast_bf16() -> bool:
    import torch

    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def use_channels_last(model: Any) -> bool:
    """CNNs train faster in channels_last on oneDNN and tensor cores (2.4x with bf16 on a CPU)."""
    import torch

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return len(convs) > 1  # a ViT has one conv (the patch embedding): nothing to gain


def class_weights(train: tuple[Sample, ...], k: int) -> tuple[list[float], list[int]]:
    counts = Counter(s.label for s in train)
    n = [counts.get(i, 0) for i in range(k)]
    total = sum(n)
    return [total / (k * c) if c else 0.0 for c in n], n


@dataclass(frozen=True)
class _Inputs:
    trainable: Any  # torch.nn.Module: the whole model, or its head on cached features
    fit_train: Any
    fit_val: Any
    prepare_train: batches.Prepare
    prepare_eval: batches.EvalPrepare
    batch_size: int
    workers: int
    unreadable: list[Sample]  # training images the feature pass could not read


@dataclass(frozen=True)
class Plan(_Inputs):
    """The loop's inputs and its configuration."""

    loop_config: LoopConfig


def plan_training(
    ctx: RunContext, model: Any, split: Split, datasets: tuple[FrameDataset, FrameDataset]
) -> Plan:
    from training.fit.state import LoopConfig

    cfg = ctx.cfg
    cw, sw = _balance(cfg, split.train, ctx.names)
    inputs = _fit_inputs(ctx, model, split, datasets)
    lc = LoopConfig(
        epochs=cfg.epochs,
        lr_groups=_lr_groups(cfg, inputs.trainable),
        warmup_epochs=cfg.warmup,
        min_lr_ratio=cfg.min_lr_ratio,
        label_smoothing=cfg.label_smoothing,
        class_weights=cw,
        sample_weights=sw,
        batch_size=inputs.batch_size,
        accum_steps=cfg.accum_steps,
        patience=cfg.patience,
        clip_grad=cfg.clip_grad,
        mixup=cfg.mixup,
        ema_decay=cfg.ema_decay if cfg.ema else None,
        precision=ctx.compute.precision,
        max_steps_per_epoch=cfg.max_steps_per_epoch,
        workers=inputs.workers,
        seed=cfg.seed,
    )
    return Plan(**vars(inputs), loop_config=lc)


def _balance(
    cfg: TrainConfig, train: tuple[Sample, ...], names: tuple[str, ...]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Class weights for the loss or sample weights for the sampler, as ``cfg.balance`` says."""
    import torch

    cw, train_counts = class_weights(train, len(names))
    if 0 in train_counts:
        raise TrainingError(
            f"The training split has no image of {', '.join(n for n, c in zip(names, train_counts, strict=True) if not c)}: "
            "add images from more patients."
        )
    loss_weights = torch.tensor(cw) if cfg.balance == "loss" else None
    n_outliers = sum(1 for s in train if s.label == OUTLIER)
    sample_weights = (
        torch.tensor(
            [1.0 / (n_outliers if s.label == OUTLIER else train_counts[s.label]) for s in train],
            dtype=torch.double,
        )
        if cfg.balance == "sampler"
        else None
    )
    return loss_weights, sample_weights


def _fit_inputs(
    ctx: RunContext, model: Any, split: Split, datasets: tuple[FrameDataset, FrameDataset]
) -> _Inputs:
    """The trainable module, what it sees, and how to turn a batch into its input."""
    from training.data.augment import AugmentConfig, augment_batch, eval_batch

    cfg, pre, device = ctx.cfg, ctx.pre, ctx.compute.device
    train_ds, val_ds = datasets
    workers = 0 if train_ds.cache is not None else cfg.workers
    aug = AugmentConfig(fill=cfg.fill, extra=cfg.augment_extra)

    def prep_eval(x: torch.Tensor) -> torch.Tensor:
        return eval_batch(x, pre)

    def prep_train(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return augment_batch(x, pre, aug, g) if cfg.augment else eval_batch(x, pre)

    if cfg.mode != "cached-features":
        if cfg.mode == "linear-probe":
            from training.model.setup import freeze_backbone

            freeze_backbone(model)
        return _Inputs(model, train_ds, val_ds, prep_train, prep_eval, cfg.batch_size, workers, [])
    if ctx.compute.dist.enabled:
        raise TrainingError(
            "--mode cached-features runs in one process: start it without torchrun."
        )
    from training.fit.batches import Inference
    from training.model.features import cached_features

    model.to(device)
    feats = cached_features(
        ctx.run_dir / "features.pt",
        model,
        {"train": train_ds, "val": val_ds},
        prep_eval,
        Inference(device, cfg.batch_size, workers, ctx.compute.precision),
    )
    bad = [split.train[i] for i in range(len(split.train)) if not bool(feats["train"].ok[i])]
    return _Inputs(
        model.get_classifier(),
        feats["train"],
        feats["val"],
        lambda x, g: x,
        lambda x: x,
        max(cfg.batch_size, 256),
        0,
        bad,
    )


def _lr_groups(cfg: TrainConfig, trainable: Any) -> list[dict[str, Any]]:
    if cfg.mode == "full":
        from training.model.setup import param_groups

        return param_groups(trainable, cfg)
    return [
        {
            "params": [p for p in trainable.parameters() if p.requires_grad],
            "weight_decay": cfg.weight_decay,
            "lr": cfg.base_lr,
        }
    ]
