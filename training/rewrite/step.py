"""A bundle re-written by a later step (``octviewer-train ood``, ``octviewer-train int8``):
what such a step records and the check that it left the weights alone."""

from __future__ import annotations

import datetime as _dt
import logging
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from octviewer.errors import OCTViewerError, TrainingError

if TYPE_CHECKING:
    from octviewer.core.model.config import ModelConfig

log = logging.getLogger(__name__)

C = TypeVar("C")


def run_step(
    parse: Callable[[list[str]], C], run: Callable[[C, list[str]], object], argv: list[str]
) -> int:
    """A re-writing command's ``main``: parse into its typed config, log to the console, run;
    2 on a refused input."""
    cfg = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(cfg, argv)
    except OCTViewerError as exc:
        log.error("%s", exc)
        return 2
    return 0


def step_provenance(
    step: str, argv: Sequence[str], config: ModelConfig, sha256: str, **extra: Any
) -> dict[str, Any]:
    """What a re-writing step adds under ``provenance[step]``: its command, the bundle it
    started from (name, version, SHA-256), step-specific facts, the code and the date."""
    from training.export.rundir import git_commit

    return {
        "command": f"octviewer-train {step} " + shlex.join(argv),
        "from_bundle": {"name": config.name, "version": config.version, "sha256": sha256},
        **extra,
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def check_weights_unchanged(path: Path, model: Any) -> None:
    """The re-written bundle must compute what the original did."""
    import torch

    from octviewer.core.model.bundle import load_bundle

    again = load_bundle(path)
    x = torch.rand(2, 1, *again.config.preprocess.size)
    with torch.inference_mode():
        a, b = model(x), again.model(x)
    diff = float((a - b).abs().max())
    if diff > 1e-3:
        raise TrainingError(f"Re-written bundle differs from the original (max logit diff {diff}).")
    log.info("Re-written weights: max |logit diff| %.2e against the original", diff)
