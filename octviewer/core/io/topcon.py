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
import math
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.core.io import octconverter_compat as compat
from octviewer.core.io.errors import library_cause, missing_reader
from octviewer.core.io.headers import fundus_fits, topcon_chunks
from octviewer.core.scan import (
    DeviceQuality,
    Laterality,
    Localizer,
    Modality,
    PatientIdentity,
    PixelSpacing,
    Scan,
    ScanMetadata,
    ScanPattern,
    ScanProtocol,
    ScanRegion,
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

# Topcon does not document its formats. The meanings below are those of a public,
# reverse-engineered FDA parser (read_fda_file.py: scan mode = first byte of the OCT image
# chunk header, an index into Line, Circle, 3D(H), Radial, Cross, Web, 3D(V), Raster,
# Raster(V), Concentric1, Concentric2, 5LineCross; fixation = 4th byte of @PARAM_SCAN_04 /
# _02's fixation field, 0 Center, 1 Disc, 2 Macula, 3 Wide, 4 Center of Cornea, 15 External;
# TopQ = "Qmean", the 5th float of @FAST_Q2_INFO). oct-converter reads those fields unnamed.
#: scan mode -> (Topcon's name, pattern)
SCAN_MODES = {
    0: ("Line", ScanPattern.LINE),
    1: ("Circle", ScanPattern.CIRCLE),
    2: ("3D(H)", ScanPattern.VOLUME),
    3: ("Radial", ScanPattern.RADIAL),
    4: ("Cross", ScanPattern.UNKNOWN),
    5: ("Web", ScanPattern.UNKNOWN),
    6: ("3D(V)", ScanPattern.VOLUME),
    7: ("Raster", ScanPattern.VOLUME),
    8: ("Raster(V)", ScanPattern.VOLUME),
    9: ("Concentric1", ScanPattern.CIRCLE),
    10: ("Concentric2", ScanPattern.CIRCLE),
    11: ("5LineCross", ScanPattern.UNKNOWN),
}
#: fixation target -> (Topcon's name, region)
FIXATIONS = {
    0: ("Center", ScanRegion.UNKNOWN),
    1: ("Disc", ScanRegion.OPTIC_DISC),
    2: ("Macula", ScanRegion.MACULA),
    3: ("Wide", ScanRegion.UNKNOWN),
    4: ("Center of Cornea", ScanRegion.OTHER),
    15: ("External", ScanRegion.UNKNOWN),
}


def topcon_variant(path: Path) -> str:
    """ "FDA" or "FDS" from the file's magic (``FOCTFDA`` / ``FOCTFDS``)."""
    with path.open("rb") as fh:
        head = fh.read(7)
    return "FDS" if head[4:7] == b"FDS" else "FDA"


def read_topcon(path: Path) -> Scan:
    """A Topcon ``.fda`` / ``.fds``: B-scans, spacing, laterality, fundus image as localizer."""
    variant = topcon_variant(path)
    what = f"Topcon .{variant.lower()}"
    chunks = topcon_chunks(path, variant)  # sizes checked before oct-converter reads them
    if not OCT_CHUNKS[variant] & set(chunks):
        raise _refusal(ValueError("Could not find OCT header: no OCT image chunk"), what, path)
    try:
        readers = compat.import_readers()
    except ImportError as exc:
        raise missing_reader("oct-converter", what, path, exc) from exc
    quiet = io.StringIO()  # oct-converter prints progress and chunk notes to stdout
    try:
        with compat.numpy_fromstring_for_bytes(), contextlib.redirect_stdout(quiet):
            reader = getattr(readers, variant)(str(path))
            volume = reader.read_oct_volume()
            fundus = _fundus(reader) if fundus_fits(path, chunks) else None
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
        protocol=topcon_protocol(volume),
        device_quality=topq(volume, len(frames)),
    )
    return Scan(
        frames=np.ascontiguousarray(frames),
        metadata=meta,
        identity=_identity(volume),
        localizer=Localizer(image=fundus) if fundus is not None else None,
    )


def _small_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def topcon_protocol(volume: Any) -> ScanProtocol:
    """Pattern from the OCT image chunk's scan mode, region from the fixation target (see
    :data:`SCAN_MODES`); unknown values, or none, state nothing."""
    try:
        mode = _small_int(dict(volume.oct_header or {}).get("scan_mode"))
        metadata = dict(volume.metadata or {})
        scan = dict(metadata.get("param_scan_04") or metadata.get("param_scan_02") or {})
        chunk = "@PARAM_SCAN_04" if metadata.get("param_scan_04") else "@PARAM_SCAN_02"
        fixation_field = _small_int(scan.get("fixation"))
    except (TypeError, ValueError, AttributeError):
        return ScanProtocol()
    fixation = None if fixation_field is None else (fixation_field >> 24) & 0xFF
    mode_name, pattern = SCAN_MODES.get(mode, (None, ScanPattern.UNKNOWN))  # type: ignore[arg-type]
    fix_name, region = FIXATIONS.get(fixation, (None, ScanRegion.UNKNOWN))  # type: ignore[arg-type]
    sources = []
    if mode_name is not None:
        sources.append(f"Topcon OCT image header scan mode {mode} ({mode_name})")
    if fix_name is not None:
        sources.append(f"Topcon {chunk} fixation {fixation} ({fix_name})")
    return ScanProtocol(pattern=pattern, region=region, name=mode_name, source="; ".join(sources))


def topq(volume: Any, n_frames: int) -> DeviceQuality | None:
    """TopQ (0-100), one value for the whole scan, repeated for each frame; Topcon states no
    minimum that could be cited, so none is given."""
    try:
        stats = list(dict(volume.metadata or {})["fast_q2_info"]["various_quality_statistics"])
        value = float(stats[4])
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, AttributeError):
        return None
    if not math.isfinite(value) or not 0.0 <= value <= 100.0:
        return None
    return DeviceQuality(
        name="Topcon TopQ",
        values=(value,) * n_frames,
        minimum=None,
        source="Topcon @FAST_Q2_INFO Qmean (one value for the whole scan)",
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
        f"handle (it says: {library_cause(exc)}). {_EXPORT}",
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
