"""``octviewer-train ood BUNDLE --data DIR --output OUT``: add out-of-distribution statistics
to an existing bundle (weights unchanged), using the patient split its provenance records.

Single runs and ``octviewer-train ensemble`` compute the statistics themselves; this command is
for bundles made before they existed, or to refit them at another false-flag rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.errors import TrainingError
from training.options import config_from
from training.rewrite.configs import OodConfig
from training.rewrite.step import run_step

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    from octviewer.core.ood import DEFAULT_FALSE_FLAG_RATE, DEFAULT_SHRINKAGE, NORMALIZATIONS

    p = argparse.ArgumentParser(
        prog="octviewer-train ood",
        description="Fit out-of-distribution statistics for a bundle on its own training "
        "images (threshold from held-out patients) and write a new bundle with them.",
    )
    p.add_argument("bundle", type=Path, help="the bundle (.safetensors) to add statistics to")
    p.add_argument("--data", required=True, help="the labelled dataset the bundle was trained on")
    p.add_argument("--output", type=Path, required=True, help="where to write the new bundle")
    p.add_argument(
        "--false-flag-rate",
        type=float,
        default=DEFAULT_FALSE_FLAG_RATE,
        help="share of in-domain held-out scans allowed above the threshold (default %(default)s)",
    )
    p.add_argument("--shrinkage", type=float, default=DEFAULT_SHRINKAGE)
    p.add_argument(
        "--normalize",
        choices=NORMALIZATIONS,
        default="none",
        help="feature normalisation before fitting and scoring: 'l2' scales each pre-logit "
        "feature vector to unit length (Mahalanobis++); 'none' as bundles before 2.3.0 "
        "(default %(default)s; docs/OOD.md 'Variants measured')",
    )
    p.add_argument(
        "--ood-dev",
        type=Path,
        nargs="*",
        default=[],
        help="out-of-domain files or folders to report detection on (not used for fitting)",
    )
    p.add_argument("--model-version", dest="version", help="version of the new bundle")
    p.add_argument(
        "--training-domain",
        type=json.loads,
        help='JSON, e.g. \'{"manufacturers": ["Heidelberg Engineering"], "scan_type": "..."}\'',
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    return p


def fold_of_members(config: Any) -> list[int] | None:
    """1-based held-out fold of each ensemble member, from the members' recorded commands."""
    members = (config.provenance or {}).get("members") or []
    folds = []
    for m in members:
        found = re.search(r"--fold[ =](\d+)", str(m.get("command") or ""))
        if not found:
            return None
        folds.append(int(found.group(1)))
    return folds or None


def fit_for_bundle(cfg: OodConfig, model: Any, config: Any) -> tuple[Any, dict]:
    """The OOD model and its report for a loaded bundle."""
    from training.data.dataset import discover
    from training.data.split import patient_fold, patient_split
    from training.evaluate.ood import extract, fit_cross_validated, fit_shared_split

    split = (config.provenance or {}).get("split") or {}
    if "seed" not in split:
        raise TrainingError(
            "The bundle records no patient split, so its held-out patients are unknown: "
            "statistics need the split it was trained with."
        )
    source = discover(cfg.data, class_names=config.class_names)
    samples = list(source.samples)
    names = config.class_names
    seed = int(split["seed"])
    n_nets = len(getattr(model, "members", [model]))
    opts = {
        "rate": cfg.false_flag_rate,
        "shrinkage": cfg.shrinkage,
        "normalize": cfg.normalize,
    }
    if split.get("cross_validation"):
        folds = int(split["folds"])
        order = fold_of_members(config) or list(range(1, n_nets + 1))
        if len(order) != n_nets or sorted(order) != list(range(1, folds + 1)):
            raise TrainingError(
                f"The ensemble's {n_nets} members do not map one to one onto its {folds} folds."
            )
        fold_of = np.full(len(samples), -1)
        index = {s: i for i, s in enumerate(samples)}
        for k, fold in enumerate(order):
            for s in patient_fold(samples, names, n_folds=folds, fold=fold, seed=seed).val:
                fold_of[index[s]] = k
        feats = extract(model, samples, config.preprocess)
        return fit_cross_validated(feats, fold_of, len(names), **opts)
    if split.get("fold"):
        sp = patient_fold(
            samples, names, n_folds=int(split["folds"]), fold=int(split["fold"]), seed=seed
        )
    else:
        sp = patient_split(samples, names, val_fraction=float(split["val_fraction"]), seed=seed)
    return fit_shared_split(
        extract(model, sp.train, config.preprocess, desc="train features"),
        extract(model, sp.val, config.preprocess, desc="validation features"),
        len(names),
        **opts,
    )


def dev_files(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith("."))
        else:
            out.append(p)
    return [p for p in out if p.suffix.lower() not in (".md", ".txt", ".tsv")]


def main(argv: list[str]) -> int:
    return run_step(parse_config, run, argv)


def parse_config(argv: list[str]) -> OodConfig:
    """The command line as a typed config."""
    return config_from(build_parser().parse_args(argv), OodConfig)


def run(cfg: OodConfig, argv: list[str]) -> Path:
    import torch

    from octviewer.core.model.bundle import load_bundle, save_bundle
    from training.evaluate.ood import score_dev_set
    from training.rewrite.step import check_weights_unchanged, step_provenance

    if not 0.0 < cfg.false_flag_rate < 0.5:
        raise TrainingError("--false-flag-rate must be between 0 and 0.5 (e.g. 0.02).")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    loaded = load_bundle(cfg.bundle)
    model, config = loaded.model, loaded.config
    ood, report = fit_for_bundle(cfg, model, config)
    if cfg.ood_dev:
        report["development_ood_set"] = score_dev_set(
            model, ood, dev_files(cfg.ood_dev), config.preprocess
        )
        dev = report["development_ood_set"]
        log.info("OOD development set: %d of %d flagged", dev["flagged"], dev["images"])
    provenance = dict(config.provenance or {})
    provenance["ood"] = step_provenance("ood", argv, config, loaded.identity.sha256)
    new = dataclasses.replace(
        config,
        version=cfg.version or config.version,
        training_domain=cfg.training_domain or config.training_domain,
        metrics={**config.metrics, "ood": report},
        provenance=provenance,
    )
    sha = save_bundle(cfg.output, model, new, dtype=config.weights_dtype, ood=ood)
    check_weights_unchanged(cfg.output, model)
    log.info("Wrote %s (sha256 %s) with OOD statistics", cfg.output, sha[:12])
    return Path(cfg.output)
