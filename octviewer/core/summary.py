"""One summary table for a batch of analyses: CSV and JSON, one row per analysed frame.

A row names the input (as the user gave it, patient name/ID parts blanked unless asked), the
frame (``frame_index``: 0-based; a person reads frame ``frame_index + 1``), the predicted class,
its confidence, each class probability, the result flags, the model SHA-256, the device, the
arithmetic (float32, bfloat16, int8) and the report written. Inputs that failed get one row with ``status = "failed"`` and the message,
so a spreadsheet of the summary shows every input that was asked for.

A frame that is *not assessed* (``FrameResult.assessable`` False) has ``class``,
``confidence`` and every ``p_<class>`` column empty ("not assessed" means no numbers: sorted by
``p_CNV``, a fundus photo must not come out as the most "CNV" scan), ``assessable`` false and
its ``reason``; only ``--show-unreliable`` (``show_unreliable=True``) fills the probabilities
of such a row for an expert (the class stays empty). ``flags`` lists every flag, most serious
first; the checks' own figures stay: ``ood_score``/``ood_threshold`` (empty when the model
carries no statistics), ``quality`` (``ok`` / ``low``, empty where not checked),
``quality_problems`` and ``device_quality`` (the device's own index, e.g. Spectralis Q).
``protocol`` is the scan protocol the file states; ``scan_assessable`` and ``scan_reason`` give
the whole-scan verdict of a volume (:mod:`octviewer.core.scan_verdict`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from octviewer._version import __version__
from octviewer.core.presentation import frame_text
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
from octviewer.core.results import FrameResult, ModelIdentity, ScanResult
from octviewer.errors import ReportError


@dataclass(frozen=True)
class SummaryRow:
    """One analysed frame (or one failed input, with ``status == "failed"``)."""

    file: str
    frame_index: int | None
    n_frames: int | None
    predicted_class: str | None
    confidence: float | None
    probabilities: dict[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    assessable: bool | None = None
    reason: str = ""
    ood_score: float | None = None
    ood_threshold: float | None = None
    quality: str = ""
    quality_problems: tuple[str, ...] = ()
    device_quality: float | None = None
    protocol: str = ""
    scan_assessable: bool | None = None
    scan_reason: str = ""
    model_sha256: str = ""
    device: str = ""
    arithmetic: str = ""
    report: str = ""
    status: str = "ok"
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "frame_index": self.frame_index,
            "n_frames": self.n_frames,
            "class": self.predicted_class,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities),
            "assessable": self.assessable,
            "reason": self.reason,
            "flags": list(self.flags),
            "ood_score": self.ood_score,
            "ood_threshold": self.ood_threshold,
            "quality": self.quality,
            "quality_problems": list(self.quality_problems),
            "device_quality": self.device_quality,
            "protocol": self.protocol,
            "scan_assessable": self.scan_assessable,
            "scan_reason": self.scan_reason,
            "model_sha256": self.model_sha256,
            "device": self.device,
            "arithmetic": self.arithmetic,
            "report": self.report,
            "status": self.status,
            "error": self.error,
        }


def rows_for_result(
    file: str,
    result: ScanResult,
    n_frames: int,
    reports: dict[int, str] | None = None,
    *,
    show_unreliable: bool = False,
    protocol: str = "",
) -> list[SummaryRow]:
    """One :class:`SummaryRow` per analysed frame; ``reports`` maps frame index -> report path.
    A frame that is not assessed gets no numbers unless ``show_unreliable``."""
    reports = reports or {}
    rows = []
    for fr in sorted(result.frames, key=lambda f: f.frame_index):
        shown = fr.assessable or show_unreliable
        q = fr.quality
        rows.append(
            SummaryRow(
                file=file,
                frame_index=fr.frame_index,
                n_frames=n_frames,
                predicted_class=fr.presented_class,
                confidence=round(fr.confidence, 6) if fr.assessable else None,
                probabilities={
                    n: round(float(p), 6)
                    for n, p in zip(fr.class_names, fr.model_output(), strict=True)
                }
                if shown
                else {},
                flags=tuple(f.name for f in fr.ordered_flags),
                assessable=fr.assessable,
                reason=fr.reason or "",
                ood_score=_rounded(fr.ood_score),
                ood_threshold=_rounded(fr.ood_threshold),
                quality="" if q is None else "ok" if q.acceptable else "low",
                quality_problems=() if q is None else tuple(p.name for p in q.problems),
                device_quality=None if q is None else _rounded(q.device_index),
                protocol=protocol,
                scan_assessable=result.assessed_as_whole,
                scan_reason=result.scan_reason or "",
                model_sha256=result.model.sha256,
                device=result.device,
                arithmetic=result.arithmetic,
                report=reports.get(fr.frame_index, ""),
            )
        )
    return rows


def imageability_line(rows: Sequence[SummaryRow]) -> str | None:
    """The batch's imageability for the console: the share of analysed frames that could be
    assessed, and how many fell below quality; None when no frame was analysed."""
    frames = [r for r in rows if r.status == "ok" and r.assessable is not None]
    if not frames:
        return None
    ok = sum(bool(r.assessable) for r in frames)
    low = sum(r.quality == "low" for r in frames)
    return (
        f"Imageability: {ok} of {len(frames)} analysed frame(s) assessable "
        f"({100 * ok / len(frames):.1f} %); {low} below image quality."
    )


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(float(v), 6)


def result_line(file: str, fr: FrameResult, n_frames: int = 1) -> str:
    """One console line for a reported frame: ``file: CNV 92.1 %`` or
    ``file: not assessed: <reason>`` (never a class for a frame that is not assessed); a
    volume's frame as a person counts it, ``(frame 3 of 21)``."""
    where = f" ({frame_text(fr.frame_index, n_frames)})" if n_frames > 1 else ""
    if not fr.assessable:
        return f"{file}{where}: not assessed: {fr.reason_text}"
    cautions = [f.value for f in fr.ordered_flags]
    return f"{file}{where}: {fr.headline}" + (f" ({'; '.join(cautions)})" if cautions else "")


