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
import dataclasses
import json
import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.errors import OCTViewerError, TrainingError

log = logging.getLogger(__name__)


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
        default=0.015,
        help="Out-of-distribution statistics: share of held-out in-domain scans allowed above "
        "the threshold (default 0.015; 0 = none). Each member's statistics come from its own "
        "training images.",
    )
    p.add_argument(
        "--training-domain",
        type=json.loads,
        help="JSON object stored in the bundle (devices, scan type); default: the first member's.",
    )
    p.add_argument("--batch-size", type=int, default=32, help="Images per forward (default 32).")
    p.add_argument("--threads", type=int, help="CPU threads for torch.")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def bootstrap_balanced_accuracy(
    labels: np.ndarray, preds: np.ndarray, patients: list[str], k: int, *, n: int, seed: int = 0
) -> dict[str, float]:
    """95 % percentile interval of balanced accuracy, resampling *patients* with replacement
    (images of one patient are correlated, so resampling images would be too optimistic)."""
    from training.metrics import balanced_accuracy, confusion_matrix

    groups: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        groups.setdefault(p, []).append(i)
    members = [np.asarray(v) for v in groups.values()]
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(n):
        pick = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[j] for j in pick])
        scores.append(balanced_accuracy(confusion_matrix(labels[idx], preds[idx], k)))
    lo, hi = np.percentile(scores, [2.5, 97.5])
    return {"low": float(lo), "high": float(hi), "resamples": n, "unit": "patient"}


