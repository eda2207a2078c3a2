"""A bundle's facts as a person reads them: the one list behind ``octviewer-cli model-info``
and the app's Model card, and the one spelling of the fine-tuning command.

Read from the bundle's header only (:func:`~octviewer.core.model.header.read_bundle_config`):
no weights, no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octviewer.core.model.config import ModelConfig

#: How to turn MIRAGE foundation weights into a bundle the app runs. ``{weights}`` and
#: ``{data}`` are filled by :func:`finetune_command`; the trainer refuses a bare file name for
#: ``--init`` (the architecture prefix says how to map its keys).
FINETUNE_COMMAND = (
    "octviewer-train --init mirage-base:{weights} --data {data} --run-dir runs/mirage-base-finetune"
)


def finetune_command(
    weights: str | Path = "/path/to/model.safetensors", data: str = "/path/to/labelled_scans"
) -> str:
    return FINETUNE_COMMAND.format(weights=weights, data=data)


def _ood_text(config: ModelConfig) -> str:
    ood = config.ood or {}
    if not ood:
        return "none in this bundle (results carry a caution)"
    threshold = ood.get("threshold")
    method = ood.get("method", "score")
    if isinstance(threshold, int | float):
        return f"{method}, threshold {threshold:.3f}"
    return str(method)


def _scope_text(config: ModelConfig) -> str:
    from octviewer.core.scope import ModelScope

    scope = ModelScope.from_training_domain(config.training_domain or {})
    if not scope.is_stated:
        return "scan protocols not stated (no protocol check)"
    return f"{scope.description} (other stated protocols are not assessed)"


def model_facts(
    config: ModelConfig,
    sha256: str = "",
    path: Path | None = None,
    device: str = "",
    *,
    with_name: bool = True,
) -> list[tuple[str, str]]:
    """``(label, value)`` rows, in reading order. ``with_name=False`` leaves out the name and
    version (a card whose heading already shows them)."""
    pre = config.preprocess
    arch = config.architecture + (f" {config.arch_kwargs}" if config.arch_kwargs else "")
    rows = [("Name", config.name), ("Version", config.version)] if with_name else []
    rows += [
        ("Architecture", arch),
        ("Classes", ", ".join(config.class_names)),
        ("Input", f"{pre.size[1]}×{pre.size[0]} px, {pre.interpolation}, {pre.normalization}"),
        ("Calibration temperature", f"{config.temperature:.3f}"),
        ("Uncertain below", f"{config.confidence_threshold:.0%} confidence"),
        ("Reads", _scope_text(config)),
        ("Out-of-distribution check", _ood_text(config)),
        ("Weights", config.weights_dtype),
        ("Licence", config.licence or "not stated"),
    ]
    if sha256:
        rows.append(("SHA-256", sha256))
    if device:
        rows.append(("Device", device))
    if path is not None:
        rows.append(("File", str(path)))
    if config.description and with_name:
        rows.append(("Description", config.description))
    return rows
