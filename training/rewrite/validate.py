"""``octviewer-train validate BUNDLE --data DIR [--ood PATH ...] --output OUT``: record, per
arithmetic (fp32, bf16, int8), the decisions the bundle was validated on (weights unchanged).

Every image of ``--data`` (the labelled development set) and every frame of the ``--ood`` files
(out-of-domain development files: images, DICOM, vendor volumes) is analysed by the bundle in
each arithmetic this CPU computes. Compared with fp32, per arithmetic:

- class agreement: the same top-1 class as fp32 on the development images;
- abstention agreement: the same out-of-distribution decision, each arithmetic's own score
  against the bundle's threshold (the threshold re-checked in that arithmetic, not re-fitted),
  on the development images and on the out-of-domain frames; ``abstain_flips`` counts the
  frames whose decision differs, ``near_threshold`` the fp32 scores within ``--margin`` of it.

An arithmetic passes with class and abstention agreement >= ``--min-agreement`` (99.5 %) on the
development images and no abstention flip anywhere. The record goes to ``ModelConfig.validated``
(schema: :func:`octviewer.core.model.schema.validate_validated`); the engine then runs the
fastest arithmetic that passed here (:mod:`octviewer.core.arithmetic`). An arithmetic this CPU
cannot compute (bf16 without AVX512-BF16/AMX) is recorded as not passed, with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.errors import OCTViewerError, TrainingError
from training.options import config_from
from training.rewrite.configs import ValidateConfig
from training.rewrite.step import run_step

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="octviewer-train validate",
        description="Validate a bundle's arithmetics (fp32, bf16, int8) on development data and "
        "write a new bundle with the record (weights unchanged).",
    )
    p.add_argument("bundle", type=Path, help="the bundle (.safetensors)")
    p.add_argument("--data", required=True, help="labelled development images (class folders)")
    p.add_argument("--ood", nargs="*", default=[], help="out-of-domain development files/folders")
    p.add_argument("--output", type=Path, required=True, help="where to write the new bundle")
    p.add_argument("--model-version", dest="version", help="version of the new bundle")
    p.add_argument("--min-agreement", type=float, default=0.995)
    p.add_argument("--margin", type=float, default=0.5, help="near the OOD threshold: within")
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        help="at most N development images, spread evenly over every source and class",
    )
    p.add_argument("--threads", type=int, default=0)
    return p


def main(argv: list[str]) -> int:
    return run_step(parse_config, run, argv)


def parse_config(argv: list[str]) -> ValidateConfig:
    """The command line as a typed config."""
    return config_from(build_parser().parse_args(argv), ValidateConfig)


def _engines(bundle: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The engines to compare (fp32 first) and the reasons for those not built here."""
    from octviewer.core.device import cpu_has_native_bf16
    from octviewer.core.engine import Engine

    engines = {"float32": Engine(bundle, device="cpu", precision="fp32", quantize=False)}
    skipped = {}
    if cpu_has_native_bf16():
        engines["bfloat16"] = Engine(bundle, device="cpu", precision="auto", quantize=False)
    else:
        skipped["bfloat16"] = "not measured: this CPU has no native bf16 (AVX512-BF16/AMX)"
    engines["int8"] = Engine(bundle, device="cpu", quantize=True, int8_cache="off")
    return engines, skipped


