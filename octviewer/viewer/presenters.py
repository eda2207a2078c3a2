"""The viewer's words, without Qt: what the side list, the result panel, the volume bar and the
status bar say about an entry, a scan, a result and the model.

Functions of plain data in, text out, so the wording can be read and tested in one place. The
panel's scan facts keep their own wording (``pixel 3.9 × 3.9 µm``); the report states the same
facts in its own (``core/report/facts.py``), and converging the two is a separate change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from octviewer.core.presentation import frame_number, frame_text
from octviewer.viewer.entry import EntryStatus
from octviewer.viewer.session import ModelState

if TYPE_CHECKING:
    from pathlib import Path

    from octviewer.core.results import FrameResult, ModelIdentity, ScanResult
    from octviewer.core.scan import Scan
    from octviewer.viewer.entry import ScanEntry

NO_MODEL_TEXT = "No model loaded — File > Load model…"
NO_SCAN_TEXT = "Open a scan to see the model's answer."
WAITING_FOR_MODEL_TEXT = "Waiting for the model to load…"
CANCELLED_TEXT = "Analysis cancelled. Analysis > Analyse again (Ctrl+R) to run it."
SCAN_NOT_ASSESSED_CAPTION = "the scan as a whole is not assessed: no frame is the most suspicious"
NONE_ASSESSABLE = "No frame of this volume is assessed, so none is the most suspicious."
REREADING_TEXT = "Reading the scan again…"
SUSPICIOUS_TIP = (
    "Show the frame with the lowest probability of NORMAL; frames that are not assessed "
    "(not a B-scan, unlike the training data) are skipped"
)


def entry_summary(entry: ScanEntry) -> str:
    """One line for the side list: status, or the answer when done."""
    if entry.status is EntryStatus.DONE and entry.result is not None:
        if entry.is_volume:
            n = len(entry.result.frames)
            if not entry.result.assessed_as_whole:
                return f"not assessed as a whole ({n} frames)"
            fr = entry.result.frame(entry.result.most_suspicious_frame())
            skipped = n - len(entry.result.assessable_frames)
            more = f"; {skipped} not assessed" if skipped else ""
            return f"{fr.predicted_class} {fr.confidence:.0%} (most suspicious of {n} frames{more})"
        fr = entry.result.frames[0]
        if not fr.assessable:
            return f"not assessed: {next(f for f in fr.ordered_flags if f.abstains).value}"
        warn = " ⚠" if fr.is_flagged else ""
        return f"{fr.predicted_class} {fr.confidence:.0%}{warn}"
    if entry.status is EntryStatus.ANALYSING and entry.progress[1] > 1:
        return f"Analysing… {entry.progress[0]}/{entry.progress[1]}"
    return entry.status.value


def result_placeholder(entry: ScanEntry | None, frame: int, model_state: ModelState) -> str | None:
    """What the result panel says instead of an answer; None when ``frame`` has a result."""
    if entry is None:
        return NO_SCAN_TEXT
    if entry.released:
        if entry.reread_error:
            return (
                f"Could not read this scan again: {entry.reread_error}\n\nIts result is kept "
                "in the list; put the file back where it was and show it again."
            )
        return REREADING_TEXT
    if entry.scan is None:
        if entry.status is EntryStatus.FAILED:
            return f"Could not open this file.\n\n{entry.error or ''}"
        return entry.status.value
    if entry.result is None:
        texts = {
            EntryStatus.WAITING: WAITING_FOR_MODEL_TEXT
            if model_state is ModelState.LOADING
            else NO_MODEL_TEXT,
            EntryStatus.CANCELLED: CANCELLED_TEXT,
            EntryStatus.ANALYSIS_FAILED: f"Analysis failed.\n\n{entry.error or ''}",
        }
        return texts.get(entry.status, entry_summary(entry))
    try:
        entry.result.frame(frame)
    except KeyError:
        return f"{frame_text(frame, word='Frame')} was not analysed."
    return None


def volume_caption(scan: Scan, result: ScanResult, frame: int) -> str:
    """Under a volume frame's answer: which frame, and the most suspicious one."""
    if not scan.is_volume:
        return ""
    text = frame_text(frame, scan.n_frames) + "\n"
    low = sum(not f.quality.acceptable for f in result.frames if f.quality is not None)
    if low:
        text += f"{low} of {len(result.frames)} frames below image quality\n"
    if result.scan_reason:
        return text + SCAN_NOT_ASSESSED_CAPTION
    if result.assessable_frames:
        ms = result.most_suspicious_frame()
        return text + f"most suspicious: {frame_text(ms)} ({result.frame(ms).headline})"
    return text + NONE_ASSESSABLE


