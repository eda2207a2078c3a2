"""Checks a bundle must pass before it runs: its tensors' names and shapes against the
network, the input size against a meta forward pass, and every weight's values."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from octviewer.core.model.architectures import BUILD_ERRORS
from octviewer.core.model.config import ModelConfig
from octviewer.core.model.header import FINETUNE_HINT, looks_like_mirage
from octviewer.errors import ModelFormatError, ModelMismatchError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def check_state(
    shapes: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[int, ...]],
    config: ModelConfig,
    p: Path,
) -> None:
    """Names and shapes of the file's tensors (from its header) against the network's."""
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        if missing and looks_like_mirage(unexpected):
            raise ModelFormatError(FINETUNE_HINT, path=p)
        raise ModelMismatchError(
            f"The weights in this bundle do not fit its declared architecture "
            f"'{config.architecture}' ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"e.g. {(missing or unexpected)[:3]}). The bundle is damaged or was edited: "
            "re-create it with octviewer-train.",
            path=p,
        )
    for k, ref in expected.items():
        got = shapes[k]
        if got != ref:
            head_like = k.split(".")[0] in ("head", "fc", "classifier") or k.startswith("head.")
            if head_like and got and got[0] != config.num_classes:
                raise ModelMismatchError(
                    f"The bundle declares {config.num_classes} classes "
                    f"({', '.join(config.class_names)}) but its classifier has {got[0]} outputs. "
                    "The bundle is inconsistent: re-create it with octviewer-train.",
                    path=p,
                )
            raise ModelMismatchError(
                f"The weights in this bundle do not fit its declared architecture "
                f"'{config.architecture}': '{k}' has shape {got}, expected {ref}. "
                "Re-create the bundle with octviewer-train.",
                path=p,
            )


def check_input_size(model: torch.nn.Module, config: ModelConfig, p: Path) -> None:
    """One forward pass on the ``meta`` device (shapes only, no memory, no arithmetic) with the
    input size the bundle's preprocessing produces: the network must accept it and give one
    logit per class. Catches a ``preprocess.size`` that the network cannot take at load time,
    instead of at the first analysis."""
    import torch

    rows, cols = config.preprocess.size
    try:
        with torch.inference_mode(), torch.device("meta"):  # constants made in forward too
            out = model(torch.empty((1, 1, rows, cols)))
    except NotImplementedError:  # an operation without a meta kernel: checked at analysis
        log.debug("meta forward of %s not possible; input size not checked", config.architecture)
        return
    except BUILD_ERRORS as exc:
        raise ModelMismatchError(
            f"The network '{config.architecture}' does not accept the {rows}x{cols} input its "
            f"bundle's preprocessing produces ({type(exc).__name__}: {str(exc)[:200]}). "
            "The bundle is inconsistent: re-create it with octviewer-train.",
            path=p,
        ) from exc
    if tuple(getattr(out, "shape", ())) != (1, config.num_classes):
        raise ModelMismatchError(
            f"The network '{config.architecture}' gives outputs of shape "
            f"{tuple(getattr(out, 'shape', ()))} for one image, not one per class "
            f"({config.num_classes}). Re-create the bundle with octviewer-train.",
            path=p,
        )


def unreadable(p: Path, exc: BaseException) -> ModelFormatError:
    return ModelFormatError(
        f"The weights in the model bundle could not be read ({exc}). The file is damaged: "
        "copy it again or re-create it with octviewer-train.",
        path=p,
    )


#: Largest weight magnitude accepted. Trained weights, norms and running statistics of
#: networks fed [0, 1] images stay far below; a flipped exponent bit gives about 1e38.
MAX_WEIGHT = 1e8


def check_values(t: torch.Tensor, name: str, p: Path) -> None:
    """A damaged bundle is refused, not run: NaN/Inf or absurd magnitudes in a weight."""
    import torch

    if not t.is_floating_point() or t.numel() == 0:
        return
    if not bool(torch.isfinite(t).all()):
        problem = "values that are not numbers (NaN or infinite"
    elif float(t.abs().max()) > MAX_WEIGHT:
        problem = f"absurdly large values (above {MAX_WEIGHT:g}"
    else:
        return
    raise ModelFormatError(
        f"The weights in the model bundle contain {problem}, in '{name}'): the file is "
        "damaged. Copy it again or re-create it with octviewer-train.",
        path=p,
    )