def ood_files(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    return out


def decisions(engine: Any, scans: list[Any]) -> dict[str, np.ndarray]:
    """Per frame of ``scans``: top-1 class, OOD score (NaN: none), probabilities."""
    from octviewer.core.inference import AnalysisRequest

    cls, score, probs = [], [], []
    for scan in scans:
        for f in engine.analyze(scan, AnalysisRequest(cam=False)).frames:
            cls.append(f.predicted_index)
            score.append(np.nan if f.ood_score is None else f.ood_score)
            probs.append(f.probabilities)
    return {"class": np.array(cls), "score": np.array(score), "probs": np.array(probs)}


def compare(ref: dict, got: dict, thr: float, margin: float) -> dict[str, Any]:
    """Counts of ``got``'s decisions against the fp32 ones ``ref`` (same frames)."""
    n = len(ref["class"])
    a, b = ref["score"] > thr, got["score"] > thr
    return {
        "frames": n,
        "class_agree": int((ref["class"] == got["class"]).sum()),
        "abstain_agree": int((a == b).sum()),
        "abstain_flips": int((a != b).sum()),
        "abstained": int(b.sum()),
        "near_threshold": int((np.abs(ref["score"] - thr) < margin).sum()),
        "max_ood_score_change": round(float(np.nanmax(np.abs(ref["score"] - got["score"]), initial=0)), 4),
        "max_probability_change": round(float(np.abs(ref["probs"] - got["probs"]).max(initial=0)), 4),
    }  # fmt: skip


def verdict(dev: dict[str, Any], ood: dict[str, Any], minimum: float) -> tuple[bool, str]:
    n = max(1, dev["frames"])
    ca, aa = dev["class_agree"] / n, dev["abstain_agree"] / n
    problems = []
    if ca < minimum:
        problems.append(f"class agreement {ca:.4f} < {minimum}")
    if aa < minimum:
        problems.append(f"abstention agreement {aa:.4f} < {minimum}")
    flips = dev["abstain_flips"] + ood.get("abstain_flips", 0)
    if flips:
        problems.append(f"{flips} abstention decision(s) flipped against fp32")
    if problems:
        return False, "; ".join(problems)
    return True, f"class {ca:.4f}, abstention {aa:.4f} (>= {minimum}), no abstention flip"


def load_scans(paths: list[Path]) -> list[Any]:
    from octviewer.core.io import load

    scans = []
    for p in paths:
        try:
            scans.append(load(p))
        except OCTViewerError as exc:  # e.g. a format no reader parses: not a decision
            log.warning("validate: %s skipped (%s)", p.name, exc)
    return scans


def validate(cfg: ValidateConfig, bundle: Path) -> dict[str, dict[str, Any]]:
    """The validation record of ``bundle`` (see the module docstring)."""
    from octviewer.core.arithmetic import int8_kind_here
    from training.data.dataset import discover

    engines, skipped = _engines(bundle)
    ref = engines["float32"]
    config, ood_model = ref.config, ref.ood
    if ood_model is None:
        raise TrainingError("The bundle has no out-of-distribution statistics to validate.")
    samples = sorted(
        discover(cfg.data, class_names=config.class_names).samples, key=lambda s: str(s.path)
    )
    if cfg.limit and len(samples) > cfg.limit:
        stride = len(samples) / cfg.limit
        samples = [samples[int(i * stride)] for i in range(cfg.limit)]
    dev_scans = load_scans([s.path for s in samples])
    ood_scans = load_scans(ood_files(cfg.ood))
    thr = float(ood_model.threshold)
    log.info("validating on %d images and %d out-of-domain scans", len(dev_scans), len(ood_scans))
    base = {name: (decisions(e, dev_scans), decisions(e, ood_scans)) for name, e in engines.items()}
    record: dict[str, dict[str, Any]] = {}
    for name, (dev, ood) in base.items():
        d = compare(base["float32"][0], dev, thr, cfg.margin)
        o = compare(base["float32"][1], ood, thr, cfg.margin)
        ok, why = verdict(d, o, cfg.min_agreement)
        rec = {"passed": ok, "reason": why, "images": d["frames"], "ood_files": len(ood_scans)}
        rec |= {f"dev_{k}": v for k, v in d.items() if k != "frames"}
        rec |= {f"ood_{k}": v for k, v in o.items()}
        rec["threshold"] = round(thr, 4)
        if name == "int8":
            kind, bits = int8_kind_here(config)
            if kind != engines["int8"].int8_kind:
                raise TrainingError(f"int8 was built as {engines['int8'].int8_kind}, not {kind}.")
            rec["kind"] = kind
            if bits is not None:
                rec["activation_bits"] = bits
        record[name] = rec
        log.info("validate %s: %s", name, rec)
    for name, why in skipped.items():
        record[name] = {"passed": False, "reason": why}
    return record


def run(cfg: ValidateConfig, argv: list[str]) -> Path:
    import torch

    from octviewer.core.model.bundle import load_bundle, save_bundle
    from training.rewrite.step import check_weights_unchanged, step_provenance

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    loaded = load_bundle(cfg.bundle)
    model, config = loaded.model, loaded.config
    record = validate(cfg, cfg.bundle)
    provenance = dict(config.provenance or {})
    provenance["validate"] = step_provenance(
        "validate",
        argv,
        config,
        loaded.identity.sha256,
        data=str(cfg.data),
        ood=[str(p) for p in cfg.ood],
        torch=torch.__version__.split("+")[0],
    )
    new = dataclasses.replace(
        config, version=cfg.version or config.version, provenance=provenance, validated=record
    )
    sha = save_bundle(cfg.output, model, new, dtype=config.weights_dtype, ood=loaded.ood)
    check_weights_unchanged(cfg.output, model)
    verdicts = ", ".join(
        f"{k} {'passed' if v['passed'] else 'not passed'}" for k, v in record.items()
    )
    log.info("Wrote %s (sha256 %s): %s", cfg.output, sha[:12], verdicts)
    return Path(cfg.output)
