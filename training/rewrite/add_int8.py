"""``octviewer-train int8 BUNDLE --data DIR --output OUT``: add static int8 calibration to an
existing ensemble bundle (weights unchanged), so that ``--int8`` quantises its convolutions.

Each member's backbone (:func:`octviewer.core.model.int8_static.prepare`) sees ``--images``
training images (evenly spread over the classes, in file-name order), and their mirror images
when the ensemble averages both views; the activation ranges its histogram observers choose are
stored in ``config.int8``. The app needs no image at load time. The command then loads the new
bundle twice, int8 and fp32, and records their agreement on the images *not* used for the
calibration (``config.int8["measured"]``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.errors import TrainingError
from training.options import config_from
from training.rewrite.configs import Int8Config
from training.rewrite.step import run_step

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="octviewer-train int8",
        description="Calibrate static int8 for an ensemble bundle on training images and write "
        "a new bundle with the calibration (weights unchanged).",
    )
    p.add_argument("bundle", type=Path, help="the ensemble bundle (.safetensors)")
    p.add_argument("--data", required=True, help="the labelled dataset the bundle was trained on")
    p.add_argument("--output", type=Path, required=True, help="where to write the new bundle")
    p.add_argument("--images", type=int, default=256, help="calibration images (%(default)s)")
    p.add_argument(
        "--check-images",
        type=int,
        default=200,
        help="images not used for calibration on which int8 is compared with fp32 (%(default)s)",
    )
    p.add_argument("--model-version", dest="version", help="version of the new bundle")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    return p


def main(argv: list[str]) -> int:
    return run_step(parse_config, run, argv)


def parse_config(argv: list[str]) -> Int8Config:
    """The command line as a typed config."""
    return config_from(build_parser().parse_args(argv), Int8Config)


def spread(samples: list[Any], n_classes: int, n: int) -> tuple[list[Any], list[Any]]:
    """``n`` samples evenly spaced within each class (file-name order), and the others."""
    chosen: list[Any] = []
    for c in range(n_classes):
        of_class = sorted((s for s in samples if s.label == c), key=lambda s: str(s.path))
        k = min(len(of_class), round(n * len(of_class) / max(1, len(samples))))
        if k:
            picks = np.linspace(0, len(of_class) - 1, k).round().astype(int)
            chosen += [of_class[i] for i in sorted(set(picks.tolist()))]
    keep = set(chosen)
    return chosen, [s for s in samples if s not in keep]


def _batches(samples: list[Any], pre: Any, batch_size: int) -> Any:
    """Normalised input batches (N, 1, H, W) of ``samples``, as the app builds them."""
    import torch

    from training.data.augment import eval_batch
    from training.data.dataset import FrameDataset

    ds = FrameDataset(tuple(samples), pre)
    for start in range(0, len(ds), batch_size):
        items = [ds[i] for i in range(start, min(len(ds), start + batch_size))]
        if not all(it[3] for it in items):
            raise TrainingError("An image could not be read for the int8 calibration.")
        yield eval_batch(torch.stack([it[0] for it in items]), pre)


def calibrate(model: Any, samples: list[Any], config: Any, batch_size: int) -> dict[str, Any]:
    """Activation ranges per member, from its backbone on ``samples`` (and their mirrors)."""
    import torch

    from octviewer.core.model.int8_static import observed_ranges, prepare

    size = tuple(config.preprocess.size)
    members = list(getattr(model, "members", []))
    mirror = bool(getattr(model, "hflip_tta", False))
    prepared = [prepare(m, size, calibrating=True) for m in members]
    with torch.no_grad():
        for x in _batches(samples, config.preprocess, batch_size):
            for p in prepared:
                p(x)
                if mirror:
                    p(x.flip(-1))
    return {f"members.{k}": observed_ranges(p) for k, p in enumerate(prepared)}


def compare(path: Path, samples: list[Any], batch_size: int) -> dict[str, Any]:
    """int8 against fp32 engines of the bundle at ``path`` on ``samples``."""
    from octviewer.core.calibration import calibrated_probabilities
    from octviewer.core.engine import Engine

    fp32 = Engine(path, device="cpu", precision="fp32")
    int8 = Engine(path, device="cpu", quantize=True)
    if int8.int8_kind != "static":
        raise TrainingError("The written bundle does not load as static int8.")
    a, b = [], []
    for x in _batches(samples, fp32.config.preprocess, batch_size):
        a.append(fp32.predict_logits(x))
        b.append(int8.predict_logits(x))
    t = fp32.config.temperature
    pa, pb = (
        calibrated_probabilities(np.concatenate(a), t),
        calibrated_probabilities(np.concatenate(b), t),
    )
    diff = np.abs(pa - pb).max(1)
    return {
        "images": len(samples),
        "top1_agreement": round(float((pa.argmax(1) == pb.argmax(1)).mean()), 5),
        "max_probability_change": round(float(diff.max()), 5) if len(diff) else 0.0,
        "p99_probability_change": round(float(np.percentile(diff, 99)), 5) if len(diff) else 0.0,
    }


def run(cfg: Int8Config, argv: list[str]) -> Path:
    import torch

    from octviewer.core.model.bundle import load_bundle, save_bundle
    from octviewer.core.model.int8_static import BACKEND, METHOD
    from training.data.dataset import discover
    from training.rewrite.step import check_weights_unchanged, step_provenance

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.images < 8:
        raise TrainingError("--images must be at least 8.")
    loaded = load_bundle(cfg.bundle)
    model, config = loaded.model, loaded.config
    if config.architecture != "ensemble":
        raise TrainingError("Static int8 calibration is implemented for ensemble bundles only.")
    samples = list(discover(cfg.data, class_names=config.class_names).samples)
    chosen, rest = spread(samples, config.num_classes, cfg.images)
    log.info("calibrating int8 on %d of %d images", len(chosen), len(samples))
    block = {
        "method": METHOD,
        "backend": BACKEND,
        "torch": torch.__version__.split("+")[0],
        "images": len(chosen),
        "views": 2 if getattr(model, "hflip_tta", False) else 1,
        "activation_bits": 8,  # the search; CPUs without VNNI use the ranges at 7 bits
        "ranges": calibrate(model, chosen, config, cfg.batch_size),
    }
    provenance = dict(config.provenance or {})
    provenance["int8"] = step_provenance(
        "int8",
        argv,
        config,
        loaded.identity.sha256,
        data=str(cfg.data),
        calibration_images="evenly spread within each class, file-name order",
    )
    new = dataclasses.replace(
        config, version=cfg.version or config.version, provenance=provenance, int8=block
    )
    sha = save_bundle(cfg.output, model, new, dtype=config.weights_dtype, ood=loaded.ood)
    check_weights_unchanged(cfg.output, model)
    check = rest[: max(0, cfg.check_images)]
    if check:
        block["measured"] = compare(cfg.output, check, cfg.batch_size)
        log.info("int8 vs fp32 on %d held-out images: %s", len(check), block["measured"])
        new = dataclasses.replace(new, int8=block)
        sha = save_bundle(cfg.output, model, new, dtype=config.weights_dtype, ood=loaded.ood)
    log.info("Wrote %s (sha256 %s) with int8 calibration", cfg.output, sha[:12])
    return Path(cfg.output)
