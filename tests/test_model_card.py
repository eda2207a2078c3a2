"""The model facts and the fine-tuning command: one home, read by the CLI and the app."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from octviewer.core.model.card import finetune_command, model_facts
from octviewer.core.model.header import FINETUNE_HINT, read_bundle_config

try:
    from helpers_models import make_tiny_bundle
except ImportError:  # run as tests.test_model_card
    from tests.helpers_models import make_tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def test_finetune_command_is_one_the_trainer_accepts(tmp_path: Path) -> None:
    from training.cli import parse_config

    cfg = parse_config(shlex.split(finetune_command(tmp_path / "w.safetensors", str(tmp_path)))[1:])
    assert cfg.init == f"mirage-base:{tmp_path / 'w.safetensors'}"


def test_bundle_hint_names_the_same_command() -> None:
    # the hint once told users `--init MIRAGE-Base.safetensors`, which the trainer refuses
    spelled = re.search(r"`([^`]+)`", FINETUNE_HINT).group(1)
    assert spelled == finetune_command("model.safetensors", "labelled_scans/")


def test_model_facts_state_what_the_bundle_says(bundle: Path) -> None:
    cfg = read_bundle_config(bundle)
    facts = dict(model_facts(cfg, "abc123", bundle, "cpu"))
    assert facts["Name"] == cfg.name and facts["Version"] == cfg.version
    assert facts["Classes"] == ", ".join(cfg.class_names)
    assert facts["SHA-256"] == "abc123" and facts["Device"] == "cpu"
    assert facts["File"] == str(bundle)
    assert (
        "none in this bundle" in facts["Out-of-distribution check"]
        or "threshold" in (facts["Out-of-distribution check"])
    )
    short = dict(model_facts(cfg, with_name=False))
    assert "Name" not in short and "SHA-256" not in short and "Classes" in short


def test_cli_and_card_show_the_same_facts(bundle: Path, capsys: pytest.CaptureFixture) -> None:
    from octviewer.cli import main
    from octviewer.ui.dialogs import model_card_html

    pytest.importorskip("PySide6")
    assert main(["model-info", "--model", str(bundle)]) == 0
    text = capsys.readouterr().out
    card = model_card_html(read_bundle_config(bundle), "", bundle)
    for label, value in model_facts(read_bundle_config(bundle), with_name=False):
        assert f"{label}:" in text and value in text
        assert label in card
