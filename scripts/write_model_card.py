"""Write the model card (Markdown) of a bundle from the facts stored in the bundle itself.

The card sits next to the bundle as ``<bundle>.md``: the app shows it under Model > About this
model, and the README quotes it. Every number comes from the bundle's config (metrics and
provenance written by octviewer-train), so the card cannot drift from the model.

Usage: python scripts/write_model_card.py resources/models/octviewer-demo-kermany.safetensors
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octviewer.core.model.bundle import file_sha256, read_bundle_config
from octviewer.core.model.config import ModelConfig
from training.export.card_sections import (
    dev_files_lines,
    int8_lines,
    ood_lines,
    pct,
    reassurance_lines,
    sources_lines,
    validated_lines,
)

log = logging.getLogger("write_model_card")


#: The volume rule's measured agreement with the full computation (docs/SPEED.md).
VOLUME_RULE_CHECK = (
    "the 648 Kermany images as volumes of 49 frames, the full computation ran on 88 frames "
    "(0.64x the forwards) and every frame kept the full computation's class (648/648), "
    "OUT_OF_DISTRIBUTION and LOW_CONFIDENCE decisions (0 flips, measured with version 2.2.0's "
    "OOD statistics; not yet re-measured with the L2-normalised statistics of 2.3.0)"
)


def _n_images(metrics: dict[str, Any]) -> int:
    """Labelled B-scans the model learned from (648 Kermany images before 3.0.0)."""
    return sum(r["images"] for r in (metrics.get("sources") or {}).values()) or 648


@dataclass(frozen=True)
class CardFacts:
    """What every section of the card reads: the bundle's path and configuration, with its
    metrics and provenance (empty when the bundle has none)."""

    path: Path
    cfg: ModelConfig
    metrics: dict[str, Any]
    prov: dict[str, Any]

    @property
    def split(self) -> dict[str, Any]:
        return self.prov.get("split") or {}

    @property
    def cv(self) -> bool:
        """Patient cross-validation (else one split, or none)."""
        return bool(self.split.get("cross_validation"))


def card(path: Path) -> str:
    cfg = read_bundle_config(path)
    f = CardFacts(path, cfg, cfg.metrics or {}, cfg.provenance or {})
    lines = _header_lines(f) + _data_lines(f) + _quality_lines(f)
    lines += sources_lines(cfg) + reassurance_lines(cfg) + ood_lines(cfg) + dev_files_lines(cfg)
    lines += _volume_lines(f) + int8_lines(cfg) + validated_lines(cfg)
    lines += _limits_lines(f) + _reproduce_lines(f)
    return "\n".join(lines) + "\n"


def _header_lines(f: CardFacts) -> list[str]:
    """The title, the facts table, why this architecture and the first data source."""
    path, cfg, m, cv = f.path, f.cfg, f.metrics, f.cv
    sha = file_sha256(path)
    names = cfg.class_names
    fitted_on = "the out-of-fold predictions" if cv else "the validation patients"
    weights = cfg.weights_dtype + (
        ", dequantised to float32 on load" if cfg.weights_dtype == "int8" else ""
    )
    return [
        f"# Model card: {cfg.name} {cfg.version}",
        "",
        f"**{cfg.description}**",
        "",
        "> Research use only — not for diagnosis. This is a demonstration model trained from "
        f"scratch on {_n_images(m)} public images; it is **not** MIRAGE and not a medical device.",
        "",
        "| | |",
        "|---|---|",
        f"| file | `{path.name}` ({path.stat().st_size / 1e6:.1f} MB, weights {weights}) |",
        f"| SHA-256 | `{sha}` |",
        f"| architecture | `{cfg.architecture}` |",
        f"| classes | {', '.join(names)} |",
        f"| input | {cfg.preprocess.size[1]}x{cfg.preprocess.size[0]} px, grayscale, "
        f"{cfg.preprocess.interpolation} resize (aspect not kept), per-image {cfg.preprocess.normalization} |",
        f"| calibration | temperature {cfg.temperature:.3f} (fitted on {fitted_on}) |",
        f"| flagged uncertain below | {pct(cfg.confidence_threshold)} calibrated confidence |",
        f"| Grad-CAM layer | `{cfg.cam_target_layer}` |",
        f"| licence | {cfg.licence} |",
        "",
        "## Why this architecture",
        "",
        "The shipped path should be the MIRAGE path, but MIRAGE weights cannot be downloaded here "
        "and MIRAGE-family ViTs trained from scratch on these 648 images reached only 0.63-0.77 "
        "balanced accuracy in the project's probes: a ViT without pretraining needs far more data. "
        "ResNet-18 CNNs from scratch do much better, so the demo model is an ensemble of those "
        "(`octviewer-train ensemble`, averaged logits, one Grad-CAM over all members' last feature "
        "maps). The engine, the attention maps and the reports run MIRAGE-Base/-Large bundles "
        "unchanged.",
        "",
        "## Data",
        "",
        "Kermany, Zhang, Goldbaum (2018), *Labeled Optical Coherence Tomography (OCT) and Chest "
        "X-Ray Images for Classification*, Mendeley Data v2, doi:10.17632/rscbjbr9sj, CC BY 4.0: "
        "the 648-image subset in the project's shared data (Spectralis B-scans, about 162 per "
        "class, mostly from the official test split).",
        "",
    ]


def _data_lines(f: CardFacts) -> list[str]:
    """The second data source and how the patients were split."""
    m, split, cv = f.metrics, f.split, f.cv
    lines: list[str] = []
    if m.get("sources"):
        lines += [
            "Kulyabin et al. (2024), *OCTDL: Optical Coherence Tomography Dataset for Image-Based "
            "Deep Learning Methods*, Scientific Data 11:365, CC BY 4.0: 757 B-scans of 466 "
            "patients (Optovue Avanti RTVue XR, another hospital) mapped to the four classes, and "
            "85 B-scans with findings outside them (epiretinal membrane, vein and artery "
            "occlusion, vitreomacular interface disease) used for outlier exposure (trained "
            "toward a uniform output, never as a class).",
            "",
        ]
    if cv:
        va = split.get("validation", {})
        lines += [
            f"Split **by patient**, {split.get('folds')}-fold cross-validation (seed "
            f"{split.get('seed')}): the {va.get('patients')} patients are dealt into "
            f"{split.get('folds')} folds, stratified by class. Member *k* trained on the other "
            f"folds and was scored on fold *k*, so the figures below cover all {va.get('images')} "
            "images, each predicted by the one member that never saw that patient. The shipped "
            "ensemble averages all members, so it has seen every image here: its accuracy on new "
            "patients cannot be measured on this data, and the out-of-fold figure of a single "
            "member is its conservative stand-in (an average of members is usually at least as "
            "good as one).",
            "",
        ]
    elif split:
        tr, va = split.get("train", {}), split.get("validation", {})
        lines += [
            f"Split **by patient** (seed {split.get('seed')}): training {tr.get('images')} images "
            f"of {tr.get('patients')} patients, validation {va.get('images')} images of "
            f"{va.get('patients')} patients that no member of the model saw in training.",
            "",
        ]
    return lines


def _quality_lines(f: CardFacts) -> list[str]:
    """The validation figures, the confusion matrix, the members and how they were obtained."""
    val = f.metrics.get("validation", {})
    if not val:
        return []
    lines = _figure_lines(f, val) + _matrix_and_member_lines(f, val)
    return [*lines, "", _caveat(f), ""]


def _figure_lines(f: CardFacts, val: dict[str, Any]) -> list[str]:
    """Balanced accuracy and the other validation figures."""
    names, cv, cal = f.cfg.class_names, f.cv, f.metrics.get("calibration", {})
    lines: list[str] = []
    ci = val.get("balanced_accuracy_ci95") or {}
    per_class = val.get("per_class") or {}
    recall = [per_class.get(n, {}).get("recall") for n in names]
    auroc = [per_class.get(n, {}).get("auroc_ovr") for n in names]
    lines += [
        "## Quality out of fold (patient cross-validation)"
        if cv
        else "## Quality on the validation patients",
        "",
        f"- balanced accuracy **{val.get('balanced_accuracy', 0):.3f}**"
        + (
            f" (95 % CI {ci['low']:.3f}-{ci['high']:.3f}, patient bootstrap, "
            f"{ci.get('resamples')} resamples)"
            if ci
            else ""
        ),
        f"- accuracy {val.get('accuracy', 0):.3f}, macro-F1 {val.get('macro_f1', 0):.3f}, "
        f"MCC {val.get('mcc', 0):.3f}, macro AUROC {val.get('auroc_macro_ovr') or 0:.3f}",
    ]
    plain = val.get("without_hflip_tta") or {}
    if plain:
        pci = plain.get("ci95") or {}
        lines.append(
            f"- the same without the mirrored view (test-time augmentation off): balanced "
            f"accuracy {plain['balanced_accuracy']:.3f}"
            + (f" (95 % CI {pci['low']:.3f}-{pci['high']:.3f})" if pci else "")
        )
    if any(r is not None for r in recall):
        lines.append(
            "- recall per class: "
            + ", ".join(
                f"{n} {r:.2f}" for n, r in zip(names, recall, strict=False) if r is not None
            )
        )
    if any(a is not None for a in auroc):
        lines.append(
            "- AUROC per class (one vs rest): "
            + ", ".join(f"{n} {a:.3f}" for n, a in zip(names, auroc, strict=False) if a is not None)
        )
    if cal:
        lines.append(
            f"- expected calibration error (15 bins) {cal.get('ece_before', 0):.3f} before, "
            f"{cal.get('ece_after', 0):.3f} after temperature scaling"
        )
    return lines


def _matrix_and_member_lines(f: CardFacts, val: dict[str, Any]) -> list[str]:
    """The confusion matrix, each member alone, and the stored weights' agreement."""
    names, cv, m = f.cfg.class_names, f.cv, f.metrics
    lines: list[str] = []
    cm = val.get("confusion_matrix")
    if cm:
        lines += ["", "Confusion matrix (rows: truth, columns: prediction):", ""]
        lines.append("| | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for n, row in zip(names, cm, strict=False):
            lines.append(f"| **{n}** | " + " | ".join(str(v) for v in row) + " |")
    members = m.get("members") or []
    if members:
        lines += [
            "",
            "Each member on its own held-out fold:"
            if cv
            else "Members alone (same validation patients):",
            "",
        ]
        for i, mem in enumerate(members, 1):
            mci = mem.get("ci95") or {}
            what = f" (fold {i}, {mem.get('images')} images)" if cv else ""
            lines.append(
                f"- member {i}{what}: balanced accuracy {mem['balanced_accuracy']:.3f}"
                + (f" (95 % CI {mci['low']:.3f}-{mci['high']:.3f})" if mci else "")
            )
    stored = m.get("stored_weights") or {}
    if stored:
        lines += [
            "",
            f"Stored weights ({stored['dtype']}): {stored['agreement']} of {stored['n']} "
            "validation predictions identical to the float32 ensemble (largest logit "
            f"difference {stored['max_abs_logit_diff']:.3f}).",
        ]
    return lines


def _caveat(f: CardFacts) -> str:
    """How the figures were obtained, and how far to trust them."""
    cv, prov = f.cv, f.prov
    if cv:
        return (
            "How these figures were obtained: every member is its run's **final epoch** (fixed "
            "schedule, no early stopping), so the held-out patients chose no checkpoint; the "
            "temperature was fitted on the out-of-fold predictions (it leaves a single "
            "model's predicted class unchanged). The recipe was settled on a separate "
            "single-split pilot with overlapping patients, so a small optimism remains; the "
            "project's independent evaluation on held-back Kermany patients is the real "
            "measure."
        )
    elif prov.get("member_weights") == "last":
        return (
            "How these figures were obtained: every member is its run's **final epoch** (fixed "
            "schedule, no early stopping), so the validation patients chose no checkpoint; "
            "only the temperature (which leaves the predicted class of a single model "
            "unchanged) was fitted on them. The recipe itself was settled on these same "
            "patients in a handful of pilot runs, so a small optimism remains; the "
            "project's independent evaluation on held-back Kermany patients is the real "
            "measure."
        )
    else:
        return (
            "Caveat: each member's checkpoint (best epoch) and the temperature were chosen on "
            "these same validation patients, so the figures above are somewhat optimistic; the "
            "project's independent evaluation on held-back Kermany patients is the real "
            "measure."
        )


def _volume_lines(f: CardFacts) -> list[str]:
    """How the app runs a model with a mirrored view on volumes."""
    if not f.cfg.arch_kwargs.get("hflip_tta"):
        return []
    return [
        "## How the app runs it on volumes",
        "",
        "For a volume the app first runs every frame **without the mirrored view** (half the "
        "forwards), then the full computation (both views) for each frame where the mirrored "
        "view could change the answer: top-1 minus top-2 probability below 0.3, top "
        "probability within 0.1 of the confidence threshold, out-of-distribution score above "
        "the threshold minus 1 (the mirrored view lowers the score: it averages two views), "
        "and the 3 frames least likely NORMAL. Every frame keeps its OOD score and flags. "
        f"Replayed on {VOLUME_RULE_CHECK} (`benchmarks/bench_precision.py --volume-rule`). "
        "Single B-scans and the CLI always use the full computation; on CPUs with native "
        "bf16 (AVX512-BF16/AMX) inference runs in bf16 (`--precision fp32` to opt out; "
        "docs/SPEED.md).",
        "",
    ]


def _limits_lines(f: CardFacts) -> list[str]:
    """Known limits, and the heading of the reproduction commands."""
    m, cv = f.metrics, f.cv
    devices = (
        "Two device types (Heidelberg Spectralis as exported in Kermany 2018, Optovue Avanti as "
        "exported in OCTDL)"
        if m.get("sources")
        else "One device type (Heidelberg Spectralis, as exported in Kermany 2018)"
    )
    return [
        "## Known limits",
        "",
        f"- {devices}, four classes "
        "(CNV, DME, DRUSEN, NORMAL), B-scans through the fovea. Other vendors, other diseases, "
        "peripheral B-scans, low-quality scans: the output is not meaningful.",
        f"- {_n_images(m)} training "
        "images: small. "
        + (
            "Cross-validation scores every image, but the members saw only 3/4 of the data each."
            if cv
            else "The validation set has few patients, hence the wide confidence interval."
        ),
        "- The heatmap (Grad-CAM on the last feature map, 7x7 cells) shows where the model looked, "
        "not a lesion outline.",
        "- Not MIRAGE weights: for the real foundation model, fine-tune MIRAGE with octviewer-train "
        "(README, 'Using the real MIRAGE weights').",
        "",
        "## Reproduce",
        "",
    ]


def _reproduce_lines(f: CardFacts) -> list[str]:
    """The commands that made the bundle and the code version."""
    prov = f.prov
    lines: list[str] = []
    cmds = [mem.get("command") for mem in prov.get("members", []) if mem.get("command")]
    if cmds:
        lines += ["Members:", "", "```bash", *cmds, "```", "", "Ensemble:", ""]
    lines += ["```bash", str(prov.get("command", "")), "```", ""]
    if (prov.get("ood") or {}).get("command"):
        lines += [
            "Out-of-distribution statistics:",
            "",
            "```bash",
            prov["ood"]["command"],
            "```",
            "",
        ]
    if (prov.get("int8") or {}).get("command"):
        lines += ["int8 calibration:", "", "```bash", prov["int8"]["command"], "```", ""]
    if (prov.get("validate") or {}).get("command"):
        lines += ["Arithmetic validation:", "", "```bash", prov["validate"]["command"], "```", ""]
    if prov.get("git_commit"):
        lines.append(
            f"Code: octviewer commit `{prov['git_commit']}`; versions {prov.get('versions')}."
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--out", type=Path, help="default: <bundle>.md")
    a = p.parse_args(argv)
    out = a.out or a.bundle.with_suffix(".md")
    out.write_text(card(a.bundle), encoding="utf-8")
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
