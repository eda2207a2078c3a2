"""Model-card sections that read one part of a bundle's config: its out-of-distribution
check, its int8 calibration, its validated arithmetic, and what ``octviewer-train source-eval``
recorded (per-source figures out of fold, the NORMAL operating point, development files).

Used by ``scripts/write_model_card.py``; every number comes from the bundle's own config.
"""

from __future__ import annotations

from typing import Any

from octviewer.core.scope import ModelScope


def pct(x: float | None) -> str:
    """A share as the card prints it: ``12.3 %``, or ``n/a``."""
    return "n/a" if x is None else f"{100 * x:.1f} %"


def validated_lines(cfg: Any) -> list[str]:
    """The arithmetic validation record (octviewer-train validate) as a table."""
    rec: dict[str, Any] = cfg.validated or {}
    if not rec:
        return []
    lines = [
        "## Validated arithmetic\n",
        "Decisions of each arithmetic against fp32 on the development set (Kermany images and "
        "out-of-domain development files), each with the bundle's out-of-distribution threshold "
        "re-checked in that arithmetic. The app and the CLI run the fastest arithmetic that "
        "passed on the CPU at hand (`--int8`, `--no-int8`, `--precision fp32` choose).",
        "",
        "| arithmetic | verdict | class agreement | abstention agreement | abstentions flipped "
        "(dev / out-of-domain) | largest OOD score change |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rec.items():
        n, frames = r.get("images"), r.get("ood_frames")
        if n is None:
            lines.append(f"| {name} | not passed: {r.get('reason')} | | | | |")
            continue
        lines.append(
            f"| {name}{' (' + r['kind'] + ')' if r.get('kind') else ''} | "
            f"{'passed' if r.get('passed') else 'not passed: ' + str(r.get('reason'))} | "
            f"{r.get('dev_class_agree')}/{n} | {r.get('dev_abstain_agree')}/{n} dev, "
            f"{r.get('ood_abstain_agree')}/{frames} out-of-domain frames | "
            f"{r.get('dev_abstain_flips')} / {r.get('ood_abstain_flips')} | "
            f"{r.get('dev_max_ood_score_change')} / {r.get('ood_max_ood_score_change')} |"
        )
    return [*lines, ""]


def int8_lines(cfg: Any) -> list[str]:
    """One paragraph when the bundle carries a static int8 calibration (octviewer-train int8)."""
    block: dict[str, Any] = cfg.int8 or {}
    if not block:
        return []
    got = block.get("measured") or {}
    check = (
        f" Against fp32 on {got.get('images')} training images not used for the calibration: "
        f"top-1 agreement {pct(got.get('top1_agreement'))}, largest change of a probability "
        f"{got.get('max_probability_change')}."
        if got
        else ""
    )
    return [
        "## int8",
        "",
        f"With `--int8` (CPU) the members' convolutions run in int8, with activation ranges "
        f"calibrated on {block.get('images')} training images ({block.get('views')} view(s) "
        f"each) and stored in the bundle; the heads, the heatmap and the OOD score stay "
        f"float32.{check} Measured speed and agreement on all 648 images: docs/SPEED.md.",
        "",
    ]


def ood_lines(cfg: Any) -> list[str]:
    """What the out-of-distribution check is, its threshold and its measured rates."""
    ood: dict[str, Any] = (cfg.metrics or {}).get("ood") or {}
    domain = cfg.training_domain or {}
    lines = ["## Out-of-distribution check", ""]
    if domain:
        lines += [
            "Training domain (a scan whose DICOM/vendor header names another manufacturer gets "
            f"a caution): {', '.join(f'{k}: {v}' for k, v in sorted(domain.items()))}.",
            "",
        ]
    scope = ModelScope.from_training_domain(domain)
    if scope.is_stated:
        lines += [
            f"**What it reads**: {scope.description}. A scan whose file states another "
            "protocol or region (a peripapillary circle scan, a radial scan, a scan of the "
            "optic disc) is *not assessed* before any network output is shown; a scan that "
            "states nothing is judged from its pixels (image quality, optic-nerve-head anatomy, "
            "the score below). See docs/OOD.md.",
            "",
        ]
    if not ood:
        return [*lines, "This bundle carries no out-of-distribution statistics.", ""]
    lines += [
        f"Method: {ood.get('method')} (shared covariance, shrinkage {ood.get('shrinkage')}), "
        "each member's statistics from the images it trained on; the frame's score is the mean "
        "of the members' distances scaled by their held-out spread. Above the threshold "
        f"(**{ood.get('threshold', float('nan')):.3f}**) a frame is *not assessed*: no class is "
        "shown.",
        "",
        f"- Threshold chosen at a {pct(ood.get('false_flag_target'))} false-flag target on "
        f"held-out patients ({ood.get('evaluation')}).",
        f"- Measured false-flag rate on in-domain held-out scans: "
        f"**{pct(ood.get('heldout_false_flag_rate'))}** "
        f"({ood.get('heldout_false_flags')} of {ood.get('heldout_images')}).",
    ]
    dev = ood.get("development_ood_set")
    if dev:
        lines.append(
            f"- Development out-of-domain set: **{dev['flagged']} of {dev['images']}** flagged "
            "by this score alone (the pixel check that stops en-face images before the model "
            "is separate):"
        )
        lines += [
            f"  - `{r['file']}`: score {r['score']:.2f}{' (flagged)' if r['flagged'] else ''}"
            for r in dev["files"]
        ]
    return [*lines, ""]


def sources_lines(cfg: Any) -> list[str]:
    """ "Per source, out of fold": coverage, selective balanced accuracy, false reassurance."""
    sources = (cfg.metrics or {}).get("sources") or {}
    if not sources:
        return []
    lines = [
        "## Per source, out of fold",
        "",
        "Each B-scan decided as the app decides it (the out-of-distribution check, the "
        "confidence threshold, the quality and anatomy checks, the NORMAL operating point) by "
        "the member that never saw its patient (`octviewer-train source-eval`).",
        "",
        "| source | B-scans | assessed (coverage) | selective balanced accuracy | diseased "
        "headlined NORMAL without a caution |",
        "|---|---|---|---|---|",
    ]
    for name, row in sources.items():
        lines.append(
            f"| {name} | {row['images']} | {pct(row['coverage'])} | "
            f"{row['selective_balanced_accuracy'] or 0:.3f} | "
            f"{row['diseased_headlined_normal']} of {row['diseased']} "
            f"({pct(row['false_reassurance_rate'])}) |"
        )
    for name, row in sources.items():
        other = row.get("other_findings")
        if other:
            lines += [
                "",
                f"Findings outside the four classes ({name}: epiretinal membrane, vein and artery "
                f"occlusion, vitreomacular interface disease; {other['images']} B-scans): "
                f"{other['withheld']} withheld, {other['cautioned']} shown with a caution, "
                f"**{other['confident_class']} given a class with no caution**.",
            ]
    return [*lines, ""]


def reassurance_lines(cfg: Any) -> list[str]:
    """The NORMAL operating point and how it was chosen."""
    r = cfg.reassurance or {}
    if not r:
        return []
    return [
        "## When NORMAL is a reassurance",
        "",
        f"A {r['class']} headline needs a calibrated probability of at least "
        f'**{pct(r["min_probability"])}**; below it the app says "Looks normal — disease not '
        'excluded" in amber. The point was chosen on '
        f"{r.get('chosen_on', 'out-of-fold decisions')} so that at most "
        f"{pct(r.get('missed_disease_target'))} of each source's diseased B-scans are "
        "headlined NORMAL without a caution.",
        "",
    ]


def dev_files_lines(cfg: Any) -> list[str]:
    """The development files the model should assess (raw .vol line scans) or withhold."""
    m = cfg.metrics or {}
    lines: list[str] = []
    for key, what in (
        ("dev_assessed", "Development files it should assess (raw Spectralis `.vol` line scans)"),
        ("dev_withheld", "Development files it should withhold (out of domain, not OCT)"),
    ):
        dev = m.get(key)
        if not dev:
            continue
        lines += [f"{what}: **{dev['assessed']} of {dev['files']} assessed**.", ""]
        lines += [
            f"- `{r['file']}`: {r.get('headline') or r.get('why')}"
            + (f" (OOD score {r['ood_score']})" if r.get("ood_score") is not None else "")
            for r in dev["rows"]
        ]
        lines.append("")
    return ["## Development files", "", *lines] if lines else []
