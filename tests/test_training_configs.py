"""The training commands' typed configs: each argument parser builds a frozen dataclass, and no
code below the parsers takes an ``argparse.Namespace``."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _namespace_parameters() -> list[str]:
    """``module:function`` for every function of ``training/`` with a Namespace parameter."""
    found = []
    for path in sorted((ROOT / "training").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                if any(a.annotation and "Namespace" in ast.unparse(a.annotation) for a in args):
                    found.append(f"{path.relative_to(ROOT).as_posix()}:{node.name}")
    return found


def test_only_the_parser_layer_sees_a_namespace() -> None:
    assert _namespace_parameters() == ["training/options.py:config_from"]


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("training.ensemble.command", ["a.safetensors", "b.safetensors", "--data", "d",
                                       "--run-dir", "r", "--training-domain", '{"x": 1}']),
        ("training.rewrite.add_ood", ["b.safetensors", "--data", "d", "--output", "o",
                                      "--ood-dev", "x", "y"]),
        ("training.rewrite.add_int8", ["b.safetensors", "--data", "d", "--output", "o"]),
        ("training.rewrite.validate", ["b.safetensors", "--data", "d", "--output", "o",
                                       "--ood", "x"]),
        ("training.rewrite.source_eval", ["b.safetensors", "--data", "d", "--report", "r.json",
                                          "--dev-withheld", "x"]),
    ],
)  # fmt: skip
def test_each_command_parses_into_a_frozen_config(module: str, argv: list[str]) -> None:
    import importlib

    cfg = importlib.import_module(module).parse_config(argv)
    assert dataclasses.is_dataclass(cfg)
    for f in dataclasses.fields(cfg):
        assert not isinstance(getattr(cfg, f.name), list), f.name  # lists become tuples
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data = "other"  # type: ignore[misc]


def test_the_ensemble_config_keeps_the_options() -> None:
    from training.ensemble.command import parse_config

    argv = ["a.safetensors", "b.safetensors", "--data", "d", "--run-dir", "r", "--int8-weights"]
    cfg = parse_config([*argv, "--model-version", "2.0.0", "--no-plots", "--bootstrap", "7"])
    assert cfg.members == (Path("a.safetensors"), Path("b.safetensors"))
    assert (cfg.version, cfg.plots, cfg.bootstrap, cfg.weights_dtype) == ("2.0.0", False, 7, "int8")
    assert cfg.run_dir == Path("r") and cfg.split is None and cfg.threads is None