def frame_label(frame: int, n_frames: int) -> str:
    return f"Frame {frame_number(frame)} / {n_frames}"


def scan_facts(scan: Scan, frame: FrameResult | None = None) -> str:
    """The side panel's scan facts: format, size, pixel spacing, eye, device, date, the
    protocol the file states, the image quality of the frame on screen (when analysed), notes."""
    md = scan.metadata
    rows, cols = scan.shape
    lines = [
        f"{md.format} · {md.modality.value}",
        f"{cols} × {rows} px" + (f" × {scan.n_frames} frames" if scan.is_volume else ""),
    ]
    if md.spacing is not None:
        lines.append(
            f"pixel {md.spacing.col * 1000:.1f} × {md.spacing.row * 1000:.1f} µm"
            if md.spacing.unit == "mm"
            else f"pixel {md.spacing.col} × {md.spacing.row} {md.spacing.unit}"
        )
    if md.laterality.value != "unknown":
        lines.append(f"eye: {md.laterality.value}")
    dev = " ".join(x for x in (md.manufacturer, md.device_model) if x)
    if dev:
        lines.append(dev)
    if md.acquisition_date:
        lines.append(f"acquired {md.acquisition_date.isoformat()}")
    if md.protocol.is_stated:
        lines.append(f"protocol: {md.protocol.description}")
    if frame is not None and frame.quality is not None:
        lines.append(f"image quality: {frame.quality.summary}")
    lines.extend(md.notes)
    return "\n".join(lines)


def unexpected_error_text(exc: BaseException) -> str:
    """An error dialog's message for a failure that is not an OCTViewerError (a bug)."""
    return (
        f"An unexpected error occurred ({type(exc).__name__}: {exc}). The details are in "
        "the log file (Help > Show log folder). Other scans are not affected."
    )


def model_not_found_text(bundle: Path) -> str:
    return f"The model file {bundle} does not exist. Choose another with File > Load model…."


def model_status(identity: ModelIdentity) -> str:
    """The status bar's model text once a model is ready."""
    return f"Model: {identity.name} {identity.version} · sha256 {identity.short_sha}"


def compute_label(device: str, compute_dtype: str, quantized: bool) -> str:
    """Where and in what the model computes, as results state it (``ScanResult.computed_on``):
    "cpu", "cpu, bfloat16", "cpu, int8"."""
    arithmetic = "int8" if quantized else compute_dtype
    return device if arithmetic == "float32" else f"{device}, {arithmetic}"


def model_loading(bundle_name: str) -> str:
    return f"Loading model {bundle_name}…"


def model_facts(identity: ModelIdentity | None, device: str = "", extra: str = "") -> str:
    """The side panel's model facts; ``extra`` (or the no-model text) without a model."""
    if identity is None:
        return extra or NO_MODEL_TEXT
    lines = [
        f"{identity.name} {identity.version}",
        f"sha256 {identity.short_sha}",
        identity.architecture,
    ]
    if device:
        lines.append(f"device: {device}")
    if identity.licence:
        lines.append(f"licence: {identity.licence}")
    return "\n".join(lines)
