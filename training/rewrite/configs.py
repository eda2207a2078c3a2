"""The typed configs of the commands that re-write a bundle (the command lines build them):
``octviewer-train ood``, ``int8``, ``validate`` and ``source-eval``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octviewer.core.ood import DEFAULT_FALSE_FLAG_RATE, DEFAULT_SHRINKAGE


@dataclass(frozen=True)
class OodConfig:
    """``octviewer-train ood``: fit out-of-distribution statistics for a bundle."""

    bundle: Path
    data: str  # the labelled dataset the bundle was trained on
    output: Path
    false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE
    shrinkage: float = DEFAULT_SHRINKAGE
    normalize: str = "none"  # feature normalisation: none or l2
    ood_dev: tuple[Path, ...] = ()  # out-of-domain files or folders to report detection on
    version: str | None = None  # of the new bundle (default: the old one's)
    training_domain: dict[str, Any] | None = None
    batch_size: int = 16
    threads: int = 0


@dataclass(frozen=True)
class Int8Config:
    """``octviewer-train int8``: static int8 calibration of an ensemble bundle."""

    bundle: Path
    data: str  # the labelled dataset the bundle was trained on
    output: Path
    images: int = 256  # calibration images
    check_images: int = 200  # images not used for calibration, int8 against fp32
    version: str | None = None
    batch_size: int = 16
    threads: int = 0


@dataclass(frozen=True)
class ValidateConfig:
    """``octviewer-train validate``: the per-arithmetic validation record of a bundle."""

    bundle: Path
    data: str  # labelled development images
    output: Path
    ood: tuple[str, ...] = ()  # out-of-domain development files or folders
    version: str | None = None
    min_agreement: float = 0.995
    margin: float = 0.5  # near the OOD threshold: within
    limit: int = 0  # at most this many development images (0: all)
    threads: int = 0


@dataclass(frozen=True)
class SourceEvalConfig:
    """``octviewer-train source-eval``: per-source, out-of-fold decisions of an ensemble."""

    bundle: Path
    data: str  # the CSV the members were trained on
    report: Path  # the JSON report to write
    outlier_label: str = "OTHER"
    missed_disease: float = 0.01
    choose_reassurance: Path | None = None  # write a copy with the chosen operating point
    version: str | None = None  # of that copy
    uncertain_below: float | None = None  # that copy's confidence threshold
    dev_assessed: tuple[Path, ...] = ()
    dev_withheld: tuple[Path, ...] = ()
    threads: int | None = None