def run_ensemble(args: argparse.Namespace, argv: list[str]) -> EnsembleResult:
    import torch

    from octviewer.core.model.architectures import create_model
    from octviewer.core.model.bundle import load_bundle, save_bundle
    from octviewer.core.model.config import ModelConfig
    from octviewer.core.model.ensemble import ENSEMBLE, ENSEMBLE_CAM_TARGET
    from training import loop
    from training.augment import eval_batch
    from training.calibrate import fit_temperature, softmax
    from training.data import FrameDataset, describe, discover
    from training.distributed import DistInfo
    from training.metrics import classification_report
    from training.rundir import prepare_ensemble_run_dir, provenance_stamp
    from training.split import load_split

    t0 = time.perf_counter()
    if len(args.members) < 2:
        raise TrainingError("An ensemble needs at least two member bundles.")
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = prepare_ensemble_run_dir(args.run_dir, args.overwrite)

    loaded = [load_bundle(p) for p in args.members]
    last_epochs: list[int] = []
    if args.member_weights == "last":
        last_epochs = [_use_final_epoch(m, p) for m, p in zip(loaded, args.members, strict=True)]
    first = loaded[0].config
    for m, path in zip(loaded, args.members, strict=True):
        c = m.config
        if c.class_names != first.class_names or c.preprocess != first.preprocess:
            raise TrainingError(
                f"{path.name} has other classes or another preprocessing than "
                f"{args.members[0].name}: members must be trained the same way.",
                path=path,
            )
        if c.architecture == ENSEMBLE:
            raise TrainingError(f"{path.name} is already an ensemble.", path=path)
    seeds = {json.dumps((m.config.provenance or {}).get("split", {}).get("seed")) for m in loaded}
    if len(seeds) > 1:
        raise TrainingError(
            "The members were trained on different patient splits (split seeds "
            f"{', '.join(sorted(seeds))}): their validation patients are not unseen by all. "
            "Train them with the same --split-seed."
        )
    folds = _cv_folds(loaded, args.members)
    if folds is None and args.split is None:
        raise TrainingError(
            "Give --split (one member's split.csv): the members share one validation set."
        )
    names = first.class_names
    k = len(names)
    pre = first.preprocess

    source = discover(args.data, class_names=names)
    if folds is not None:  # cross-validation: each member is scored on its own held-out fold
        splits = [
            load_split(path.parent / "split.csv", list(source.samples), names, 0, 0.0)
            for path in args.members
        ]
        eval_samples = [s for sp in splits for s in sp.val]
        eval_sets = [FrameDataset(sp.val, pre) for sp in splits]
        if len(eval_samples) != len(set(eval_samples)):
            raise TrainingError("The members' validation folds overlap: they are not one CV.")
    else:
        split = load_split(args.split, list(source.samples), names, 0, 0.0)
        eval_samples = list(split.val)
        eval_sets = [FrameDataset(split.val, pre)] * len(loaded)
    single = DistInfo()
    device = torch.device("cpu")

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return eval_batch(x, pre)

    def prepare_mirrored(x: torch.Tensor) -> torch.Tensor:
        return eval_batch(x.flip(-1), pre)

    def member_predict(
        model: torch.nn.Module, ds: FrameDataset, prep: Any, desc: str
    ) -> tuple[Any, Any]:
        lg, lab, _, bad = loop.predict(
            model, ds, prep, device, single, batch_size=args.batch_size, workers=0, desc=desc
        )
        if bad:
            raise TrainingError(f"{len(bad)} validation image(s) could not be read.")
        return lg, lab

    member_logits, mirrored_logits, member_labels = [], [], []
    for m, path, ds in zip(loaded, args.members, eval_sets, strict=True):
        lg, lab = member_predict(m.model, ds, prepare, path.stem)
        member_logits.append(lg)
        member_labels.append(lab)
        if args.hflip_tta:
            mirrored_logits.append(
                member_predict(m.model, ds, prepare_mirrored, f"{path.stem} flipped")[0]
            )
    if folds is not None:  # out-of-fold: one prediction per image, from the member that held it out
        labels = np.concatenate(member_labels)
        plain_logits = np.concatenate(member_logits)
        logits = (
            np.concatenate(
                [(a + b) / 2 for a, b in zip(member_logits, mirrored_logits, strict=True)]
            )
            if args.hflip_tta
            else plain_logits
        )
    else:
        labels = member_labels[0]
        plain_logits = np.mean(member_logits, axis=0)
        logits = (
            np.mean(member_logits + mirrored_logits, axis=0) if args.hflip_tta else plain_logits
        )

    arch_kwargs = {
        "members": [
            {"architecture": m.config.architecture, "arch_kwargs": dict(m.config.arch_kwargs)}
            for m in loaded
        ],
        "hflip_tta": bool(args.hflip_tta),
    }
    model = create_model(ENSEMBLE, k, **arch_kwargs)
    for dst, m in zip(model.members, loaded, strict=True):
        dst.load_state_dict(m.model.state_dict(), strict=True)
    model.eval()
    # The stored module must compute exactly the members' mean: check on a few images.
    with torch.no_grad():
        xs = torch.stack([eval_sets[0][i][0] for i in range(min(4, len(eval_sets[0])))])
        views = [prepare(xs)] + ([prepare_mirrored(xs)] if args.hflip_tta else [])
        expected = torch.stack([m.model(v) for m in loaded for v in views]).mean(0).numpy()
        direct = model(prepare(xs)).numpy()
    if not np.allclose(direct, expected, atol=1e-3):
        raise TrainingError(
            "Internal check failed: the ensemble module disagrees with its members."
        )

    ood_model, ood_report = _fit_ood(args, model, splits if folds is not None else [split], k, pre)

    cal = fit_temperature(logits, labels)
    probs = softmax(logits, cal.temperature)
    preds = probs.argmax(1)
    patients = [s.patient for s in eval_samples]
    report = classification_report(labels, probs, names)
    report["evaluation"] = (
        f"out-of-fold: {folds} patient folds, each image predicted by the member that did not "
        "train on it"
        if folds is not None
        else "validation patients shared by all members, predicted by the whole ensemble"
    )
    report["balanced_accuracy_ci95"] = bootstrap_balanced_accuracy(
        labels, preds, patients, k, n=args.bootstrap
    )
    members_report = []
    for m, lg, lab, ds, path in zip(
        loaded, member_logits, member_labels, eval_sets, args.members, strict=True
    ):
        r = classification_report(lab, softmax(lg, m.config.temperature), names)
        members_report.append(
            {
                "bundle": f"{path.parent.name}/{path.name}",
                "sha256": m.identity.sha256,
                "images": len(lab),
                "balanced_accuracy": r["balanced_accuracy"],
                "ci95": bootstrap_balanced_accuracy(
                    lab, lg.argmax(1), [s.patient for s in ds.samples], k, n=args.bootstrap
                ),
            }
        )
    if args.hflip_tta:
        plain_cal = fit_temperature(plain_logits, labels)
        plain = classification_report(labels, softmax(plain_logits, plain_cal.temperature), names)
        report["without_hflip_tta"] = {
            "balanced_accuracy": plain["balanced_accuracy"],
            "accuracy": plain["accuracy"],
            "ci95": bootstrap_balanced_accuracy(
                labels, plain_logits.argmax(1), patients, k, n=args.bootstrap
            ),
        }
    metrics: dict[str, Any] = {
        "validation": report,
        "calibration": cal.to_dict(),
        "members": members_report,
    }
    if ood_report is not None:
        metrics["ood"] = ood_report
    log.info(
        "Ensemble of %d: validation balanced accuracy %.4f (95%% CI %.3f-%.3f, by patient); "
        "members %s; temperature %.3f, ECE %.4f -> %.4f",
        len(loaded),
        report["balanced_accuracy"],
        report["balanced_accuracy_ci95"]["low"],
        report["balanced_accuracy_ci95"]["high"],
        ", ".join(f"{r['balanced_accuracy']:.4f}" for r in members_report),
        cal.temperature,
        cal.ece_before,
        cal.ece_after,
    )

    provenance = {
        "command": shlex.join(argv),
        "mode": "ensemble",
        "members": [
            {
                "bundle": f"{path.parent.name}/{path.name}",
                "sha256": m.identity.sha256,
                "name": m.config.name,
                "command": (m.config.provenance or {}).get("command"),
                "training": (m.config.provenance or {}).get("training"),
                "weights": (
                    f"final epoch {last_epochs[i]} (last.pt)"
                    if last_epochs
                    else "best validation epoch (the member bundle)"
                ),
            }
            for i, (m, path) in enumerate(zip(loaded, args.members, strict=True))
        ],
        "member_weights": args.member_weights,
        "data": (first.provenance or {}).get("data"),
        "split": {
            **((first.provenance or {}).get("split") or {}),
            "validation": describe(eval_samples, names),
            **(
                {"cross_validation": True, "folds": folds, "fold": None, "train": None}
                if folds is not None
                else {}
            ),
        },
        **provenance_stamp(t0),
    }
    config = ModelConfig(
        name=args.name,
        version=args.version,
        architecture=ENSEMBLE,
        class_names=names,
        arch_kwargs=arch_kwargs,
        preprocess=pre,
        temperature=float(cal.temperature),
        confidence_threshold=args.confidence_threshold,
        cam_target_layer=ENSEMBLE_CAM_TARGET,
        licence=args.licence or first.licence,
        description=args.description
        or f"Ensemble of {len(loaded)} {first.architecture} models; research use only.",
        provenance=provenance,
        metrics=metrics,
        training_domain=dict(args.training_domain or first.training_domain),
    )
    out = args.output or run_dir / "model.safetensors"
    dtype = "int8" if args.int8_weights else "float16" if args.fp16_weights else "float32"
    save_bundle(out, model, config, dtype=dtype, ood=ood_model)
    check_set = eval_sets[0]
    reference = (
        logits
        if folds is None
        else member_predict(model, check_set, prepare, "float32 ensemble")[0]
    )
    stored = _check_stored(
        out, reference, lambda m: member_predict(m, check_set, prepare, "stored bundle")[0]
    )
    metrics["stored_weights"] = {"dtype": dtype, **stored}
    # the same weights again, now with the check in the bundle's own metrics
    sha = save_bundle(
        out, model, dataclasses.replace(config, metrics=metrics), dtype=dtype, ood=ood_model
    )
    log.info(
        "Stored %s weights: %d/%d validation predictions as in float32 (max |logit diff| %.4f)",
        dtype,
        stored["agreement"],
        stored["n"],
        stored["max_abs_logit_diff"],
    )
    (run_dir / "final_metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    if args.plots:
        from training import plots

        what = f"Out of fold ({folds}-fold patient CV)" if folds is not None else "Validation"
        plots.confusion(report["confusion_matrix"], names, run_dir / "confusion_val.png", what)
        plots.reliability(
            softmax(logits),
            probs,
            labels,
            run_dir / "reliability_val.png",
            (cal.ece_before, cal.ece_after),
        )
        plots.roc(labels, probs, names, run_dir / "roc_val.png", f"ROC one-vs-rest: {what}")
    log.info("Ensemble bundle %s (sha256 %s)", out, sha)
    return EnsembleResult(out, sha, metrics)


def _fit_ood(
    args: argparse.Namespace, model: Any, splits: list[Any], n_classes: int, pre: Any
) -> tuple[Any, dict[str, Any] | None]:
    """OOD statistics: one split per member (cross-validation) or one shared split."""
    if not args.ood_false_flag_rate:
        return None, None
    from training.ood import DEFAULTS, extract, fit_cross_validated, fit_shared_split

    opts = {"rate": args.ood_false_flag_rate, "shrinkage": DEFAULTS["shrinkage"]}
    if len(splits) == 1:
        sp = splits[0]
        return fit_shared_split(
            extract(model, sp.train, pre, desc="OOD train features"),
            extract(model, sp.val, pre, desc="OOD validation features"),
            n_classes,
            **opts,
        )
    samples = [s for sp in splits for s in sp.val]
    fold_of = np.array([k for k, sp in enumerate(splits) for _ in sp.val])
    return fit_cross_validated(extract(model, samples, pre), fold_of, n_classes, **opts)


def _cv_folds(loaded: list[Any], paths: list[Path]) -> int | None:
    """The fold count when the members are the folds of one cross-validation, else ``None``.

    Refuses a mix of fold and non-fold members, unequal fold counts, or a fold twice: the
    out-of-fold predictions must cover each image exactly once.
    """
    info = [((m.config.provenance or {}).get("split") or {}) for m in loaded]
    in_cv = [("folds" in i and "fold" in i) for i in info]
    if not any(in_cv):
        return None
    if not all(in_cv):
        raise TrainingError(
            "Some members were trained on cross-validation folds (--folds/--fold) and some on a "
            "single split: combine one kind only."
        )
    counts = sorted({int(i["folds"]) for i in info})
    got = sorted(int(i["fold"]) for i in info)
    if counts != [len(got)] or got != list(range(1, len(got) + 1)):
        raise TrainingError(
            "Cross-validation members must be exactly one run per fold of the same --folds "
            f"(got folds {got} of {counts}): " + ", ".join(p.name for p in paths)
        )
    return len(got)


def _check_stored(out: Path, logits: Any, predict: Any) -> dict[str, Any]:
    """Re-read the written bundle and compare its logits (``predict(model)``) with ``logits``."""
    from octviewer.core.model.bundle import load_bundle

    lg = predict(load_bundle(out).model)
    return {
        "n": len(lg),
        "agreement": int((lg.argmax(1) == logits.argmax(1)).sum()),
        "max_abs_logit_diff": float(np.abs(lg - logits).max()),
    }


def _use_final_epoch(member: Any, bundle: Path) -> int:
    """Swap ``member``'s weights for the final epoch's (``last.pt`` beside its bundle).

    Returns that epoch (1-based). Refuses an unfinished run: its last epoch is not the recipe's.
    """
    import torch

    ck_path = bundle.parent / "last.pt"
    if not ck_path.is_file():
        raise TrainingError(
            f"--member-weights last needs {ck_path}: keep each member's run directory (its "
            "bundle and last.pt) together.",
            path=ck_path,
        )
    try:
        ck = torch.load(ck_path, map_location="cpu", weights_only=True)
        state, epoch = ck["model"], int(ck["epoch"]) + 1
    except Exception as exc:
        raise TrainingError(f"{ck_path} is not a readable training checkpoint: {exc}") from exc
    training = (member.config.provenance or {}).get("training") or {}
    planned = training.get("epochs_max")
    if planned is not None and epoch != int(planned):
        raise TrainingError(
            f"{ck_path} stopped at epoch {epoch} of {planned}: finish the run (--resume) or "
            "use --member-weights best.",
            path=ck_path,
        )
    if training.get("ema") and ck.get("ema"):  # an EMA run evaluated (and shipped) its average
        state = {k.removeprefix("module."): v for k, v in ck["ema"].items()}
    try:
        member.model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"{ck_path} does not match {bundle.name}: {exc}", path=ck_path) from exc
    return epoch


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        run_ensemble(args, ["octviewer-train", "ensemble", *argv])
    except OCTViewerError as exc:
        log.error("%s", exc)
        return 2
    return 0
