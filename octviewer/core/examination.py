"""Judge the examination before the network's answer: the checks every analysed frame goes
through that do not need the network.

In order of precedence (:data:`~octviewer.core.results.FLAG_PRECEDENCE`):

1. **Protocol** (``OUT_OF_SCOPE``): the scan pattern and region the file states
   (:class:`~octviewer.core.scan.ScanProtocol`) against the ones the model's bundle says it
   reads (:class:`~octviewer.core.scope.ModelScope`): a peripapillary circle scan is not
   assessed by a model of macular B-scans, whatever its pixels look like.
2. **Image quality** (``LOW_QUALITY``): the device's own index where the file has one, and a
   device-independent check from the pixels for every reader (:mod:`octviewer.core.quality`).
3. **Anatomy** (``NOT_MACULAR``): for files that do not state their region, whether the
   B-scan cuts through the optic nerve head (:mod:`octviewer.core.anatomy`). A file that
   states its region is taken at its word.

Frames that are not OCT (``NOT_OCT``, decided at load from the pixels and the reader) get
none of these: there is nothing to grade. Each check costs a few milliseconds of NumPy per
frame and runs in the analysis worker, never on the GUI thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from octviewer.core.anatomy import AnatomyVerdict, check_anatomy
from octviewer.core.quality import QualityVerdict, assess_quality
from octviewer.core.results import ResultFlag
from octviewer.core.scan import Scan, ScanRegion
from octviewer.core.scope import ModelScope

__all__ = ["FrameFindings", "examine_frame"]


@dataclass(frozen=True)
class FrameFindings:
    """What the checks found in one frame: the flags they raise, each with its detail, and the
    verdicts of the pixel checks (None where a check did not run)."""

    flags: frozenset[ResultFlag] = frozenset()
    details: dict[ResultFlag, str] = field(default_factory=dict)
    quality: QualityVerdict | None = None
    anatomy: AnatomyVerdict | None = None


def examine_frame(scan: Scan, index: int, scope: ModelScope) -> FrameFindings:
    """The protocol, quality and anatomy findings of frame ``index`` of ``scan``."""
    md = scan.metadata
    if not md.modality.is_oct:
        return FrameFindings()
    flags: set[ResultFlag] = set()
    details: dict[ResultFlag, str] = {}
    refusal = scope.refusal(md.protocol)
    if refusal is not None:
        flags.add(ResultFlag.OUT_OF_SCOPE)
        details[ResultFlag.OUT_OF_SCOPE] = refusal
    frame = scan.frames[index]
    quality = assess_quality(frame, **_device_index(scan, index))
    if not quality.acceptable:
        flags.add(ResultFlag.LOW_QUALITY)
        details[ResultFlag.LOW_QUALITY] = _detail(quality.reason or "")
    anatomy = None
    if md.protocol.region is ScanRegion.UNKNOWN:
        anatomy = check_anatomy(frame)
        if anatomy.is_optic_disc:
            flags.add(ResultFlag.NOT_MACULAR)
            details[ResultFlag.NOT_MACULAR] = _detail(anatomy.reason)
    return FrameFindings(frozenset(flags), details, quality, anatomy)


def _device_index(scan: Scan, index: int) -> dict[str, object]:
    """The device's own quality index of frame ``index`` as keyword arguments of
    :func:`~octviewer.core.quality.assess_quality` (none when the file has no finite value)."""
    dq = scan.metadata.device_quality
    if dq is None or index >= len(dq.values) or not math.isfinite(dq.values[index]):
        return {}
    return {
        "device_index": float(dq.values[index]),
        "device_minimum": dq.minimum,
        "device_index_name": dq.name,
    }


def _detail(sentence: str) -> str:
    """A check's sentence as the detail of a flag's sentence: no leading "Image quality too
    low:" (the flag says it), no final full stop, lower case after the colon (but "RPE")."""
    text = sentence.strip().rstrip(".")
    for prefix in ("Image quality too low: ", "Not assessed: "):
        text = text.removeprefix(prefix)
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
