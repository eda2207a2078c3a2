"""The network an engine runs: the bundle loaded for the chosen arithmetic.

:func:`load_network` is the one place that turns a bundle into a ready network: float32
(autocast happens in the engine), or int8 (the static calibrated path or the dynamic Linear-only
path, :func:`~octviewer.core.model.int8_static.load_int8`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from octviewer.core.model.bundle import BundleHead, LoadedModel

log = logging.getLogger(__name__)


def load_network(
    path: Path,
    device: str,
    head: BundleHead,
    *,
    int8: bool,
    cam_target_of: Callable[[torch.nn.Module], str],
) -> tuple[LoadedModel, Any]:
    """The loaded bundle and its int8 hook (None without int8)."""
    from octviewer.core.model.bundle import load_bundle
    from octviewer.core.model.int8_static import load_int8

    if int8:
        return load_int8(path, device, head.config, cam_target_of, head)
    return load_bundle(path, device=device, head=head), None
