"""``octviewer-train ensemble``: combine bundles trained on one patient split into one model.

The members must have been trained on the same split (same ``--split-seed``, same data), so
that the validation patients are unseen by every member. The ensemble's logits are the mean of
the members' (see :mod:`octviewer.core.model.ensemble`); its temperature is fitted on those
validation patients, and its metrics are reported with a patient-level bootstrap confidence
interval, next to each member's own score. The result is an ordinary bundle: the viewer, the
CLI, Grad-CAM and reports use it unchanged.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octviewer.core.ood import DEFAULT_FALSE_FLAG_RATE
from octviewer.errors import OCTViewerError, TrainingError
from training.ensemble.config import EnsembleConfig
from training.options import config_from

log = logging.getLogger(__name__)

__all__ = [
    "EnsembleConfig",
    "EnsembleResult",
    "build_parser",
    "main",
    "parse_config",
    "run_ensemble",
]


@dataclass(frozen=True)
class EnsembleResult:
    bundle: Path
    sha256: str
    metrics: dict[str, Any]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="octviewer-train ensemble",
        description="Combine model bundles trained on the same patient split (same --split-seed, "
        "different --seed) into one ensemble bundle: averaged logits, one temperature fitted on "
        "the shared validation patients, metrics with a bootstrap confidence interval.",
    )
    _add_inputs(p)
    _add_bundle_options(p)
    _add_scoring_options(p)
    p.add_argument("--batch-size", type=int, default=32, help="Images per forward (default 32).")
    p.add_argument("--threads", type=int, help="CPU threads for torch.")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _add_inputs(p: argparse.ArgumentParser) -> None:
    """The members, their data and split, and where the ensemble goes."""
    p.add_argument(
        "members", nargs="+", type=Path, help="Member bundles (.safetensors), 2 or more."
    )
    p.add_argument(
        "--data",
        required=True,
        help="The dataset the members were trained on, given exactly as to octviewer-train.",
    )
    p.add_argument(
        "--split",
        type=Path,
        help="split.csv of one member's run directory (all members must share it). Not needed "
        "for cross-validation members (--folds/--fold): each is scored on its own fold.",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="Folder for metrics and plots.")
    p.add_argument("--output", type=Path, help="Bundle path (default RUN_DIR/model.safetensors).")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing run directory.")


def _add_bundle_options(p: argparse.ArgumentParser) -> None:
    """What the ensemble bundle says about itself and how it stores its weights."""
    p.add_argument("--name", default="octviewer-ensemble", help="Model name shown in the app.")
    p.add_argument("--model-version", dest="version", default="1.0.0", help="Model version.")
    p.add_argument("--licence", default="", help="Licence of the weights.")
    p.add_argument("--description", default="", help="Model card text shown in the app.")
    p.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.5,
        help="Below this calibrated top probability a result is flagged uncertain (default 0.5).",
    )
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--fp16-weights", action="store_true", help="Store the weights in float16."
    )
    weights.add_argument(
        "--int8-weights",
        action="store_true",
        help="Store weight matrices and kernels as int8 (one scale per output channel; a "
        "quarter of float32, so twice the members of float16 fit a size limit). The stored "
        "ensemble is re-read and its validation predictions checked against float32.",
    )


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    """How the members are combined and scored; OOD statistics; the training domain."""
    p.add_argument(
        "--hflip-tta",
        action="store_true",
        help="Each member also sees the mirrored B-scan (test-time augmentation; twice the "
        "compute). Metrics without it are reported too.",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        help="Bootstrap resamples of patients (default 2000).",
    )
    p.add_argument(
        "--member-weights",
        choices=("best", "last"),
        default="best",
        help="best: each member's bundle (the epoch with the best validation score). last: the "
        "final epoch from last.pt beside each bundle, so the validation patients chose nothing "
        "and the ensemble's validation metrics are not optimistic (default best).",
    )
    p.add_argument(
        "--ood-false-flag-rate",
        type=float,
        default=DEFAULT_FALSE_FLAG_RATE,
        help="Out-of-distribution statistics: share of held-out in-domain scans allowed above "
        "the threshold (default %(default)s; 0 = none). Each member's statistics come from its own "
        "training images.",
    )
    p.add_argument(
        "--training-domain",
        type=json.loads,
        help="JSON object stored in the bundle (devices, scan type); default: the first member's.",
    )


def parse_config(argv: list[str]) -> EnsembleConfig:
    """The command line (without ``ensemble``) as a typed config."""
    return config_from(build_parser().parse_args(argv), EnsembleConfig)


def run_ensemble(cfg: EnsembleConfig, argv: list[str]) -> EnsembleResult:
    """Load and check the members, score them and their mean, write the ensemble bundle."""
    import torch

    from training.ensemble import report as rep
    from training.ensemble.members import (
        build_checked_module,
        evaluation_sets,
        load_members,
        member_logits,
    )
    from training.export.rundir import prepare_ensemble_run_dir

    t0 = time.perf_counter()
    if len(cfg.members) < 2:
        raise TrainingError("An ensemble needs at least two member bundles.")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = prepare_ensemble_run_dir(cfg.run_dir, cfg.overwrite)

    members = load_members(cfg)
    sets = evaluation_sets(cfg, members)
    lg = member_logits(cfg, members, sets)
    model, arch_kwargs = build_checked_module(cfg, members, sets)
    ood_model, ood_report = rep.fit_ood(cfg, model, sets.splits, len(members.names), members.pre)

    scores = rep.score(cfg, members, sets, lg)
    metrics = scores.metrics
    if ood_report is not None:
        metrics["ood"] = ood_report
    rep.log_scores(members, scores)

    provenance = rep.ensemble_provenance(argv, cfg, members, sets, t0)
    config = rep.ensemble_config(cfg, members, arch_kwargs, scores, provenance)
    out = cfg.output or run_dir / "model.safetensors"
    bundle = rep.EnsembleBundle(model, config, ood_model)  # config.metrics is ``metrics``
    sha = rep.store_checked(cfg, out, bundle, sets, lg, members.folds)
    rep.write_outputs(cfg, run_dir, members, scores, lg)
    log.info("Ensemble bundle %s (sha256 %s)", out, sha)
    return EnsembleResult(out, sha, metrics)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    cfg = config_from(args, EnsembleConfig)
    try:
        run_ensemble(cfg, ["octviewer-train", "ensemble", *argv])
    except OCTViewerError as exc:
        log.error("%s", exc)
        return 2
    return 0
