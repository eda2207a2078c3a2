"""Non-pixel facts of a DICOM data set: modality, eye, date, spacing, positions, identity,
and the :class:`ScanMetadata` built from them."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.io.dicom.decode import DecodedDicom
from octviewer.core.io.dicom.geometry import first_item, plane_positions
from octviewer.core.io.dicom.header import (
    METADATA_ERRORS,
    OCT_SOPS,
    PHOTO_SOPS,
    sop_class_name,
    tolerant,
)
from octviewer.core.io.dicom.protocol import protocol_of
from octviewer.core.scan import (
    Laterality,
    Modality,
    PatientIdentity,
    PixelSpacing,
    ScanMetadata,
    ScanProtocol,
)

if TYPE_CHECKING:
    from pydicom import Dataset


@tolerant(Modality.UNKNOWN)
def modality_of(ds: Dataset, n_frames: int) -> Modality:
    sop = str(ds.get("SOPClassUID", ""))
    dicom_modality = str(ds.get("Modality", "")).upper()
    if sop in OCT_SOPS or (sop not in PHOTO_SOPS and dicom_modality == "OPT"):
        return Modality.OCT_VOLUME if n_frames > 1 else Modality.OCT_BSCAN
    if sop in PHOTO_SOPS or dicom_modality in ("OP", "XC"):
        return Modality.FUNDUS
    return Modality.UNKNOWN


@tolerant(Laterality.UNKNOWN)
def laterality_of(ds: Dataset) -> Laterality:
    candidates = [ds.get("ImageLaterality"), ds.get("Laterality")]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get("FrameAnatomySequence"):
        candidates.append(shared[0].FrameAnatomySequence[0].get("FrameLaterality"))
    for value in candidates:
        value = str(value or "").upper()
        if value in ("R", "OD"):
            return Laterality.RIGHT
        if value in ("L", "OS"):
            return Laterality.LEFT
    return Laterality.UNKNOWN


@tolerant(None)
def _date_of(ds: Dataset) -> dt.date | None:
    for kw in ("AcquisitionDateTime", "AcquisitionDate", "ContentDate", "SeriesDate", "StudyDate"):
        value = str(ds.get(kw) or "")[:8]
        if len(value) == 8 and value.isdigit():
            try:
                return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
            except ValueError:
                continue
    return None


@tolerant(None)
def spacing_of(ds: Dataset) -> PixelSpacing | None:
    """Pixel spacing (mm) from the functional groups, else the top level; B-scan distance from
    Spacing Between Slices or the per-frame plane positions."""
    measures = first_item(
        ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence"
    ) or first_item(ds, "PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence")
    source = measures if measures is not None and measures.get("PixelSpacing") else ds
    spacing = source.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if not spacing or len(spacing) < 2:
        return None
    frame = None
    between = source.get("SpacingBetweenSlices") or ds.get("SpacingBetweenSlices")
    if between:
        frame = abs(float(between))
    else:
        positions = plane_positions(ds)
        if positions is not None and len(positions) > 1:
            steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
            if steps.size and float(np.median(steps)) > 0:
                frame = float(np.median(steps))
    row, col = float(spacing[0]), float(spacing[1])
    if not all(math.isfinite(v) and v > 0 for v in (row, col)):
        return None
    if frame is not None and not math.isfinite(frame):
        frame = None
    return PixelSpacing(row=row, col=col, unit="mm", frame=frame)


@tolerant(None)
def instance_position(ds: Dataset) -> np.ndarray | None:
    """Image Position (Patient) of a single-frame instance: top level or its functional groups."""
    value = ds.get("ImagePositionPatient")
    if value is None:
        positions = plane_positions(ds)
        return positions[0] if positions is not None else None
    position = np.asarray([float(v) for v in value]) if len(value) == 3 else None
    return position if position is not None and np.isfinite(position).all() else None


def _text_of(ds: Dataset, kw: str) -> str | None:
    """A text attribute, stripped; None when absent, empty or unreadable (a bad VR)."""
    try:
        value = str(ds.get(kw) or "").strip()
    except METADATA_ERRORS:
        return None
    return value[:256] or None


def identity_of(ds: Dataset) -> PatientIdentity:
    def text(kw: str) -> str | None:
        return _text_of(ds, kw)

    return PatientIdentity(
        name=text("PatientName"),
        patient_id=text("PatientID"),
        birth_date=text("PatientBirthDate"),
        sex=text("PatientSex"),
    )


@dataclass(frozen=True)
class ReaderFacts:
    """What a reader adds to the header for :func:`build_metadata`: the format name shown,
    its notes, and the spacing and protocol when it knows them better than the header (a
    series reader: from all its files); None reads them from the header."""

    fmt: str
    spacing: PixelSpacing | None = None
    notes: tuple[str, ...] = ()
    protocol: ScanProtocol | None = None


def build_metadata(
    ds: Dataset, paths: tuple[Path, ...], decoded: DecodedDicom, facts: ReaderFacts
) -> ScanMetadata:
    """The metadata of a scan read from ``paths``, its first header ``ds``, with ``facts``."""
    n_frames = int(decoded.frames.shape[0])
    modality = modality_of(ds, n_frames)
    extra = ("converted from colour to greyscale",) if decoded.was_color else ()
    extra += decoded.notes

    def text(kw: str) -> str | None:
        return _text_of(ds, kw)

    return ScanMetadata(
        source_paths=paths,
        format=facts.fmt,
        modality=modality,
        laterality=laterality_of(ds),
        spacing=facts.spacing or spacing_of(ds),
        manufacturer=text("Manufacturer"),
        device_model=text("ManufacturerModelName"),
        acquisition_date=_date_of(ds),
        sop_class=sop_class_name(ds),
        series_uid=text("SeriesInstanceUID"),
        was_color=decoded.was_color,
        bit_depth=decoded.bit_depth,
        notes=extra + facts.notes,
        protocol=facts.protocol
        if facts.protocol is not None
        else protocol_of(ds, n_frames, modality.is_oct),
    )
