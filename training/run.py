"""One training run end to end: data -> split -> train -> calibrate -> metrics -> bundle -> plots.

:func:`run_training` is the API the command line calls; tests call it directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.core.model.config import ModelConfig, PreprocessConfig
from octviewer.errors import OCTViewerError, TrainingError
from training.config import TrainConfig
from training.data import (
    DEFAULT_PATIENT_REGEX,
    FrameDataset,
    Sample,
    build_cache,
    cache_bytes,
    describe,
    discover,
    discover_test,
)
from training.rundir import (  # RUN_MARKERS, git_commit, prepare_run_dir: re-exported
    RUN_MARKERS,
    attach_log,
    git_commit,
    prepare_run_dir,
    provenance_stamp,
)
from training.split import load_split, patient_fold, patient_split, save_split

log = logging.getLogger(__name__)

_attach_log = attach_log  # the old private name

__all__ = [
    "RUN_MARKERS",
    "RunResult",
    "git_commit",
    "main_entry",
    "prepare_run_dir",
    "run_training",
]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    bundle: Path | None  # None on ranks other than 0
    sha256: str | None
    metrics: dict[str, Any]
    unreadable: tuple[str, ...]


# --- helpers ---------------------------------------------------------------------------------
def _device_and_precision(cfg: TrainConfig, local_rank: int) -> tuple[Any, str]:
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
    if dev.type == "cpu" and precision == "bf16" and not _cpu_has_fast_bf16():
        log.warning(
            "This CPU has no native bf16 (AVX512-BF16/AMX): bf16 training will be slow; "
            "consider --precision fp32"
        )
    return dev, precision


def _cpu_has_fast_bf16() -> bool:
    import torch

    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def _use_channels_last(model: Any) -> bool:
    """CNNs train faster in channels_last on oneDNN and tensor cores (2.4x with bf16 on a CPU)."""
    import torch

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return len(convs) > 1  # a ViT has one conv (the patch embedding): nothing to gain


def _subset_cache(
    cache: np.ndarray | None, pos: dict[Sample, int], items: tuple[Sample, ...]
) -> np.ndarray | None:
    if cache is None:
        return None
    return cache[[pos[s] for s in items]]


def _check_readable_headers(samples: tuple[Sample, ...]) -> list[Sample]:
    """Quick header check of plain images (no decoding) so obviously broken files are skipped."""
    from PIL import Image

    from training.data import PLAIN_IMAGE_SUFFIXES

    bad = []
    for s in samples:
        if s.path.suffix.lower() in PLAIN_IMAGE_SUFFIXES:
            try:
                with Image.open(s.path) as im:
                    im.size  # noqa: B018 - forces the header parse
            except (OSError, ValueError, SyntaxError):
                bad.append(s)
    return bad


def _class_weights(train: tuple[Sample, ...], k: int) -> tuple[list[float], list[int]]:
    counts = Counter(s.label for s in train)
    n = [counts.get(i, 0) for i in range(k)]
    total = sum(n)
    return [total / (k * c) if c else 0.0 for c in n], n


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

    from training.distributed import broadcast_object, init_distributed, shutdown

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
    import torch

    from octviewer.core.model.architectures import default_cam_target
    from training import loop
    from training.augment import AugmentConfig, augment_batch, eval_batch
    from training.model_setup import build_model, freeze_backbone, param_groups

    regex = cfg.patient_regex or DEFAULT_PATIENT_REGEX
    source = discover(cfg.data, class_names=cfg.classes, patient_regex=regex)
    names = source.class_names
    k = len(names)
    pre = PreprocessConfig(
        size=(cfg.input_size, cfg.input_size),
        interpolation=cfg.interpolation,
        normalization=cfg.normalization,
    )
    samples = source.samples
    unreadable: list[Sample] = []

    # decode once into memory when it fits, dropping unreadable files before the split
    use_cache = cfg.cache == "yes" or (
        cfg.cache == "auto" and cache_bytes(len(samples), pre) <= cfg.cache_limit_gb * 1e9
    )
    cache: np.ndarray | None = None
    if use_cache:
        t0 = time.perf_counter()
        cache, bad_idx = build_cache(samples, pre, workers=cfg.workers, desc="decode + resize")
        bad = set(bad_idx)
        unreadable = [samples[i] for i in sorted(bad)]
        keep = [i for i in range(len(samples)) if i not in bad]
        cache = cache[keep]
        samples = tuple(samples[i] for i in keep)
        log.info(
            "Decoded and cached %d images at %dx%d in %.1f s (%.0f MB)",
            len(samples),
            *pre.size,
            time.perf_counter() - t0,
            cache.nbytes / 1e6,
        )
    else:
        bad_s = set(_check_readable_headers(samples))
        unreadable = sorted(bad_s, key=lambda s: str(s.path))
        samples = tuple(s for s in samples if s not in bad_s)
        log.info(
            "Streaming %d images from disk (cache off or over %.1f GB)",
            len(samples),
            cfg.cache_limit_gb,
        )
    present = {s.label for s in samples}
    if len(present) < 2 or len(present) < k:
        missing = [names[i] for i in range(k) if i not in present]
        raise TrainingError(
            f"After skipping unreadable files, the class(es) {', '.join(missing)} have no "
            "readable image. Check those folders.",
            path=source.root,
        )

    split_csv = run_dir / "split.csv"
    fold = (cfg.fold, cfg.folds) if cfg.folds and cfg.fold else None
    if cfg.resume and split_csv.is_file():
        split = load_split(
            split_csv, list(samples), names, cfg.effective_split_seed, cfg.val_fraction
        )
        split = dataclasses.replace(split, fold=fold)
    elif fold is not None:
        split = patient_fold(
            samples, names, n_folds=fold[1], fold=fold[0], seed=cfg.effective_split_seed
        )
        if dist.is_main:
            save_split(split, names, split_csv)
    else:
        split = patient_split(
            samples, names, val_fraction=cfg.val_fraction, seed=cfg.effective_split_seed
        )
        if dist.is_main:
            save_split(split, names, split_csv)
    pos = {s: i for i, s in enumerate(samples)}
    train_ds = FrameDataset(split.train, pre, _subset_cache(cache, pos, split.train))
    val_ds = FrameDataset(split.val, pre, _subset_cache(cache, pos, split.val))
    del cache
    log.info(
        "Split (seed %d%s): train %s; validation %s",
        cfg.effective_split_seed,
        f", fold {fold[0]} of {fold[1]}" if fold else "",
        describe(split.train, names),
        describe(split.val, names),
    )

    device, precision = _device_and_precision(cfg, dist.local_rank)
    built = build_model(cfg, k, names)
    model = built.model
    if cfg.mode == "full" and _use_channels_last(model):
        import torch

        model.to(memory_format=torch.channels_last)
    if cfg.grad_checkpointing and cfg.mode == "full":
        if hasattr(model, "set_grad_checkpointing"):
            model.set_grad_checkpointing(True)
        else:
            log.warning("This architecture has no gradient checkpointing; option ignored")
    workers = 0 if train_ds.cache is not None else cfg.workers
    aug = AugmentConfig(fill=cfg.fill)

    def prep_eval(x: torch.Tensor) -> torch.Tensor:
        return eval_batch(x, pre)

    def prep_train(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return augment_batch(x, pre, aug, g) if cfg.augment else eval_batch(x, pre)

    cw, train_counts = _class_weights(split.train, k)
    if 0 in train_counts:
        raise TrainingError(
            f"The training split has no image of {', '.join(n for n, c in zip(names, train_counts, strict=True) if not c)}: "
            "add images from more patients."
        )
    class_weights = torch.tensor(cw) if cfg.balance == "loss" else None
    sample_weights = (
        torch.tensor([1.0 / train_counts[s.label] for s in split.train], dtype=torch.double)
        if cfg.balance == "sampler"
        else None
    )

    if cfg.mode == "cached-features":
        if dist.enabled:
            raise TrainingError(
                "--mode cached-features runs in one process: start it without torchrun."
            )
        from training.features import cached_features

        model.to(device)
        feats = cached_features(
            run_dir / "features.pt",
            model,
            {"train": train_ds, "val": val_ds},
            prep_eval,
            device,
            batch_size=cfg.batch_size,
            workers=workers,
            precision=precision,
        )
        head = model.get_classifier()
        trainable: torch.nn.Module = head
        fit_train, fit_val = feats["train"], feats["val"]
        prepare_train: loop.Prepare = lambda x, g: x  # noqa: E731
        prepare_eval: loop.EvalPrepare = lambda x: x  # noqa: E731
        unreadable += [
            split.train[i] for i in range(len(split.train)) if not bool(feats["train"].ok[i])
        ]
        batch_size, loop_workers = max(cfg.batch_size, 256), 0
    else:
        if cfg.mode == "linear-probe":
            freeze_backbone(model)
        trainable = model
        fit_train, fit_val = train_ds, val_ds
        prepare_train, prepare_eval = prep_train, prep_eval
        batch_size, loop_workers = cfg.batch_size, workers
    groups = (
        param_groups(trainable, cfg)
        if cfg.mode == "full"
        else [
            {
                "params": [p for p in trainable.parameters() if p.requires_grad],
                "weight_decay": cfg.weight_decay,
                "lr": cfg.base_lr,
            }
        ]
    )
    lc = loop.LoopConfig(
        epochs=cfg.epochs,
        lr_groups=groups,
        warmup_epochs=cfg.warmup,
        min_lr_ratio=cfg.min_lr_ratio,
        label_smoothing=cfg.label_smoothing,
        class_weights=class_weights,
        sample_weights=sample_weights,
        batch_size=batch_size,
        accum_steps=cfg.accum_steps,
        patience=cfg.patience,
        clip_grad=cfg.clip_grad,
        mixup=cfg.mixup,
        ema_decay=cfg.ema_decay if cfg.ema else None,
        precision=precision,
        max_steps_per_epoch=cfg.max_steps_per_epoch,
        workers=loop_workers,
        seed=cfg.seed,
    )
    log.info(
        "Training %s (%s, init: %s) on %s, %s, %d epochs, lr %.2e",
        built.architecture,
        cfg.mode,
        built.init_description,
        device,
        precision,
        cfg.epochs,
        cfg.base_lr,
    )
    t_train = time.perf_counter()
    result = loop.fit(
        trainable,
        fit_train,
        fit_val,
        names,
        lc,
        prepare_train=prepare_train,
        prepare_eval=prepare_eval,
        device=device,
        dist=dist,
        run_dir=run_dir,
        resume=cfg.resume,
        epoch_callback=epoch_callback,
    )
    train_seconds = time.perf_counter() - t_train
    unreadable += [split.train[i] for i in sorted(b for b in result.bad_indices if b >= 0)]
    unreadable += [split.val[-1 - b] for b in sorted(b for b in result.bad_indices if b < 0)]
    if not dist.is_main:
        return RunResult(run_dir, None, None, {}, ())

    # --- best weights, calibration, metrics -------------------------------------------------
    from training.calibrate import fit_temperature, softmax
    from training.metrics import classification_report

    trainable.load_state_dict(result.best_state)
    model.to(device).eval()
    single = dataclasses.replace(dist, rank=0, world_size=1)
    val_logits, val_labels, _, _ = loop.predict(
        trainable,
        fit_val,
        prepare_eval,
        device,
        single,
        batch_size=batch_size,
        workers=loop_workers,
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
    test_samples: tuple[Sample, ...] = ()
    test_root = cfg.test or (str(source.test_root) if source.test_root else None)
    test_out = None
    if test_root:
        test_samples = discover_test(test_root, names, regex)
        overlap = {s.patient for s in test_samples} & (split.train_patients | split.val_patients)
        if overlap and source.patients_from != "image":
            log.warning(
                "%d test patient(s) also appear in the training data: test scores may be optimistic",
                len(overlap),
            )
        test_ds = FrameDataset(test_samples, pre)
        tl, tlab, _, tbad = loop.predict(
            model,
            test_ds,
            prep_eval,
            device,
            single,
            batch_size=cfg.batch_size,
            workers=cfg.workers,
            precision=precision,
            desc="test",
        )
        unreadable += [test_samples[i] for i in tbad]
        test_out = (tlab, softmax(tl, temperature))
        metrics["test"] = classification_report(tlab, test_out[1], names)
        metrics["test"]["patient_overlap_with_training"] = len(overlap)
        log.info(
            "Test: balanced accuracy %.4f on %d images",
            metrics["test"]["balanced_accuracy"],
            tlab.size,
        )

    ood_model = _fit_ood(cfg, model, split, pre, metrics, len(names))

    # --- bundle ---------------------------------------------------------------------------
    from octviewer.core.model.bundle import save_bundle

    model.cpu().eval()
    provenance = {
        "command": shlex.join(argv) if argv else "training.run_training (Python API)",
        "mode": cfg.mode,
        "init": built.init_description,
        "data": {
            "path": str(source.root),
            "layout": source.layout,
            "patients_from": source.patients_from,
            **describe(samples, names),
            "unreadable_skipped": len(unreadable),
        },
        "split": {
            "seed": cfg.effective_split_seed,
            "val_fraction": cfg.val_fraction if fold is None else split.val_fraction,
            "by": "patient",
            **({"fold": fold[0], "folds": fold[1]} if fold else {}),
            "train": describe(split.train, names),
            "validation": describe(split.val, names),
        },
        "test": {"path": test_root, **describe(test_samples, names)} if test_root else None,
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
            "precision": precision,
            "device": str(device),
            "world_size": dist.world_size,
            "train_seconds": round(train_seconds, 1),
        },
        **provenance_stamp(t_start),
    }
    licence = cfg.licence or built.licence_hint
    description = cfg.description or (
        f"{built.architecture} fine-tuned ({cfg.mode}) on {source.root.name} "
        f"({len(samples)} images, {len({s.patient for s in samples})} patients); research use only."
    )
    mc = ModelConfig(
        name=cfg.name,
        version=cfg.version,
        architecture=built.architecture,
        class_names=names,
        arch_kwargs=built.arch_kwargs,
        preprocess=pre,
        temperature=float(temperature),
        confidence_threshold=cfg.confidence_threshold,
        cam_target_layer=default_cam_target(built.architecture, model),
        licence=licence,
        description=description,
        provenance=provenance,
        metrics=metrics,
        training_domain=dict(cfg.training_domain),
    )
    out = Path(cfg.output).expanduser() if cfg.output else run_dir / "model.safetensors"
    try:
        dtype = "float16" if cfg.fp16_weights else "float32"
        sha = save_bundle(out, model, mc, dtype=dtype, ood=ood_model)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"Cannot write the model bundle {out}: {exc}", path=out) from exc

    # --- run directory outputs ------------------------------------------------------------
    (run_dir / "final_metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    if unreadable:
        lines = sorted({str(s.path) for s in unreadable})
        (run_dir / "unreadable.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        log.warning(
            "%d unreadable image(s) were skipped (listed in unreadable.txt):\n  %s",
            len(lines),
            "\n  ".join(lines[:50]),
        )
    if cfg.plots:
        _plots(
            run_dir,
            result.history,
            metrics,
            names,
            val_labels,
            softmax(val_logits),
            val_probs,
            cal_info,
            test_out,
        )
    log.info(
        "Bundle %s (sha256 %s); validation balanced accuracy %.4f; run took %.1f s",
        out,
        sha,
        metrics["validation"]["balanced_accuracy"],
        time.perf_counter() - t_start,
    )
    return RunResult(run_dir, out, sha, metrics, tuple(sorted({str(s.path) for s in unreadable})))


def _fit_ood(
    cfg: TrainConfig, model: Any, split: Any, pre: Any, metrics: dict[str, Any], n_classes: int
) -> Any:
    """Out-of-distribution statistics from the training split, threshold from validation."""
    if not cfg.ood_false_flag_rate:
        return None
    from training.ood import DEFAULTS, extract, fit_shared_split

    model.cpu().eval()
    ood, report = fit_shared_split(
        extract(model, split.train, pre, desc="OOD train features"),
        extract(model, split.val, pre, desc="OOD validation features"),
        n_classes,
        rate=cfg.ood_false_flag_rate,
        shrinkage=DEFAULTS["shrinkage"],
    )
    metrics["ood"] = report
    return ood


def _plots(
    run_dir: Path,
    history: list[dict[str, Any]],
    metrics: dict[str, Any],
    names: tuple[str, ...],
    labels: np.ndarray,
    probs_raw: np.ndarray,
    probs_cal: np.ndarray,
    cal: dict[str, Any],
    test_out: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    try:
        from training import plots
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
