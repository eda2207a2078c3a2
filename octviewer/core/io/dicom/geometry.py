"""Where a DICOM image lies in the patient: its plane orientation and per-frame positions
(the functional groups of a multi-frame object, or the top-level attributes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.io.dicom.header import tolerant

if TYPE_CHECKING:
    from pydicom import Dataset


def first_item(ds: Dataset, group_kw: str, seq_kw: str) -> Dataset | None:
    groups = ds.get(group_kw)
    if groups and groups[0].get(seq_kw):
        return groups[0].get(seq_kw)[0]
    return None


@tolerant(None)
def instance_orientation(ds: Dataset) -> np.ndarray | None:
    value = ds.get("ImageOrientationPatient")
    if value is None:
        item = first_item(ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence")
        value = item.get("ImageOrientationPatient") if item is not None else None
    return np.asarray([float(v) for v in value]) if value is not None and len(value) == 6 else None


@tolerant(None)
def plane_positions(ds: Dataset) -> np.ndarray | None:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return None
    out = []
    for item in per_frame:
        seq = item.get("PlanePositionSequence")
        if not seq or seq[0].get("ImagePositionPatient") is None:
            return None
        out.append([float(v) for v in seq[0].ImagePositionPatient])
    positions = np.asarray(out, dtype=np.float64)
    return positions if positions.ndim == 2 and np.isfinite(positions).all() else None
