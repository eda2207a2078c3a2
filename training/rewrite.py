"""A bundle re-written by a later step (``octviewer-train ood``, ``octviewer-train int8``):
what such a step records and the check that it left the weights alone."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from octviewer.errors import TrainingError

log = logging.getLogger(__name__)


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
