"""The NORMAL operating point: a NORMAL below it is headlined "looks normal — disease not
excluded" (amber, a caution), never a green reassurance; the bundle field round-trips; the
out-of-fold chooser keeps missed disease at or under its target per source."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from octviewer.core.inference import result_flags
from octviewer.core.model.config import ModelConfig
from octviewer.core.model.schema import SchemaError, validate_config
from octviewer.core.presentation import NOT_EXCLUDED
from octviewer.core.results import FrameResult, ResultFlag
from octviewer.core.scan import Modality, Scan, ScanMetadata
from tests.helpers_models import tiny_config

NAMES = ("CNV", "DME", "DRUSEN", "NORMAL")
OPERATING_POINT = {"class": "NORMAL", "min_probability": 0.9, "missed_disease_target": 0.01}


def _scan() -> Scan:
    md = ScanMetadata(source_paths=(Path("x.png"),), format="PNG", modality=Modality.OCT_BSCAN)
    return Scan(frames=np.zeros((1, 8, 8), np.uint8), metadata=md)


def _frame(probs: list[float], config: ModelConfig) -> FrameResult:
    p = np.array(probs, dtype=np.float32)
    flags = result_flags(_scan(), p, 0.0, config, None) - {ResultFlag.OOD_CHECK_UNAVAILABLE}
    return FrameResult(
        frame_index=0, class_names=NAMES, probabilities=p, logits=np.log(p), flags=flags
    )


def test_a_borderline_normal_gets_the_caution_and_the_amber_headline() -> None:
    config = tiny_config(reassurance=OPERATING_POINT)
    fr = _frame([0.05, 0.05, 0.05, 0.85], config)
    assert ResultFlag.DISEASE_NOT_EXCLUDED in fr.flags
    assert fr.assessable and fr.reassurance_withheld and fr.is_flagged
    assert fr.headline.startswith(NOT_EXCLUDED)
    assert "disease is not excluded" in fr.flag_sentence(ResultFlag.DISEASE_NOT_EXCLUDED)


def test_a_confident_normal_and_any_disease_are_plain_headlines() -> None:
    config = tiny_config(reassurance=OPERATING_POINT)
    normal = _frame([0.02, 0.02, 0.01, 0.95], config)
    cnv = _frame([0.6, 0.2, 0.1, 0.1], config)
    for fr in (normal, cnv):
        assert ResultFlag.DISEASE_NOT_EXCLUDED not in fr.flags and not fr.is_flagged
    assert normal.headline == "NORMAL 95.0 %"


def test_without_an_operating_point_nothing_changes() -> None:
    fr = _frame([0.05, 0.05, 0.05, 0.85], tiny_config())
    assert not fr.reassurance_withheld and fr.headline == "NORMAL 85.0 %"


def test_the_operating_point_round_trips_and_is_checked() -> None:
    config = tiny_config(reassurance=OPERATING_POINT)
    again = ModelConfig.from_dict(config.to_dict())
    assert again.reassurance == OPERATING_POINT
    with pytest.raises(SchemaError, match=r"reassurance\.class"):
        validate_config(
            {**config.to_dict(), "reassurance": {"class": "HEALTHY", "min_probability": 0.5}}
        )
    with pytest.raises(SchemaError, match="min_probability"):
        validate_config(
            {**config.to_dict(), "reassurance": {"class": "NORMAL", "min_probability": 2}}
        )


def test_the_report_headline_is_amber_and_says_disease_not_excluded() -> None:
    from octviewer.core.presentation import NOT_EXCLUDED_RGB
    from octviewer.core.report.render import render_report
    from octviewer.core.results import ModelIdentity, ScanResult

    config = tiny_config(reassurance=OPERATING_POINT)
    borderline = _frame([0.05, 0.05, 0.05, 0.85], config)
    confident = _frame([0.02, 0.02, 0.01, 0.95], config)
    model = ModelIdentity(name="tiny", version="0", sha256="0" * 64, architecture="tiny")

    def amber_pixels(fr: FrameResult) -> int:
        result = ScanResult(frames=(fr,), model=model, device="cpu", elapsed_s=0.0)
        img = render_report(_scan(), result).convert("RGB")
        return sum(n for n, c in img.getcolors(1 << 22) if c == NOT_EXCLUDED_RGB)

    assert amber_pixels(borderline) > amber_pixels(confident) + 200


def test_the_chooser_keeps_missed_disease_at_the_target_per_source() -> None:
    from training.rewrite.source_eval import Decision, choose_reassurance

    rng = np.random.default_rng(0)
    decisions = []
    for source in ("a", "b"):
        for i in range(200):
            diseased = i % 2 == 0
            p_normal = rng.uniform(0.5, 0.9) if diseased else rng.uniform(0.6, 1.0)
            rest = (1 - p_normal) / 3
            probs = np.array([rest, rest, rest, p_normal])
            label = "CNV" if diseased else "NORMAL"
            decisions.append(Decision(source, label, probs, 0.0, frozenset()))
    config = tiny_config()
    t = choose_reassurance(decisions, config, None, 0.01)
    for source in ("a", "b"):
        missed = [
            d
            for d in decisions
            if d.source == source and d.label != "NORMAL" and d.probabilities[3] >= t
        ]
        assert len(missed) <= 0.01 * 100
    assert 0.85 <= t <= 0.9
    flagged = replace(config, reassurance={"class": "NORMAL", "min_probability": t})
    assert result_flags(_scan(), decisions[0].probabilities, 0.0, flagged, None)


def test_the_model_card_states_sources_reassurance_and_dev_files() -> None:
    from training.export.card_sections import dev_files_lines, reassurance_lines, sources_lines

    row = {
        "images": 757,
        "coverage": 0.95,
        "selective_balanced_accuracy": 0.91,
        "diseased": 559,
        "diseased_headlined_normal": 4,
        "false_reassurance_rate": 4 / 559,
        "other_findings": {"images": 85, "withheld": 30, "cautioned": 40, "confident_class": 15},
    }
    dev = {
        "files": 3,
        "assessed": 3,
        "rows": [
            {"file": "a.vol", "assessed": True, "headline": "NORMAL 99.0 %", "ood_score": 1.2}
        ],
    }
    config = tiny_config(
        reassurance=OPERATING_POINT,
        metrics={"sources": {"octdl": row}, "dev_assessed": dev},
    )
    text = "\n".join(sources_lines(config) + reassurance_lines(config) + dev_files_lines(config))
    assert "| octdl | 757 | 95.0 % | 0.910 | 4 of 559 (0.7 %) |" in text
    assert "**15 given a class with no caution**" in text
    assert "at least **90.0 %**" in text
    assert "3 of 3 assessed" in text and "`a.vol`: NORMAL 99.0 % (OOD score 1.2)" in text
    assert sources_lines(tiny_config()) == [] and reassurance_lines(tiny_config()) == []