def failed_row(file: str, message: str, model_sha256: str = "") -> SummaryRow:
    return SummaryRow(
        file=file,
        frame_index=None,
        n_frames=None,
        predicted_class=None,
        confidence=None,
        model_sha256=model_sha256,
        status="failed",
        error=message,
    )


def csv_columns(class_names: Sequence[str]) -> list[str]:
    return [
        "file",
        "frame_index",
        "n_frames",
        "class",
        "confidence",
        *(f"p_{n}" for n in class_names),
        "assessable",
        "reason",
        "flags",
        "ood_score",
        "ood_threshold",
        "quality",
        "quality_problems",
        "device_quality",
        "protocol",
        "scan_assessable",
        "scan_reason",
        "model_sha256",
        "device",
        "arithmetic",
        "report",
        "status",
        "error",
    ]


def _write(path: Path, writer: Any) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer(fh)
    except OSError as e:
        raise ReportError(
            f"The summary could not be written to {path}: {e.strerror or e}. "
            "Check that the folder is writable and has free space."
        ) from e
    return path


def write_csv(rows: Iterable[SummaryRow], path: str | Path, class_names: Sequence[str]) -> Path:
    """Write the rows as CSV (UTF-8, one ``p_<class>`` column per class, flags ``;``-joined)."""
    cols = csv_columns(class_names)

    def emit(fh: Any) -> None:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            d = r.to_dict()
            probs = d.pop("probabilities")
            d["flags"] = ";".join(d["flags"])
            d["quality_problems"] = ";".join(d["quality_problems"])
            for key in ("assessable", "scan_assessable"):
                if d[key] is not None:
                    d[key] = "true" if d[key] else "false"
            for n in class_names:
                d[f"p_{n}"] = probs.get(n, "")
            w.writerow({k: "" if d.get(k) is None else d[k] for k in cols})

    return _write(Path(path), emit)


def write_json(
    rows: Iterable[SummaryRow],
    path: str | Path,
    *,
    model: ModelIdentity | None = None,
    class_names: Sequence[str] = (),
    created: _dt.datetime | None = None,
) -> Path:
    """Write the rows as one JSON document with the model, app version and disclaimer."""
    doc = {
        "octviewer_version": __version__,
        "disclaimer": DISCLAIMER,
        "created": (created or _dt.datetime.now().astimezone()).isoformat(timespec="seconds"),
        "model": (
            {
                "name": model.name,
                "version": model.version,
                "architecture": model.architecture,
                "sha256": model.sha256,
            }
            if model
            else None
        ),
        "class_names": list(class_names),
        "results": [r.to_dict() for r in rows],
    }
    return _write(Path(path), lambda fh: json.dump(doc, fh, indent=1, ensure_ascii=False))
