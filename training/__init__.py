"""octviewer-train: fine-tune MIRAGE (or another timm network) on labelled OCT B-scans and
write the model bundle the viewer runs. See docs/TRAINING.md.

Importing this package is cheap; torch and timm load when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.run import RunResult

__all__ = ["TrainConfig", "run_training"]


def run_training(cfg: TrainConfig, **kwargs: Any) -> RunResult:
    """Run one training as ``cfg`` says; see :func:`training.run.run_training`."""
    from training.run import run_training as _run

    return _run(cfg, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from training.config import TrainConfig

        return TrainConfig
    raise AttributeError(name)
