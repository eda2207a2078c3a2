"""DICOM through pydicom 3: single-frame, multi-frame Ophthalmic Tomography, intensity chain.

pydicom (and through it pylibjpeg) is imported inside the functions, so importing this module
stays cheap. Frames are decoded one at a time (``pydicom.pixels.iter_pixels``), never with
``ds.pixel_array`` on a whole volume.

The rooms: :mod:`.header` (parsing and header checks), :mod:`.decode` (size guards, decoders,
frames), :mod:`.intensity` (the intensity chain), :mod:`.metadata` (non-pixel facts),
:mod:`.protocol` (the acquisition protocol the header states) and :mod:`.localizer` (frame
locations, the localizer file lookup; :func:`find_localizer` here reads it). Their public
names are re-exported
here, so ``octviewer.core.io.dicom.<name>`` keeps working.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from octviewer.core.io.dicom.decode import DecodedDicom, decode_frames, decoder_package
from octviewer.core.io.dicom.geometry import instance_orientation, plane_positions
from octviewer.core.io.dicom.header import (
    OPT_SOP,
    has_pixels,
    header_int,
    read_header,
    require_pixels,
    sop_class_name,
    tolerant,
)
from octviewer.core.io.dicom.intensity import apply_intensity_chain, pixel_view
from octviewer.core.io.dicom.localizer import frame_locations, localizer_file
from octviewer.core.io.dicom.metadata import (
    ReaderFacts,
    build_metadata,
    identity_of,
    instance_position,
    laterality_of,
    modality_of,
    spacing_of,
)
from octviewer.core.io.dicom.protocol import protocol_of
from octviewer.core.scan import Localizer, Scan
from octviewer.errors import ScanReadError

logger = logging.getLogger(__name__)

__all__ = [
    "OPT_SOP",
    "DecodedDicom",
    "ReaderFacts",
    "apply_intensity_chain",
    "build_metadata",
    "decode_frames",
    "decoder_package",
    "find_localizer",
    "frame_locations",
    "has_pixels",
    "header_int",
    "identity_of",
    "instance_orientation",
    "instance_position",
    "laterality_of",
    "modality_of",
    "pixel_view",
    "plane_positions",
    "protocol_of",
    "read_dicom",
    "read_header",
    "require_pixels",
    "sop_class_name",
    "spacing_of",
    "tolerant",
]


def find_localizer(
    folder: Path, ref_uid: str, positions: np.ndarray, *, exclude: Path | None = None
) -> tuple[Localizer | None, str | None]:
    """The referenced localizer image among the DICOM files of ``folder``, with the B-scan
    ``positions`` on it; else None and a note saying why."""
    candidate = localizer_file(folder, ref_uid, exclude=exclude)
    if candidate is not None:
        try:
            return Localizer(image=read_dicom(candidate).frames[0], positions=positions), None
        except ScanReadError as exc:
            logger.warning("the localizer image could not be read: %s", exc)
    return None, (
        f"B-scan positions are known for {len(positions)} frame(s) on localizer {ref_uid}, but "
        "that localizer image is not in the same folder"
    )


def read_dicom(path: Path) -> Scan:
    """Open one DICOM file (any pixel-bearing SOP class; multi-frame OPT = a volume)."""
    ds = read_header(path)
    decoded = decode_frames(path, ds)
    ref_uid, positions = frame_locations(ds)
    localizer = None
    notes: list[str] = []
    if ref_uid is not None and positions is not None:
        localizer, note = find_localizer(path.parent, ref_uid, positions, exclude=path)
        if note:
            notes.append(note)
    meta = build_metadata(ds, (path,), decoded, ReaderFacts("DICOM", notes=tuple(notes)))
    return Scan(frames=decoded.frames, metadata=meta, identity=identity_of(ds), localizer=localizer)
