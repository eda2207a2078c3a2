"""Where the B-scans lie on their localizer (the Ophthalmic Frame Location Sequence), and
the lookup of the referenced localizer image in the same folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.io.dicom.header import (
    tolerant,
)

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)


@tolerant((None, None))
def frame_locations(ds: Dataset) -> tuple[str | None, np.ndarray | None]:
    """(referenced localizer SOP Instance UID, (n, 4) positions x0, y0, x1, y1) from the
    Ophthalmic Frame Location Sequence (0022,0031), per frame or at the top level."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    items = [f.get("OphthalmicFrameLocationSequence") for f in per_frame] if per_frame else []
    if not items and ds.get("OphthalmicFrameLocationSequence"):
        items = [ds.OphthalmicFrameLocationSequence]
    if not items or not all(items):
        return None, None
    ref_uid: str | None = None
    rows = []
    for seq in items:
        loc = seq[0]
        coords = [float(v) for v in (loc.get("ReferenceCoordinates") or [])]
        if len(coords) < 4:
            return None, None
        # (row, column) pairs: the first and last point of the B-scan on the localizer
        rows.append([coords[1], coords[0], coords[-1], coords[-2]])
        ref_uid = ref_uid or (str(loc.get("ReferencedSOPInstanceUID") or "") or None)
    positions = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(positions).all() or np.abs(positions).max() > 1e6:
        return None, None
    return ref_uid, positions.astype(np.float32)


def localizer_file(
    folder: Path, ref_uid: str, *, exclude: Path | None = None, limit: int = 2000
) -> Path | None:
    """The DICOM file of ``folder`` whose SOP Instance UID is ``ref_uid`` (the localizer a
    volume references); None when there is none among its first ``limit`` files."""
    import pydicom

    from octviewer.core.io.sniff import FileKind, sniff

    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and p != exclude)[:limit]
    except OSError:
        entries = []
    for candidate in entries:
        try:
            if sniff(candidate) is not FileKind.DICOM:
                continue
            header = pydicom.dcmread(
                candidate, stop_before_pixels=True, specific_tags=["SOPInstanceUID"], force=True
            )
        except Exception as exc:  # pydicom raises many types; unreadable = not the localizer
            logger.debug("not the localizer: %s (%s)", candidate.name, exc)
            continue
        if str(header.get("SOPInstanceUID", "")) == ref_uid:
            return candidate
    return None
