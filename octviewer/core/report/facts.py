"""The facts of a report: the file name shown (identity redacted), the frame, the scan
metadata rows, and the machine-readable record stored in the PNG text chunks."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from octviewer._version import __version__
from octviewer.core.presentation import frame_number, frame_numbers, frame_text
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
from octviewer.core.results import FrameResult, ScanResult
from octviewer.core.scan import Laterality, PatientIdentity, Scan, ScanMetadata
from octviewer.errors import ReportError

REDACTED = "[redacted]"


def redact(s: str, identity: PatientIdentity) -> str:
    """``s`` with the patient's name parts and ID replaced by ``[redacted]`` (case-insensitive)."""
    tokens: list[str] = []
    if identity.patient_id:
        tokens.append(identity.patient_id.strip())
    if identity.name:
        tokens.extend(t for t in identity.name.replace("^", " ").replace(",", " ").split())
    out = s
    for tok in sorted({t for t in tokens if len(t) >= 3}, key=len, reverse=True):
        idx = out.lower().find(tok.lower())
        while idx >= 0:
            out = out[:idx] + REDACTED + out[idx + len(tok) :]
            idx = out.lower().find(tok.lower(), idx + len(REDACTED))
    return out


def source_label(scan: Scan, *, include_identity: bool = False) -> str:
    """The file name shown in reports and summaries (identity blanked unless asked for)."""
    name = scan.metadata.display_name
    return name if include_identity else redact(name, scan.identity)


def choose_frame(result: ScanResult, frame_index: int | None) -> FrameResult:
    """The frame a report shows: ``frame_index``, or the most suspicious analysed frame."""
    if not result.frames:
        raise ReportError("There is no analysis result to report. Analyse the scan first.")
    if frame_index is None:
        frame_index = result.most_suspicious_frame()
    try:
        return result.frame(frame_index)
    except KeyError:
        done = frame_numbers(f.frame_index for f in result.frames[:10])
        raise ReportError(
            f"{frame_text(frame_index, word='Frame')} was not analysed (analysed frames: {done}"
            f"{', ...' if len(result.frames) > 10 else ''}). Analyse that frame first."
        ) from None


def _spacing_text(meta: ScanMetadata) -> str | None:
    sp = meta.spacing
    if sp is None:
        return None
    if not meta.modality.is_oct:  # an en-face image has no axial direction, no B-scans
        if sp.unit == "mm":
            return f"{sp.col * 1000:.2f} × {sp.row * 1000:.2f} µm per pixel"
        return f"{sp.col:g} × {sp.row:g} {sp.unit} per pixel"
    if sp.unit == "mm":
        s = f"{sp.row * 1000:.2f} µm axial × {sp.col * 1000:.2f} µm lateral"
        if sp.frame:
            s += f", {sp.frame * 1000:.0f} µm between B-scans"
        return s
    s = f"{sp.row:g} × {sp.col:g} {sp.unit}"
    return s + (f", {sp.frame:g} {sp.unit} between B-scans" if sp.frame else "")


def metadata_rows(scan: Scan, frame_index: int) -> list[tuple[str, str]]:
    """Non-identifying scan facts as (label, value) rows."""
    m = scan.metadata
    eye = {Laterality.RIGHT: "OD (right eye)", Laterality.LEFT: "OS (left eye)"}.get(
        m.laterality, "not recorded"
    )
    device = " ".join(p for p in (m.manufacturer, m.device_model) if p) or "not recorded"
    rows = [
        ("Format", m.format + (f" ({m.sop_class})" if m.sop_class else "")),
        ("Modality", m.modality.value),
        ("Eye", eye),
        ("Device", device),
        ("Pixel spacing", _spacing_text(m) or "not recorded"),
        ("Acquired", m.acquisition_date.isoformat() if m.acquisition_date else "not recorded"),
        (
            "Frame",
            f"{frame_number(frame_index)} of {scan.n_frames}",
        ),
        ("Size", f"{scan.shape[1]} × {scan.shape[0]} px, {m.bit_depth}-bit"),
    ]
    if m.downsampled_from:
        rows.append(("Original size", f"{m.downsampled_from[1]} × {m.downsampled_from[0]} px"))
    if m.notes:
        rows.append(("Notes", "; ".join(m.notes)))
    return rows


