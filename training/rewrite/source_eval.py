"""``octviewer-train source-eval``: what the app decides, per source, out of fold.

For a cross-validated ensemble bundle and the CSV it was trained on (``octviewer-train
sources``), every labelled B-scan and every outlier-exposure B-scan (findings outside the
classes) is decided as the app decides it, by the member that never saw its patient:

* the probabilities: that member's logits (with the mirrored view when the bundle uses it),
  calibrated with the bundle's temperature;
* the out-of-distribution score: that member's network of the bundle's statistics, which were
  fitted on the other folds (``octviewer-train ood`` cross-validated);
* the flags: :func:`octviewer.core.inference.result_flags` (threshold, confidence, the
  reassurance operating point) and :func:`octviewer.core.examination.examine_frame` (quality,
  anatomy) — the app's own rules.

It reports per source: coverage, selective balanced accuracy, diseased B-scans headlined NORMAL
without a caution, and the outliers withheld or cautioned; and it chooses the reassurance
operating point (``--choose-reassurance``): the lowest NORMAL probability at which at most
``--missed-disease`` of each source's diseased B-scans are headlined NORMAL.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.options import config_from
from training.rewrite.configs import SourceEvalConfig
from training.rewrite.step import run_step

log = logging.getLogger(__name__)

NORMAL = "NORMAL"


@dataclass(frozen=True)
class Decision:
    """One B-scan decided out of fold."""

    source: str
    label: str  # class name, or "OTHER" for an outlier
    probabilities: np.ndarray
    ood_score: float
    gate_flags: frozenset[Any]  # quality / anatomy / not-OCT findings of the pixels


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="octviewer-train source-eval",
        description="Per-source, out-of-fold decisions of a cross-validated ensemble bundle.",
    )
    p.add_argument("bundle", type=Path, help="the ensemble bundle (.safetensors)")
    p.add_argument("--data", required=True, help="the CSV the members were trained on")
    p.add_argument("--outlier-label", default="OTHER", help="label of outlier images")
    p.add_argument("--missed-disease", type=float, default=0.01)
    p.add_argument(
        "--choose-reassurance",
        type=Path,
        metavar="OUT",
        help="write a copy of the bundle with the chosen reassurance operating point",
    )
    p.add_argument("--model-version", dest="version", help="version of that copy")
    p.add_argument(
        "--uncertain-below",
        type=float,
        help="set that copy's 'Uncertain below' confidence threshold (see the report's "
        "confidence_sweep: other findings caught against labelled B-scans cautioned)",
    )
    p.add_argument("--report", type=Path, required=True, help="JSON report to write")
    p.add_argument(
        "--dev-assessed",
        type=Path,
        nargs="*",
        default=[],
        help="development files the model should assess (e.g. raw .vol macular line scans)",
    )
    p.add_argument(
        "--dev-withheld",
        type=Path,
        nargs="*",
        default=[],
        help="development files or folders the model should withhold (out of domain, not OCT)",
    )
    p.add_argument("--threads", type=int)
    return p


def dev_files_decided(bundle: Path, paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Each development file through the real engine (fp32): assessed or why not."""
    from octviewer import load
    from octviewer.core.engine import Engine
    from octviewer.core.inference import AnalysisRequest
    from octviewer.errors import OCTViewerError
    from training.rewrite.add_ood import dev_files

    engine = Engine(bundle, precision="fp32", quantize=False, int8_cache="off")
    rows = []
    for p in dev_files(paths):
        try:
            result = engine.analyze(load(p), AnalysisRequest(cam=False))
        except OCTViewerError as exc:
            rows.append({"file": p.name, "assessed": False, "why": f"refused: {exc}"[:120]})
            continue
        fr = result.frame(result.most_suspicious_frame())
        rows.append(
            {
                "file": p.name,
                "assessed": bool(result.assessable_frames),
                "headline": fr.headline,
                "ood_score": None if fr.ood_score is None else round(fr.ood_score, 3),
                "why": fr.reason,
            }
        )
    return rows


