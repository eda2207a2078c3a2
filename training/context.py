"""What the steps of one training run share, built once by :func:`training.run._run` and passed
down instead of long lists of positional parameters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from octviewer.core.model.config import PreprocessConfig
    from training.config import TrainConfig
    from training.data.dataset import DatasetSource, Sample
    from training.data.split import Split
    from training.fit.distributed import DistInfo


@dataclass(frozen=True)
class Compute:
    """Where and in what arithmetic the run computes."""

    device: Any  # torch.device (torch loads when a run starts)
    precision: str  # fp32, bf16 or fp16: resolved, never "auto"
    dist: DistInfo  # this process among the torchrun processes


@dataclass(frozen=True)
class RunContext:
    """One training run: its options, classes, preprocessing, compute, directory and command."""

    cfg: TrainConfig
    names: tuple[str, ...]  # the class names, in output order
    pre: PreprocessConfig  # what every image goes through, stored in the bundle
    compute: Compute
    run_dir: Path
    argv: list[str] | None  # the command line (None: the Python API)
    t_start: float  # time.perf_counter() when the run began


@dataclass(frozen=True)
class RunData:
    """The labelled images of the run: where they came from, the readable ones, the split."""

    source: DatasetSource
    samples: tuple[Sample, ...]  # readable images of the training data
    split: Split
    patient_regex: str  # how patients are read from file names (also for the test set)
