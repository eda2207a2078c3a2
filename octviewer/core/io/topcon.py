"""Topcon ``.fda`` (3D OCT-2000 and later) and ``.fds`` (3D OCT-1000) through oct-converter.

oct-converter's Topcon readers need NumPy 1's ``np.fromstring`` on bytes; see
:mod:`octviewer.core.io.octconverter_compat`. Patient name, ID, sex and birth date that the
files hold go to :class:`PatientIdentity` only, never into metadata, notes or logs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.core.io import octconverter_compat as compat
from octviewer.core.scan import (
    Laterality,
    Localizer,
    Modality,
    PatientIdentity,
    PixelSpacing,
    Scan,
    ScanMetadata,
)
from octviewer.errors import CorruptFileError, UnsupportedFormatError

logger = logging.getLogger(__name__)

_EXPORT = (
    "Export the examination from the Topcon software as DICOM (Ophthalmic Tomography) and open "
    "that file instead."
)
#: en-face images smaller than this (the minimised test files hold 2 x 3 pixel thumbnails)
#: are not useful as a localizer
MIN_LOCALIZER_SIDE = 16
#: the OCT image chunks oct-converter reads (other variants hold no B-scans it can decode)
OCT_CHUNKS = {"FDA": {b"@IMG_JPEG", b"@IMG_MOT_COMP_03"}, "FDS": {b"@IMG_SCAN_03"}}


def topcon_variant(path: Path) -> str:
    """ "FDA" or "FDS" from the file's magic (``FOCTFDA`` / ``FOCTFDS``)."""
    with path.open("rb") as fh:
        head = fh.read(7)
    return "FDS" if head[4:7] == b"FDS" else "FDA"


def read_topcon(path: Path) -> Scan:
    """A Topcon ``.fda`` / ``.fds``: B-scans, spacing, laterality, fundus image as localizer."""
    variant = topcon_variant(path)
    what = f"Topcon .{variant.lower()}"
    try:
        readers = compat.import_readers()
    except ImportError as exc:
        from octviewer.core.io.vendor import _missing

        raise _missing("oct-converter", what, path, exc) from exc
    quiet = io.StringIO()  # oct-converter prints progress and chunk notes to stdout
    try:
        with compat.numpy_fromstring_for_bytes(), contextlib.redirect_stdout(quiet):
            reader = getattr(readers, variant)(str(path))
            if not OCT_CHUNKS[variant] & set(getattr(reader, "chunk_dict", {})):
                raise ValueError("Could not find OCT header: no OCT image chunk")
            volume = reader.read_oct_volume()
            fundus = _fundus(reader)
        frames = np.stack([np.asarray(f) for f in volume.volume])
    except PermissionError:
        raise
    except Exception as exc:
        logger.info("oct-converter could not read a %s file: %s", what, type(exc).__name__)
        raise _refusal(exc, what, path) from exc
    if frames.ndim != 3 or frames.size == 0:
        raise CorruptFileError(
            f"This {what} file holds no B-scan that could be read. {_EXPORT}", path=path
        )
    if frames.dtype not in (np.uint8, np.uint16):
        frames = frames.astype(np.float32)
    lat = {"R": Laterality.RIGHT, "L": Laterality.LEFT}
    meta = ScanMetadata(
        source_paths=(path,),
        format=f"Topcon {variant}",
        modality=Modality.OCT_VOLUME if len(frames) > 1 else Modality.OCT_BSCAN,
        laterality=lat.get(str(volume.laterality or "").upper(), Laterality.UNKNOWN),
        spacing=_spacing(volume.pixel_spacing, len(frames)),
        manufacturer="Topcon",
        acquisition_date=_date(volume.acquisition_date),
        bit_depth=16 if frames.dtype == np.uint16 else 8,
    )
    return Scan(
        frames=np.ascontiguousarray(frames),
        metadata=meta,
        identity=_identity(volume),
        localizer=Localizer(image=fundus) if fundus is not None else None,
    )


def _identity(volume: Any) -> PatientIdentity:
    def text(name: str) -> str | None:
        value = getattr(volume, name, None)
        return str(value).strip() or None if value not in (None, "") else None

    dob = getattr(volume, "DOB", None)
    return PatientIdentity(
        name=" ".join(p for p in (text("first_name"), text("surname")) if p) or None,
        patient_id=text("patient_id"),
        birth_date=dob.strftime("%Y%m%d") if isinstance(dob, dt.datetime) else None,
        sex=text("sex"),
    )


def _refusal(exc: Exception, what: str, path: Path) -> Exception:
    text = str(exc)
    if isinstance(exc, ValueError) and "Could not find OCT header" in text:
        return UnsupportedFormatError(
            f"This {what} file holds no OCT B-scans octviewer can read (no 3-D OCT image "
            f"chunk; it may hold only fundus photos or another scan type). {_EXPORT}",
            path=path,
        )
    if type(exc).__name__ in ("StreamError", "StreamError_") or isinstance(exc, EOFError):
        return CorruptFileError(
            f"This {what} file ends before its B-scan data (cut short while copying or "
            f"exporting). Copy or export it again. {_EXPORT}",
            path=path,
        )
    return UnsupportedFormatError(
        f"This {what} file is of a variant the Topcon reader (oct-converter) does not "
        f"handle ({type(exc).__name__}). {_EXPORT}",
        path=path,
    )


def _fundus(reader: Any) -> np.ndarray | None:
    for method in ("read_fundus_image", "read_fundus_image_gray_scale"):
        if not hasattr(reader, method):
            continue
        try:
            image = getattr(reader, method)()
        except Exception as exc:  # an absent or odd fundus chunk is not a reason to refuse
            logger.debug("Topcon fundus image not read (%s)", type(exc).__name__)
            continue
        data = getattr(image, "image", None)
        if data is None:
            continue
        data = np.asarray(data)
        if data.ndim == 3 and data.shape[2] >= 3:
            data = data[:, :, :3].mean(axis=2)  # grey localizer, like the SLO of other devices
        if min(data.shape[:2]) < MIN_LOCALIZER_SIDE:
            logger.debug("Topcon fundus image too small for a localizer: %s", data.shape)
            return None
        return np.clip(data, 0, 255).astype(np.uint8)
    return None


def _spacing(values: Any, n_frames: int) -> PixelSpacing | None:
    """oct-converter's ``pixel_spacing`` is [lateral, between B-scans, axial] in mm."""
    try:
        col, frame, row = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    if col <= 0 or row <= 0:
        return None
    return PixelSpacing(row=row, col=col, unit="mm", frame=frame if n_frames > 1 else None)


def _date(value: Any) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else None