def decide_out_of_fold(bundle: Path, data: str, outlier_label: str) -> list[Decision]:
    """Every B-scan of ``data`` decided by the member that held its patient out."""
    from octviewer import load
    from octviewer.core.calibration import calibrated_probabilities
    from octviewer.core.model.bundle import load_bundle
    from octviewer.core.preprocess import preprocess_frames
    from octviewer.core.scope import ModelScope
    from training.data.dataset import OUTLIER, discover
    from training.data.split import fold_patients
    from training.rewrite.add_ood import fold_of_members

    loaded = load_bundle(bundle)
    model, config, ood = loaded.model.eval(), loaded.config, loaded.ood
    split = config.provenance["split"]
    order = fold_of_members(config) or list(range(1, len(model.members) + 1))
    names = config.class_names
    samples = discover(data, class_names=names, outlier_label=outlier_label).samples
    member_of: dict[str, int] = {}
    for m, fold in enumerate(order):
        for patient in fold_patients(
            samples, names, n_folds=int(split["folds"]), fold=fold, seed=int(split["seed"])
        ):
            member_of[patient] = m
    scope = ModelScope.from_training_domain(config.training_domain)
    mirrored = bool(config.arch_kwargs.get("hflip_tta"))
    by_member: dict[int, list[Any]] = defaultdict(list)
    for s in samples:
        by_member[member_of[s.patient]].append(s)
    out = []
    for m, group in sorted(by_member.items()):
        for start in range(0, len(group), BATCH):
            batch = group[start : start + BATCH]
            scans = [load(s.path) for s in batch]
            mids = [scan.n_frames // 2 for scan in scans]
            x = preprocess_frames(
                [scan.frames[mid] for scan, mid in zip(scans, mids, strict=True)],
                config.preprocess,
            )
            logits, z = _member_outputs(model, m, x, ood, mirrored)
            probs = calibrated_probabilities(logits, config.temperature)
            for j, s in enumerate(batch):
                out.append(
                    Decision(
                        source=s.source,
                        label=outlier_label if s.label == OUTLIER else names[s.label],
                        probabilities=probs[j],
                        ood_score=float(z[j]),
                        gate_flags=_gates(scans[j], mids[j], scope),
                    )
                )
    return out


def _gates(scan: Any, index: int, scope: Any) -> frozenset[Any]:
    """What the app decides from the pixels and the file before the network: not an OCT
    B-scan (the content check), the protocol, quality and anatomy checks."""
    from octviewer.core.examination import examine_frame
    from octviewer.core.results import ResultFlag

    flags = examine_frame(scan, index, scope).flags
    if not scan.metadata.modality.is_oct:
        flags |= {ResultFlag.NOT_OCT}
    return frozenset(flags)


#: Images per forward in :func:`decide_out_of_fold`.
BATCH = 16


def _member_outputs(
    model: Any, m: int, x: Any, ood: Any, mirrored: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Member ``m``'s logits (with the mirrored view when the bundle uses it) and its network's
    OOD z-scores, recorded while the whole ensemble runs as in the app."""
    import torch

    from octviewer.core.ood import FeatureTap

    tap = FeatureTap()
    net = model.members[m]
    with torch.inference_mode():
        with tap.recording(model):
            model(x)
        logits = net(x)
        if mirrored:
            logits = (logits + net(x.flip(-1))) / 2
    z = ood.networks[m].z(tap.features()[m]) if ood is not None else np.full(len(x), np.nan)
    return logits.numpy(), np.asarray(z)


def flags_of(d: Decision, config: Any, ood: Any) -> frozenset[Any]:
    """The app's flags of one decision under ``config`` (thresholds, reassurance)."""
    from octviewer.core.inference import result_flags
    from octviewer.core.scan import Modality, Scan, ScanMetadata

    md = ScanMetadata(source_paths=(), format="training image", modality=Modality.OCT_BSCAN)
    stand_in = Scan(frames=np.zeros((1, 2, 2), np.uint8), metadata=md)
    return result_flags(stand_in, d.probabilities, d.ood_score, config, ood) | d.gate_flags


def source_metrics(
    decisions: list[Decision], config: Any, ood: Any, outlier_label: str
) -> dict[str, Any]:
    """Per source: coverage, selective balanced accuracy, false reassurance, outliers caught."""
    from octviewer.core.results import ABSTAIN_FLAGS, ResultFlag

    names = config.class_names
    caution = {ResultFlag.LOW_CONFIDENCE, ResultFlag.DISEASE_NOT_EXCLUDED}
    by_source: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        by_source[d.source].append(d)
    report: dict[str, Any] = {}
    for source, ds in sorted(by_source.items()):
        known = [d for d in ds if d.label != outlier_label]
        other = [d for d in ds if d.label == outlier_label]
        flags = [flags_of(d, config, ood) for d in known]
        covered = [(d, f) for d, f in zip(known, flags, strict=True) if not f & ABSTAIN_FLAGS]
        recalls = []
        for c in names:
            of_c = [d for d, _ in covered if d.label == c]
            if of_c:
                recalls.append(np.mean([names[int(np.argmax(d.probabilities))] == c for d in of_c]))
        diseased = [d for d in known if d.label != NORMAL]
        reassured = [
            d
            for d, f in covered
            if d.label != NORMAL
            and names[int(np.argmax(d.probabilities))] == NORMAL
            and not f & caution
        ]
        row: dict[str, Any] = {
            "images": len(known),
            "coverage": len(covered) / len(known) if known else None,
            "selective_balanced_accuracy": float(np.mean(recalls)) if recalls else None,
            "diseased": len(diseased),
            "diseased_headlined_normal": len(reassured),
            "false_reassurance_rate": len(reassured) / len(diseased) if diseased else None,
        }
        if other:
            of = [flags_of(d, config, ood) for d in other]
            row["other_findings"] = {
                "images": len(other),
                "withheld": sum(bool(f & ABSTAIN_FLAGS) for f in of),
                "cautioned": sum(bool(f & caution) and not f & ABSTAIN_FLAGS for f in of),
                "confident_class": sum(not f & (ABSTAIN_FLAGS | caution) for f in of),
            }
        report[source] = row
    return report


def confidence_sweep(
    decisions: list[Decision], config: Any, ood: Any, outlier_label: str
) -> list[dict[str, Any]]:
    """For candidate "Uncertain below" thresholds: the share of other-finding B-scans that
    would be withheld or cautioned, and the share of labelled B-scans cautioned in exchange."""
    from octviewer.core.results import ABSTAIN_FLAGS, ResultFlag

    rows = []
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        cfg = replace(config, confidence_threshold=t)
        other, known = [], []
        for d in decisions:
            f = flags_of(d, cfg, ood)
            caught = bool(f & ABSTAIN_FLAGS) or ResultFlag.LOW_CONFIDENCE in f
            (other if d.label == outlier_label else known).append(caught)
        rows.append(
            {
                "uncertain_below": t,
                "other_findings_caught": float(np.mean(other)) if other else None,
                "labelled_withheld_or_uncertain": float(np.mean(known)) if known else None,
            }
        )
    return rows


def choose_reassurance(decisions: list[Decision], config: Any, ood: Any, rate: float) -> float:
    """The lowest NORMAL probability at which at most ``rate`` of each source's diseased,
    assessed-or-not B-scans would be headlined NORMAL without a caution."""
    from octviewer.core.results import ABSTAIN_FLAGS

    names = config.class_names
    k = names.index(NORMAL)
    candidates = sorted(
        {float(d.probabilities[k]) for d in decisions} | {float(config.confidence_threshold)}
    )
    per_source: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    plain = replace(config, reassurance={})
    for d in decisions:
        if d.label in names and d.label != NORMAL:
            counts[d.source] += 1
            f = flags_of(d, plain, ood)
            if not f & ABSTAIN_FLAGS and int(np.argmax(d.probabilities)) == k:
                per_source[d.source].append(float(d.probabilities[k]))
    for t in candidates:
        if t < config.confidence_threshold:
            continue
        if all(sum(p >= t for p in per_source[s]) <= rate * counts[s] for s in counts):
            return t
    return 1.0


def main(argv: list[str]) -> int:
    return run_step(parse_config, run, argv)


def parse_config(argv: list[str]) -> SourceEvalConfig:
    """The command line as a typed config."""
    return config_from(build_parser().parse_args(argv), SourceEvalConfig)


def run(cfg: SourceEvalConfig, argv: list[str]) -> Path:
    import torch

    from octviewer.core.model.bundle import load_bundle, save_bundle
    from training.rewrite.step import check_weights_unchanged, step_provenance

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    decisions = decide_out_of_fold(cfg.bundle, cfg.data, cfg.outlier_label)
    loaded = load_bundle(cfg.bundle)
    config, ood = loaded.config, loaded.ood
    report: dict[str, Any] = {
        "before": source_metrics(decisions, config, ood, cfg.outlier_label),
        "confidence_sweep": confidence_sweep(decisions, config, ood, cfg.outlier_label),
    }
    # assessed or withheld does not depend on the reassurance point: the input bundle decides
    for key, paths in (("dev_assessed", cfg.dev_assessed), ("dev_withheld", cfg.dev_withheld)):
        if paths:
            rows = dev_files_decided(cfg.bundle, paths)
            report[key] = {
                "files": len(rows),
                "assessed": sum(r["assessed"] for r in rows),
                "rows": rows,
            }
    if cfg.choose_reassurance:
        if cfg.uncertain_below is not None:
            config = replace(config, confidence_threshold=cfg.uncertain_below)
        t = choose_reassurance(decisions, config, ood, cfg.missed_disease)
        reassurance = {
            "class": NORMAL,
            # rounded up: rounding down could let one more diseased B-scan through
            "min_probability": math.ceil(t * 1e4) / 1e4,
            "missed_disease_target": cfg.missed_disease,
            "chosen_on": "out-of-fold decisions of every source in " + Path(cfg.data).name,
        }
        config = replace(config, reassurance=reassurance)
        report["reassurance"] = reassurance
        report["after"] = source_metrics(decisions, config, ood, cfg.outlier_label)
        provenance = dict(config.provenance or {})
        provenance["reassurance"] = step_provenance(
            "source-eval", argv, config, loaded.identity.sha256
        )
        new = replace(
            config,
            version=cfg.version or config.version,
            metrics={
                **config.metrics,
                "sources": report["after"],
                **{k: report[k] for k in ("dev_assessed", "dev_withheld") if k in report},
            },
            provenance=provenance,
        )
        save_bundle(cfg.choose_reassurance, loaded.model, new, dtype=config.weights_dtype, ood=ood)
        check_weights_unchanged(cfg.choose_reassurance, loaded.model)
    cfg.report.write_text(json.dumps(report, indent=1), encoding="utf-8")
    log.info("Per-source report: %s", json.dumps(report, indent=1))
    return cfg.report
