"""TrainConfig: every option of a training run (the command line and the config file mirror it)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from octviewer.core.ood import DEFAULT_FALSE_FLAG_RATE
from octviewer.errors import TrainingError

MODES = ("full", "linear-probe", "cached-features")
BALANCE = ("loss", "sampler", "none")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CACHE = ("auto", "yes", "no")


@dataclass
class TrainConfig:
    data: str
    run_dir: str
    test: str | None = None
    output: str | None = None
    classes: tuple[str, ...] | None = None
    patient_regex: str | None = None
    architecture: str = "mirage_base"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = "scratch"
    mode: str = "full"
    img_size: int | None = None
    interpolation: str = "bilinear"
    normalization: str = "minmax"
    epochs: int = 50
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 1e-2
    warmup_epochs: float | None = None
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    balance: str = "loss"
    patience: int = 20
    layer_decay: float | None = None
    drop_path: float = 0.0
    precision: str = "auto"
    accum_steps: int = 1
    grad_checkpointing: bool = False
    clip_grad: float | None = None
    ema: bool = False
    ema_decay: float = 0.999
    mixup: float = 0.0
    augment: bool = True
    augment_extra: tuple[str, ...] = ()  # groups of training.data.variation (real-data variation)
    fill: float = 1.0
    outlier_label: str | None = None  # CSV label trained toward a uniform output
    max_steps_per_epoch: int | None = None
    seed: int = 0
    split_seed: int | None = None  # None = seed; set it to train several models on one split
    val_fraction: float = 0.2
    folds: int | None = None  # cross-validation: validate on fold `fold` of `folds` (by patient)
    fold: int | None = None
    workers: int = 2
    cache: str = "auto"
    cache_limit_gb: float = 4.0
    device: str = "auto"
    threads: int | None = None
    calibrate: bool = True
    confidence_threshold: float = 0.5
    fp16_weights: bool = False
    # Out-of-distribution statistics: share of held-out in-domain scans allowed above the
    # threshold (0 = no statistics); training_domain: devices/scan type, stored in the bundle.
    ood_false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE
    training_domain: dict[str, Any] = field(default_factory=dict)
    name: str = "octviewer-model"
    version: str = "1.0.0"
    licence: str = ""
    description: str = ""
    resume: bool = False
    overwrite: bool = False
    plots: bool = True

    def __post_init__(self) -> None:
        if self.classes is not None:
            self.classes = tuple(self.classes)
        self.augment_extra = tuple(self.augment_extra)
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> TrainingError:
            return TrainingError(f"Invalid training option: {msg}")

        if self.mode not in MODES:
            raise bad(f"--mode must be one of {', '.join(MODES)} (got {self.mode!r}).")
        if self.balance not in BALANCE:
            raise bad(f"--balance must be one of {', '.join(BALANCE)} (got {self.balance!r}).")
        if self.precision not in PRECISIONS:
            raise bad(f"--precision must be one of {', '.join(PRECISIONS)}.")
        if self.cache not in CACHE:
            raise bad(f"--cache must be one of {', '.join(CACHE)}.")
        if self.epochs < 1 or self.batch_size < 1 or self.accum_steps < 1:
            raise bad("--epochs, --batch-size and --accum-steps must be at least 1.")
        if not 0.0 < self.val_fraction < 1.0:
            raise bad("--val-fraction must be between 0 and 1.")
        if not 0.0 <= self.ood_false_flag_rate < 0.5:
            raise bad("--ood-false-flag-rate must be within [0, 0.5) (0 = no OOD statistics).")
        if (self.folds is None) != (self.fold is None):
            raise bad("--folds and --fold go together (e.g. --folds 4 --fold 1).")
        if (
            self.folds is not None
            and self.fold is not None
            and (self.folds < 2 or not 1 <= self.fold <= self.folds)
        ):
            raise bad("--folds must be at least 2 and --fold between 1 and --folds.")
        if self.img_size is not None and self.img_size < 16:
            raise bad("--img-size must be at least 16 pixels.")
        if (
            self.architecture.startswith("mirage")
            and self.img_size
            and self.img_size % int(self.arch_kwargs.get("patch_size", 32))
        ):
            raise bad("for MIRAGE models --img-size must be a multiple of the patch size (32).")
        from training.data.variation import GROUPS

        unknown = sorted(set(self.augment_extra) - set(GROUPS))
        if unknown:
            raise bad(f"--augment-extra: unknown group(s) {', '.join(unknown)}; use {GROUPS}.")
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            raise bad("--layer-decay must be in (0, 1].")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise bad("--label-smoothing must be in [0, 1).")
        if self.resume and self.overwrite:
            raise bad("--resume and --overwrite cannot be used together.")
        if self.init != "scratch" and ":" not in self.init:
            raise bad(
                "--init must be scratch, mirage-base:PATH, mirage-large:PATH or bundle:PATH "
                f"(got {self.init!r})."
            )

    # --- derived values ------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        if self.img_size:
            return int(self.img_size)
        if "img_size" in self.arch_kwargs:
            return int(self.arch_kwargs["img_size"])
        return 512 if self.architecture.startswith("mirage") else 224

    @property
    def base_lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        if self.mode != "full":
            return 1e-3
        return 1e-3 if self.init == "scratch" else 1e-5

    @property
    def effective_split_seed(self) -> int:
        """The seed of the train/validation split (``split_seed``, else ``seed``)."""
        return self.seed if self.split_seed is None else self.split_seed

    @property
    def warmup(self) -> float:
        if self.warmup_epochs is not None:
            return float(self.warmup_epochs)
        return float(min(10, self.epochs // 10))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes) if self.classes else None
        d["augment_extra"] = list(self.augment_extra)
        return d

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True), encoding="utf-8")


def field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a JSON or TOML file; keys are option names (dashes or underscores)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrainingError(f"Cannot read the config file {p}: {exc}", path=p) from exc
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        else:
            raw = json.loads(text)
    except ValueError as exc:
        raise TrainingError(
            f"The config file {p.name} is not valid JSON/TOML: {exc}", path=p
        ) from exc
    if not isinstance(raw, dict):
        raise TrainingError(f"The config file {p.name} must hold a table of options.", path=p)
    out = {k.replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(out) - field_names())
    if unknown:
        raise TrainingError(
            f"Unknown option(s) in {p.name}: {', '.join(unknown)}. Run octviewer-train --help "
            "for the list.",
            path=p,
        )
    return out
