"""EnsembleConfig: every option of ``octviewer-train ensemble`` (the command line builds it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octviewer.core.ood import DEFAULT_FALSE_FLAG_RATE


@dataclass(frozen=True)
class EnsembleConfig:
    members: tuple[Path, ...]  # the member bundles, in the order given
    data: str  # the dataset the members were trained on
    run_dir: Path
    split: Path | None = None  # one member's split.csv (not for cross-validation members)
    output: Path | None = None  # default RUN_DIR/model.safetensors
    overwrite: bool = False
    name: str = "octviewer-ensemble"
    version: str = "1.0.0"
    licence: str = ""
    description: str = ""
    confidence_threshold: float = 0.5
    fp16_weights: bool = False
    int8_weights: bool = False
    hflip_tta: bool = False
    bootstrap: int = 2000  # patient resamples
    member_weights: str = "best"  # best (each bundle) or last (last.pt beside it)
    ood_false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE
    training_domain: dict[str, Any] | None = None  # default: the first member's
    batch_size: int = 32
    threads: int | None = None
    plots: bool = True

    @property
    def weights_dtype(self) -> str:
        """How the bundle stores its weights."""
        return "int8" if self.int8_weights else "float16" if self.fp16_weights else "float32"
