"""Typed results of an analysis: what the engine returns and what reports, the CLI and the UI show."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.heatmap import Heatmap
from octviewer.core.presentation import NOT_ASSESSED, NOT_EXCLUDED, normal_index

if TYPE_CHECKING:
    from octviewer.core.anatomy import AnatomyVerdict
    from octviewer.core.quality import QualityVerdict

#: Shown on every screen, report and summary that carries a model output.
RESEARCH_ONLY = "Research use only — not for diagnosis"


class ResultFlag(str, enum.Enum):
    """Reasons a result must not be read as a plain classification.

    Two flags make a frame *not assessed* (:data:`ABSTAIN_FLAGS`): no class is presented
    anywhere (window, report, CLI summary, API ``presented_class``), only the reason. The others
    qualify a class that is still shown. A frame can carry several; :data:`FLAG_PRECEDENCE`
    orders them, most serious first, and :attr:`FrameResult.reason` names the first one.
    """

    NOT_OCT = "not an OCT B-scan"
    OUT_OF_SCOPE = "scan protocol outside the model's scope"
    LOW_QUALITY = "image quality too low"
    NOT_MACULAR = "optic-nerve-head B-scan"
    OUT_OF_DISTRIBUTION = "unlike the training data"
    SCAN_NOT_ASSESSED = "the scan as a whole is not assessed"
    LOW_CONFIDENCE = "low confidence"
    DISEASE_NOT_EXCLUDED = "looks normal, disease not excluded"
    OTHER_DEVICE = "device not in the training data"
    OOD_CHECK_UNAVAILABLE = "out-of-distribution check unavailable"
    COLOR_INPUT = "colour image converted to grayscale"
    DOWNSAMPLED = "image was downsampled for safety"

    @property
    def warning(self) -> str:
        """A plain-words sentence for the UI and reports."""
        return _WARNINGS[self]

    def sentence(self, detail: str | None = None) -> str:
        """The flag's one sentence, with the frame's own ``detail`` (what exactly was found,
        e.g. "peripapillary circle scan") where the flag has one: the only place the words of a
        flag are written; window, report and CLI all show this."""
        if not detail:
            return self.warning
        template = _DETAILED.get(self)
        return template.format(detail=detail.rstrip(". ")) if template else self.warning

    @property
    def abstains(self) -> bool:
        """True when this flag withholds the class (the frame is *not assessed*)."""
        return self in ABSTAIN_FLAGS


#: Flags under which no class is presented.
ABSTAIN_FLAGS = frozenset(
    {
        ResultFlag.NOT_OCT,
        ResultFlag.OUT_OF_SCOPE,
        ResultFlag.LOW_QUALITY,
        ResultFlag.NOT_MACULAR,
        ResultFlag.OUT_OF_DISTRIBUTION,
        ResultFlag.SCAN_NOT_ASSESSED,
    }
)

#: Most serious first: the order in which flags are listed and the first names the reason.
#: What the examination is comes first (not OCT, a protocol the model does not read), then
#: whether the frame can be read at all (quality), then what the pixels show (anatomy, then
#: the feature distance), then the verdict on the scan as a whole, then the cautions.
FLAG_PRECEDENCE: tuple[ResultFlag, ...] = (
    ResultFlag.NOT_OCT,
    ResultFlag.OUT_OF_SCOPE,
    ResultFlag.LOW_QUALITY,
    ResultFlag.NOT_MACULAR,
    ResultFlag.OUT_OF_DISTRIBUTION,
    ResultFlag.SCAN_NOT_ASSESSED,
    ResultFlag.LOW_CONFIDENCE,
    ResultFlag.DISEASE_NOT_EXCLUDED,
    ResultFlag.OTHER_DEVICE,
    ResultFlag.OOD_CHECK_UNAVAILABLE,
    ResultFlag.COLOR_INPUT,
    ResultFlag.DOWNSAMPLED,
)

_WARNINGS = {
    ResultFlag.NOT_OCT: "Not assessed: this image is not an OCT B-scan (it looks like an "
    "en-face image such as an SLO/infrared, OCT-angiography or fundus photo). The model reads "
    "OCT B-scans only.",
    ResultFlag.OUT_OF_SCOPE: "Not assessed: this scan's protocol is outside what the model "
    "reads (it reads macular B-scans).",
    ResultFlag.LOW_QUALITY: "Not assessed: the image quality is too low to read this frame. "
    "Use a better frame or repeat the scan.",
    ResultFlag.NOT_MACULAR: "Not assessed: this B-scan looks like a cut through the optic "
    "nerve head, not the macula; the model reads macular B-scans.",
    ResultFlag.OUT_OF_DISTRIBUTION: "Not assessed: this image is unlike the scans the model "
    "was trained on (another device, region or scan type), so its answer cannot be trusted.",
    ResultFlag.SCAN_NOT_ASSESSED: "Not assessed: the scan as a whole is not what the model "
    "reads, so no frame of it is given a class.",
    ResultFlag.LOW_CONFIDENCE: "Uncertain: the model's confidence is below its threshold. "
    "Do not rely on this classification.",
    ResultFlag.DISEASE_NOT_EXCLUDED: "Caution: the scan looks normal to the model, but not "
    "with the confidence at which missed disease was rare when the model was tested; disease "
    "is not excluded.",
    ResultFlag.OTHER_DEVICE: "Caution: this scan comes from a device the model was not "
    "trained on; its answer may be less reliable.",
    ResultFlag.OOD_CHECK_UNAVAILABLE: "This model carries no out-of-distribution statistics: "
    "octviewer cannot tell whether the scan is like its training data.",
    ResultFlag.COLOR_INPUT: "The input was a colour image and was converted to grayscale.",
    ResultFlag.DOWNSAMPLED: "The image was very large and was downsampled before analysis.",
}


#: Sentences with the frame's own finding (``{detail}``), for flags that have one.
_DETAILED = {
    ResultFlag.OUT_OF_SCOPE: "Not assessed: {detail}.",
    ResultFlag.LOW_QUALITY: "Not assessed: image quality too low: {detail}. Use a better frame "
    "or repeat the scan.",
    ResultFlag.NOT_MACULAR: "Not assessed: {detail}; the model reads macular B-scans.",
    ResultFlag.SCAN_NOT_ASSESSED: "Not assessed: {detail}, so the scan as a whole is not "
    "assessed and no frame of it is given a class.",
}


def ordered_flags(flags: frozenset[ResultFlag] | set[ResultFlag]) -> list[ResultFlag]:
    """``flags`` in :data:`FLAG_PRECEDENCE` order (most serious first)."""
    return [f for f in FLAG_PRECEDENCE if f in flags]


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
    ``heatmap`` is the attention map of class ``cam_class`` kept at the model's resolution
    (:class:`~octviewer.core.heatmap.Heatmap`, a few hundred bytes); ``cam`` gives it on the
    *original* frame grid (rows, cols), float32 in [0, 1], upsampled on each access; both None
    when not requested. ``ood_score`` is the bundle's
    out-of-distribution score of this frame (higher = less like the training data) and
    ``ood_threshold`` the value above which the frame is flagged ``OUT_OF_DISTRIBUTION``; both
    None when the bundle carries no statistics.

    The model's raw answer (``predicted_class``, ``probabilities``, ``cam``) is always kept for
    an expert who asks (:meth:`model_output`); what is *presented* follows ``assessable``: a
    frame under an abstaining flag has ``presented_class``, ``presented_probabilities`` and
    ``presented_confidence`` None and a ``reason``.

    ``details`` holds, per flag, what exactly was found for this frame ("peripapillary circle
    scan", "the retina is cut off at the top of the frame"); ``quality`` and ``anatomy`` the
    verdicts of the pixel checks (None where they did not run: not an OCT, or the file states
    the region).
    """

    frame_index: int
    class_names: tuple[str, ...]
    probabilities: np.ndarray
    logits: np.ndarray
    flags: frozenset[ResultFlag] = frozenset()
    heatmap: Heatmap | None = None
    cam_class: int | None = None
    ood_score: float | None = None
    ood_threshold: float | None = None
    details: Mapping[ResultFlag, str] = field(default_factory=dict)
    quality: QualityVerdict | None = None
    anatomy: AnatomyVerdict | None = None

    def __post_init__(self) -> None:
        # an array given as the heatmap (a caller's own map, on the frame grid) is kept as is
        if self.heatmap is not None and not isinstance(self.heatmap, Heatmap):
            object.__setattr__(self, "heatmap", Heatmap.of_array(self.heatmap))

    @property
    def cam(self) -> np.ndarray | None:
        """The attention map on the original frame grid (rows, cols), float32 in [0, 1]; None
        without one. Computed from :attr:`heatmap` on each access: keep the array while drawing,
        keep the heatmap to store."""
        return None if self.heatmap is None else self.heatmap.full()

    @property
    def predicted_index(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def predicted_class(self) -> str:
        """The model's top class, whether or not the frame is assessable (see
        :attr:`presented_class`)."""
        return self.class_names[self.predicted_index]

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.predicted_index])

    @property
    def assessable(self) -> bool:
        """False when a flag withholds the class (:data:`ABSTAIN_FLAGS`)."""
        return not (self.flags & ABSTAIN_FLAGS)

    @property
    def presented_class(self) -> str | None:
        """The class to show a user: None when the frame is not assessed."""
        return self.predicted_class if self.assessable else None

    @property
    def presented_probabilities(self) -> np.ndarray | None:
        """The calibrated probabilities to show: None when the frame is not assessed."""
        return self.probabilities if self.assessable else None

    @property
    def presented_confidence(self) -> float | None:
        """The top probability to show: None when the frame is not assessed."""
        return self.confidence if self.assessable else None

    def model_output(self) -> np.ndarray:
        """The model's calibrated probabilities whether or not the frame is assessed: for an
        expert who asked ("Show model output anyway", ``--show-unreliable``), never a
        headline."""
        return self.probabilities

    def flag_sentence(self, flag: ResultFlag) -> str:
        """``flag``'s sentence with what was found in this frame (see :meth:`ResultFlag.sentence`)."""
        return flag.sentence(self.details.get(flag))

    @property
    def withholding_flag(self) -> ResultFlag | None:
        """The first flag (by precedence) that withholds the class; None when assessable."""
        return next((f for f in FLAG_PRECEDENCE if f in self.flags and f.abstains), None)

    @property
    def reason(self) -> str | None:
        """Why the class is withheld, one plain sentence; None when assessable."""
        flag = self.withholding_flag
        return None if flag is None else self.flag_sentence(flag)

    @property
    def reason_text(self) -> str | None:
        """:attr:`reason` without its leading "Not assessed: ", for a line under a headline
        that already says so; None when assessable."""
        r = self.reason
        if r is None:
            return None
        r = r.removeprefix(NOT_ASSESSED + ": ")
        return r[:1].upper() + r[1:]

    @property
    def ood_text(self) -> str | None:
        """``"out-of-distribution score 12.3, threshold 10"``; None without a score."""
        if self.ood_score is None:
            return None
        t = f", threshold {self.ood_threshold:.3g}" if self.ood_threshold is not None else ""
        return f"out-of-distribution score {self.ood_score:.3g}{t}"

    @property
    def cautions(self) -> list[ResultFlag]:
        """The flags to show as warnings besides the reason, most serious first: those that
        qualify a class. A second withholding flag is not repeated (the reason names the first;
        on a fundus photo "this B-scan is unlike the training data" would only confuse)."""
        return [f for f in self.ordered_flags if not f.abstains]

    @property
    def headline(self) -> str:
        """What a screen or report shows in large type: ``"CNV 92.1 %"`` or ``Not assessed``."""
        if not self.assessable:
            return NOT_ASSESSED
        if self.reassurance_withheld:
            return f"{NOT_EXCLUDED} ({self.predicted_class} {100 * self.confidence:.1f} %)"
        return f"{self.predicted_class} {100 * self.confidence:.1f} %"

    @property
    def ordered_flags(self) -> list[ResultFlag]:
        """The flags, most serious first."""
        return ordered_flags(self.flags)

    @property
    def reassurance_withheld(self) -> bool:
        """Assessed as NORMAL, but below the confidence a reassuring headline needs."""
        return self.assessable and ResultFlag.DISEASE_NOT_EXCLUDED in self.flags

    @property
    def is_flagged(self) -> bool:
        """Not assessed, assessed with low confidence, or a NORMAL that does not exclude
        disease: never shown as a plain answer."""
        return (
            not self.assessable
            or ResultFlag.LOW_CONFIDENCE in self.flags
            or self.reassurance_withheld
        )

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
    #: why the scan *as a whole* is not assessed (a volume whose frames are mostly not what
    #: the model reads, see :mod:`octviewer.core.scan_verdict`); None when it is
    scan_reason: str | None = None

    @property
    def assessed_as_whole(self) -> bool:
        """True when the scan has a headline class: some frame is assessable and the scan as
        a whole is not withheld."""
        return self.scan_reason is None and bool(self.assessable_frames)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.frames[0].class_names

    def frame(self, index: int) -> FrameResult:
        for fr in self.frames:
            if fr.frame_index == index:
                return fr
        raise KeyError(index)

    def with_cam(
        self, frame_index: int, cam: Heatmap | np.ndarray | None, cam_class: int | None
    ) -> ScanResult:
        """This result with ``cam`` (the map of class ``cam_class``: a Heatmap, or an array on
        the frame grid) as the heatmap of frame ``frame_index``; the other frames are unchanged
        (volumes are analysed without CAMs and get the shown frame's afterwards)."""
        heatmap = Heatmap.coerce(cam)
        frames = tuple(
            replace(f, heatmap=heatmap, cam_class=cam_class) if f.frame_index == frame_index else f
            for f in self.frames
        )
        return replace(self, frames=frames)

    @property
    def arithmetic(self) -> str:
        """What the network computed in: "int8", "bfloat16", "float16" or "float32" (the
        engine records it in ``extra``; results made elsewhere count as float32)."""
        if self.extra.get("quantized") == "true":
            return "int8"
        return self.extra.get("compute") or "float32"

    @property
    def computed_on(self) -> str:
        """The device, with the arithmetic when it is not full float32 (e.g. "cpu, int8")."""
        a = self.arithmetic
        return self.device if a == "float32" else f"{self.device}, {a}"

    def probability_matrix(self) -> np.ndarray:
        """(n_frames, n_classes) calibrated probabilities, in frame order."""
        return np.stack([f.probabilities for f in self.frames])

    @property
    def assessable_frames(self) -> tuple[FrameResult, ...]:
        """The frames whose class may be presented."""
        return tuple(f for f in self.frames if f.assessable)

    def most_suspicious_frame(self) -> int:
        """Among *assessable* frames, the index with the lowest probability of NORMAL
        (:func:`~octviewer.core.presentation.normal_index`; the highest confidence when the
        model has no such class). Frames that are not assessed are skipped; when none is
        assessable, the first analysed frame."""
        pool = self.assessable_frames
        if not pool:
            return self.frames[0].frame_index
        i = normal_index(self.class_names)
        if i is not None:
            best = min(pool, key=lambda f: float(f.probabilities[i]))
        else:
            best = max(pool, key=lambda f: f.confidence)
        return best.frame_index