def examination_rows(scan: Scan, fr: FrameResult) -> list[tuple[str, str]]:
    """The examination as the checks saw it: the protocol the file states, the frame's image
    quality (the device's index and the pixel check)."""
    protocol = scan.metadata.protocol
    rows = []
    if protocol.is_stated:
        source = f" ({protocol.source})" if protocol.source else ""
        rows.append(("Protocol", protocol.description + source))
    if fr.quality is not None:
        rows.append(("Image quality", fr.quality.summary))
    return rows


def _quality_record(fr: FrameResult) -> dict[str, Any] | None:
    q = fr.quality
    if q is None:
        return None
    return {
        "acceptable": q.acceptable,
        "problems": [p.name for p in q.problems],
        "reason": q.reason,
        "device_index": q.device_index,
        "device_index_name": q.device_index_name,
        "device_minimum": q.device_minimum,
        "figures": {k: round(float(v), 4) for k, v in q.figures.items()},
    }


def identity_rows(identity: PatientIdentity) -> list[tuple[str, str]]:
    return [
        ("Name", (identity.name or "not recorded").replace("^", " ").strip()),
        ("Patient ID", identity.patient_id or "not recorded"),
        ("Birth date", identity.birth_date or "not recorded"),
        ("Sex", identity.sex or "not recorded"),
    ]


def result_record(
    scan: Scan,
    result: ScanResult,
    fr: FrameResult,
    *,
    include_identity: bool = False,
    created: _dt.datetime | None = None,
    show_unreliable: bool = False,
) -> dict[str, Any]:
    """The machine-readable facts of a report (stored as JSON in ``octviewer:result``).

    For a frame that is not assessed ``class`` and ``confidence`` are None, and the
    probabilities and heatmap class are left out (None) unless ``show_unreliable``, as in the
    picture; ``unreliable_output_shown`` says which."""
    revealed = fr.assessable or show_unreliable
    return {
        "file": source_label(scan, include_identity=include_identity),
        "frame_index": fr.frame_index,
        "n_frames": scan.n_frames,
        "assessable": fr.assessable,
        "reason": fr.reason,
        "class": fr.presented_class,
        "confidence": round(fr.confidence, 6) if fr.assessable else None,
        "probabilities": {
            n: round(float(p), 6) for n, p in zip(fr.class_names, fr.probabilities, strict=True)
        }
        if revealed
        else None,
        "unreliable_output_shown": bool(show_unreliable and not fr.assessable),
        "flags": [f.name for f in fr.ordered_flags],
        "ood_score": fr.ood_score,
        "ood_threshold": fr.ood_threshold,
        "quality": _quality_record(fr),
        "protocol": scan.metadata.protocol.description,
        "scan_assessable": result.assessed_as_whole,
        "scan_reason": result.scan_reason,
        "cam_class": fr.class_names[fr.cam_class]
        if revealed and fr.heatmap is not None and fr.cam_class is not None
        else None,
        "model": {
            "name": result.model.name,
            "version": result.model.version,
            "sha256": result.model.sha256,
        },
        "device": result.device,
        "arithmetic": result.arithmetic,
        "octviewer_version": __version__,
        "created": (created or _dt.datetime.now().astimezone()).isoformat(timespec="seconds"),
    }


def text_chunks(
    scan: Scan,
    result: ScanResult,
    fr: FrameResult,
    *,
    include_identity: bool = False,
    created: _dt.datetime | None = None,
    show_unreliable: bool = False,
) -> dict[str, str]:
    record = result_record(
        scan,
        result,
        fr,
        include_identity=include_identity,
        created=created,
        show_unreliable=show_unreliable,
    )
    chunks = {
        "Software": f"octviewer {__version__}",
        "octviewer:version": __version__,
        "octviewer:model": f"{result.model.name} {result.model.version}",
        "octviewer:model_sha256": result.model.sha256,
        "octviewer:result": json.dumps(record, ensure_ascii=False, sort_keys=True),
        "octviewer:disclaimer": DISCLAIMER,
        "octviewer:assessable": "yes" if fr.assessable else "no",
        "octviewer:flags": ",".join(f.name for f in fr.ordered_flags),
    }
    if fr.reason:
        chunks["octviewer:reason"] = fr.reason
    if result.scan_reason:
        chunks["octviewer:scan_reason"] = result.scan_reason
    if result.extra.get("cached_at"):  # read back from the result cache: when it was computed
        chunks["octviewer:cached_at"] = result.extra["cached_at"]
    if include_identity:
        chunks["octviewer:patient"] = json.dumps(
            dict(identity_rows(scan.identity)), ensure_ascii=False
        )
    return chunks
