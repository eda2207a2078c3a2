"""Typed results of an analysis: what the engine returns and what reports, the CLI and the UI show."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

#: Shown on every screen, report and summary that carries a model output.
RESEARCH_ONLY = "Research use only — not for diagnosis"


class ResultFlag(str, enum.Enum):
    """Reasons a result must not be read as a plain classification."""

    NOT_OCT = "not an OCT B-scan"
    LOW_CONFIDENCE = "low confidence"
    COLOR_INPUT = "colour image converted to grayscale"
    DOWNSAMPLED = "image was downsampled for safety"

    @property
    def warning(self) -> str:
        """A plain-words sentence for the UI and reports."""
        return _WARNINGS[self]


_WARNINGS = {
    ResultFlag.NOT_OCT: "This image does not look like an OCT B-scan (e.g. a fundus/SLO or colour "
    "photo). The model was trained on OCT B-scans only: its output here is meaningless.",
    ResultFlag.LOW_CONFIDENCE: "Uncertain: the model's confidence is below its threshold. "
    "Do not rely on this classification.",
    ResultFlag.COLOR_INPUT: "The input was a colour image and was converted to grayscale.",
    ResultFlag.DOWNSAMPLED: "The image was very large and was downsampled before analysis.",
}


@dataclass(frozen=True)
class ModelIdentity:
    """Which model produced a result. ``sha256`` is the hash of the bundle file."""

    name: str
    version: str
    sha256: str
    architecture: str
    licence: str = ""

    @property
    def short_sha(self) -> str:
        return self.sha256[:12]

    def __str__(self) -> str:
        return f"{self.name} {self.version} (sha256 {self.short_sha})"


@dataclass(frozen=True)
class FrameResult:
    """The model's answer for one B-scan.

    ``probabilities`` are calibrated (temperature-scaled softmax), shape ``(n_classes,)``.
    ``cam`` is an attention map on the *original* frame grid (rows, cols), float32 in [0, 1],
    for class ``cam_class``; None when not requested.
    """

    frame_index: int
    class_names: tuple[str, ...]
    probabilities: np.ndarray
    logits: np.ndarray
    flags: frozenset[ResultFlag] = frozenset()
    cam: np.ndarray | None = None
    cam_class: int | None = None

    @property
    def predicted_index(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def predicted_class(self) -> str:
        return self.class_names[self.predicted_index]

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.predicted_index])

    @property
    def is_flagged(self) -> bool:
        return bool(self.flags & {ResultFlag.NOT_OCT, ResultFlag.LOW_CONFIDENCE})

    def probability_of(self, class_name: str) -> float:
        return float(self.probabilities[self.class_names.index(class_name)])


@dataclass(frozen=True)
class ScanResult:
    """Results for every analysed frame of one scan."""

    frames: tuple[FrameResult, ...]
    model: ModelIdentity
    device: str
    elapsed_s: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.frames[0].class_names

    def frame(self, index: int) -> FrameResult:
        for fr in self.frames:
            if fr.frame_index == index:
                return fr
        raise KeyError(index)

    def probability_matrix(self) -> np.ndarray:
        """(n_frames, n_classes) calibrated probabilities, in frame order."""
        return np.stack([f.probabilities for f in self.frames])

    def most_suspicious_frame(self, normal_class: str = "NORMAL") -> int:
        """Frame index with the lowest probability of ``normal_class`` (or the highest
        confidence when the model has no such class)."""
        if normal_class in self.class_names:
            i = self.class_names.index(normal_class)
            best = min(self.frames, key=lambda f: float(f.probabilities[i]))
        else:
            best = max(self.frames, key=lambda f: f.confidence)
        return best.frame_index
