"""The parser of ``octviewer-train`` (a training run): one function per group of options.

The options mirror :class:`training.config.TrainConfig`; :func:`training.cli.parse_config` turns
them into one.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from octviewer.core.ood import DEFAULT_FALSE_FLAG_RATE
from training.config import BALANCE, CACHE, MODES, PRECISIONS

EPILOG = """\
examples:
  # fine-tune MIRAGE-Base on a folder per class (Kermany layout works too)
  octviewer-train --data OCT2017/ --run-dir runs/mirage-base \\
      --init mirage-base:MIRAGE-Base/model.safetensors --epochs 50 --batch-size 32

  # laptop: cache frozen features once, train only the head (seconds per epoch)
  octviewer-train --data my_scans/ --run-dir runs/probe --mode cached-features \\
      --init bundle:resources/models/default.safetensors

  # a small CNN from scratch at 224 px on the CPU
  octviewer-train --data kermany/ --run-dir runs/r18 --architecture timm/resnet18 \\
      --img-size 224 --epochs 8 --batch-size 32 --lr 1e-3

  # several GPUs / nodes: the same command under torchrun
  torchrun --nproc-per-node 4 -m training --data OCT2017/ --run-dir runs/ddp \\
      --init mirage-base:model.safetensors --precision bf16

The run directory receives config.json, split.csv, train.log, metrics.csv/json, last.pt and
best.pt (resume), final_metrics.json, PNG plots and model.safetensors (the bundle the viewer
opens). Research use only.
"""


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    if len(names) < 2:
        raise argparse.ArgumentTypeError("give at least two comma-separated class names")
    return names


def _groups(text: str) -> tuple[str, ...]:
    from training.data.variation import GROUPS

    names = tuple(c.strip() for c in text.split(",") if c.strip())
    if names == ("all",):
        return GROUPS
    unknown = sorted(set(names) - set(GROUPS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown group(s) {', '.join(unknown)}; use {GROUPS}")
    return names


def _json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"embed_dim\": 192}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="octviewer-train",
        description="Fine-tune a MIRAGE (or timm) classifier on labelled OCT B-scans and write an "
        "octviewer model bundle.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", metavar="FILE", help="JSON or TOML file of options (keys = option names)."
    )
    _add_data_options(p)
    _add_model_options(p)
    g = p.add_argument_group("training")
    _add_optimiser_options(g)
    _add_regularisation_options(g)
    _add_hardware_options(p)
    _add_output_options(p)
    return p


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """Where the images are, their classes and patients, the split, loading."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        help="Folder with one sub-folder per class (or Kermany's train/ test/ layout), "
        "or a CSV with columns path,label[,patient]. Required.",
    )
    g.add_argument(
        "--test",
        help="Optional test folder/CSV evaluated once at the end (default: the "
        "dataset's test/ folder in Kermany layout).",
    )
    g.add_argument(
        "--classes",
        type=_classes,
        help="Comma-separated class names, fixing their order "
        "(default: sorted folder names / labels).",
    )
    g.add_argument(
        "--patient-regex",
        help="Regular expression with a (?P<patient>...) group matched "
        "against file names without suffix (default: Kermany's CLASS-PATIENT-N).",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        help="Share of patients held out for validation "
        "(patient-disjoint, stratified; default 0.2).",
    )
    g.add_argument(
        "--seed", type=int, help="Seed of the split, the order and the augmentations (default 0)."
    )
    g.add_argument(
        "--split-seed",
        type=int,
        help="Seed of the train/validation split alone (default: --seed). Give several runs the "
        "same --split-seed and different --seed to train ensemble members on one split.",
    )
    g.add_argument(
        "--folds",
        type=int,
        help="Patient-level cross-validation: deal the patients (stratified, --split-seed) into "
        "this many folds and validate on --fold. Train one run per fold, then combine them with "
        "`octviewer-train ensemble` for out-of-fold metrics over every image.",
    )
    g.add_argument("--fold", type=int, help="Which fold (1..--folds) this run validates on.")
    g.add_argument(
        "--workers", type=int, help="DataLoader worker processes for decoding (default 2)."
    )
    g.add_argument(
        "--cache",
        choices=CACHE,
        help="Keep decoded, resized images in memory: auto (when "
        "under --cache-limit-gb), yes, no (default auto).",
    )
    g.add_argument(
        "--cache-limit-gb", type=float, help="Memory allowed for that cache (default 4)."
    )


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """The network, its initial weights and its input."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--architecture",
        help="mirage_base, mirage_large, mirage_vit (give --arch-kwargs) or "
        "timm/<name> such as timm/resnet18 (default mirage_base).",
    )
    g.add_argument(
        "--arch-kwargs",
        type=_json_dict,
        help="JSON object of architecture arguments, e.g. "
        '\'{"embed_dim": 192, "depth": 6, "num_heads": 3}\' for mirage_vit.',
    )
    g.add_argument(
        "--init",
        help="Initial weights: scratch, mirage-base:PATH, mirage-large:PATH (official "
        "model.safetensors or .pth) or bundle:PATH (an octviewer bundle) (default scratch).",
    )
    g.add_argument(
        "--img-size",
        type=int,
        help="Square input side in pixels (default 512 for MIRAGE, "
        "224 for other networks; MIRAGE needs a multiple of 32).",
    )
    g.add_argument(
        "--interpolation",
        choices=("bilinear", "bicubic", "area", "nearest"),
        help="Resize method stored in the bundle (default bilinear).",
    )
    g.add_argument(
        "--normalization",
        choices=("minmax", "meanstd"),
        help="Per-image normalisation (default minmax, as MIRAGE).",
    )
    g.add_argument(
        "--drop-path", type=float, help="Stochastic depth rate while training (default 0)."
    )


def _add_optimiser_options(g: Any) -> None:
    """What trains and how: mode, epochs, batches, learning rate, loss, stopping."""
    g.add_argument(
        "--mode",
        choices=MODES,
        help="full fine-tune; linear-probe (frozen backbone, "
        "augmented images); cached-features (frozen backbone run once, head trained on cached "
        "features: fast on a CPU) (default full).",
    )
    g.add_argument("--epochs", type=int, help="Maximum number of epochs (default 50).")
    g.add_argument("--batch-size", type=int, help="Images per step and process (default 32).")
    g.add_argument("--accum-steps", type=int, help="Gradient accumulation steps (default 1).")
    g.add_argument(
        "--lr",
        type=float,
        help="Peak learning rate (default 1e-5 full fine-tune from "
        "pretrained weights, 1e-3 from scratch or for the head-only modes).",
    )
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 1e-2).")
    g.add_argument(
        "--warmup-epochs",
        type=float,
        help="Linear warm-up epochs before the cosine decay (default min(10, epochs/10)).",
    )
    g.add_argument(
        "--min-lr-ratio", type=float, help="Final lr as a fraction of the peak (default 0.01)."
    )
    g.add_argument("--label-smoothing", type=float, help="Label smoothing (default 0.1).")
    g.add_argument(
        "--balance",
        choices=BALANCE,
        help="Class imbalance: loss (class-weighted loss), "
        "sampler (class-balanced sampling) or none (default loss).",
    )
    g.add_argument(
        "--patience",
        type=int,
        help="Early stopping after this many epochs without a better "
        "validation balanced accuracy (default 20).",
    )
    g.add_argument(
        "--layer-decay", type=float, help="Layer-wise lr decay for ViTs, e.g. 0.75 (default off)."
    )
    g.add_argument(
        "--clip-grad", type=float, help="Clip the gradient norm to this value (default off)."
    )


def _add_regularisation_options(g: Any) -> None:
    """Averaging, mixup, augmentations, outlier exposure, step cap."""
    g.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        help="Keep an exponential moving "
        "average of the weights (timm ModelEmaV3); it is validated and saved.",
    )
    g.add_argument("--ema-decay", type=float, help="EMA decay per step (default 0.999).")
    g.add_argument("--mixup", type=float, help="Mixup alpha (0 = off, default 0).")
    g.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        help="MIRAGE augmentations: flip, "
        "affine, intensity (default on; --no-augment turns them off).",
    )
    g.add_argument(
        "--augment-extra",
        type=_groups,
        help="Real-data variation groups added to the augmentations, comma-separated: "
        "display, speckle, contrast, zoom, overlay, or all (training/data/variation.py; default "
        "none).",
    )
    g.add_argument(
        "--outlier-label",
        help="CSV label of images with findings outside the classes: trained toward a uniform "
        "output (outlier exposure), never validated on (default: none).",
    )
    g.add_argument(
        "--fill",
        type=float,
        help="Fill value of the affine warp in [0, 1] (default 1 = white, "
        "for Kermany's white padding).",
    )
    g.add_argument(
        "--max-steps-per-epoch", type=int, help="Cap the steps of each epoch (quick checks)."
    )


def _add_hardware_options(p: argparse.ArgumentParser) -> None:
    """Device, precision, memory and threads."""
    g = p.add_argument_group("hardware")
    g.add_argument(
        "--device",
        help="auto, cpu, cuda or cuda:N (default auto; torchrun sets one GPU per process).",
    )
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto (bf16 where the GPU has it, else fp16 with "
        "a gradient scaler; fp32 on CPU), fp32, bf16, fp16. bf16 also works on a CPU: "
        "2.4x faster for a ResNet-18 on AVX512-BF16 (CNNs train channels_last).",
    )
    g.add_argument(
        "--grad-checkpointing",
        action=argparse.BooleanOptionalAction,
        help="Trade compute for memory (MIRAGE-Large on small GPUs).",
    )
    g.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice).")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """The run directory and the bundle: calibration, statistics, what it says."""
    g = p.add_argument_group("output")
    g.add_argument(
        "--run-dir",
        help="Folder for everything the run writes. Required. Never overwritten silently.",
    )
    g.add_argument("--output", help="Path of the bundle (default RUN_DIR/model.safetensors).")
    g.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        help="Continue the run in --run-dir from its last.pt (loses at most one epoch).",
    )
    g.add_argument(
        "--overwrite",
        action=argparse.BooleanOptionalAction,
        help="Delete an earlier run in --run-dir and start again.",
    )
    g.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        help="Fit a temperature on the validation set (default on).",
    )
    g.add_argument(
        "--confidence-threshold",
        type=float,
        help="Below this calibrated probability the viewer "
        "flags a prediction as uncertain (default 0.5).",
    )
    g.add_argument(
        "--fp16-weights",
        action=argparse.BooleanOptionalAction,
        help="Store the bundle's weights in float16 (half the size).",
    )
    g.add_argument(
        "--ood-false-flag-rate",
        type=float,
        help="Out-of-distribution statistics: share of held-out in-domain scans allowed above "
        f"the threshold (default {DEFAULT_FALSE_FLAG_RATE}; 0 = no statistics).",
    )
    g.add_argument(
        "--training-domain",
        type=_json_dict,
        help='What the data is, stored in the bundle, e.g. \'{"manufacturers": '
        '["Heidelberg Engineering"], "devices": ["Spectralis"], "scan_type": "macular B-scan"}\'; '
        "scans naming another manufacturer get a caution.",
    )
    g.add_argument(
        "--plots", action=argparse.BooleanOptionalAction, help="Write PNG plots (default on)."
    )
    g.add_argument("--name", help="Model name in the bundle (default octviewer-model).")
    g.add_argument(
        "--model-version", dest="version", help="Model version in the bundle (default 1.0.0)."
    )
    g.add_argument(
        "--licence", help="Licence of the weights (default: that of the initial weights)."
    )
    g.add_argument("--description", help="Free text description stored in the bundle.")
    g.add_argument("-v", "--verbose", action="store_true", help="More log output on the console.")
