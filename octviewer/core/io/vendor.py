"""Vendor raw formats: Heidelberg .vol (eyepy), Heidelberg .E2E and Topcon .fda (oct-converter).

The optional readers (``pip install "octviewer[vendor]"``) are imported only when such a file
is opened; oct-converter pulls in OpenCV, so it must never load at start-up.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np

from octviewer.core.io.errors import MissingReaderError
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

_EXPORT_DICOM = (
    "Export the examination from the device software as DICOM (Ophthalmic Tomography) and "
    "open that file instead."
)


def _missing(package: str, what: str, path: Path) -> MissingReaderError:
    return MissingReaderError(
        f"Opening {what} files needs the optional package '{package}', which is not installed. "
        'Install it with: pip install "octviewer[vendor]"',
        path=path,
    )


def read_heidelberg_vol(path: Path) -> Scan:
    """Heidelberg Spectralis .vol (HSF-OCT-1xx): B-scans, SLO localizer and B-scan positions."""
    try:
        from eyepy.io.he.vol_reader import HeVolReader
    except ImportError as exc:
        raise _missing("eyepy", "Heidelberg .vol", path) from exc

    try:
        reader = HeVolReader(path)
        parsed = reader.parsed_file
        volume = reader.volume  # applies the .vol intensity transform (float -> uint8 display)
        data = np.asarray(volume.data)
        slo = np.asarray(parsed.localizer)
    except PermissionError:
        raise
    except Exception as exc:
        raise CorruptFileError(
            "The Heidelberg .vol file is damaged, incomplete or of an unsupported variant "
            f"(eyepy: {type(exc).__name__}). {_EXPORT_DICOM}",
            path=path,
        ) from exc
    if data.ndim == 2:
        data = data[np.newaxis]

    positions = None
    sx, sy = float(parsed.scale_x_slo or 0), float(parsed.scale_y_slo or 0)
    if sx > 0 and sy > 0:
        positions = np.asarray(
            [[b.start_x / sx, b.start_y / sy, b.end_x / sx, b.end_y / sy] for b in parsed.bscans],
            dtype=np.float32,
        )
    distance = float(parsed.distance or 0)
    spacing = PixelSpacing(
        row=float(parsed.scale_y),
        col=float(parsed.scale_x),
        unit="mm",
        frame=distance if distance > 0 and len(data) > 1 else None,
    )
    lat = str(parsed.scan_position or "").strip().upper()
    laterality = {"OD": Laterality.RIGHT, "OS": Laterality.LEFT}.get(lat, Laterality.UNKNOWN)
    meta = ScanMetadata(
        source_paths=(path,),
        format="Heidelberg VOL",
        modality=Modality.OCT_VOLUME if len(data) > 1 else Modality.OCT_BSCAN,
        laterality=laterality,
        spacing=spacing,
        manufacturer="Heidelberg Engineering",
        device_model="Spectralis",
        acquisition_date=_as_date(parsed.visit_date),
        bit_depth=8,
    )
    identity = PatientIdentity(
        patient_id=str(parsed.patient_id or "").strip() or None,
        birth_date=_as_date_text(parsed.dob),
    )
    return Scan(
        frames=np.ascontiguousarray(data),
        metadata=meta,
        identity=identity,
        localizer=Localizer(image=slo, positions=positions),
    )


def _as_date(value: object) -> dt.date | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def _as_date_text(value: object) -> str | None:
    date = _as_date(value)
    return date.strftime("%Y%m%d") if date and date.year > 1900 else None


def read_heidelberg_e2e(path: Path) -> Scan:
    """Heidelberg .E2E through oct-converter, where it can parse the file."""
    return _read_with_oct_converter(
        path,
        "E2E",
        "Heidelberg .E2E",
        "Heidelberg E2E",
        "Heidelberg Engineering",
        "it cannot parse minimised and many newer E2E exports",
    )


def read_topcon_fda(path: Path) -> Scan:
    """Topcon .fda through oct-converter, where it can parse the file."""
    return _read_with_oct_converter(
        path,
        "FDA",
        "Topcon .fda",
        "Topcon FDA",
        "Topcon",
        "its Topcon reader does not work with NumPy 2",
    )


def _read_with_oct_converter(
    path: Path, cls_name: str, what: str, fmt: str, maker: str, limitation: str
) -> Scan:
    try:
        from oct_converter import readers
    except ImportError as exc:
        raise _missing("oct-converter", what, path) from exc
    try:
        reader = getattr(readers, cls_name)(str(path))
        result = reader.read_oct_volume()
        volumes = result if isinstance(result, list) else [result]
        volume = next(
            v for v in volumes if getattr(v, "volume", None) is not None and len(v.volume)
        )
        data = np.asarray(np.stack([np.asarray(f) for f in volume.volume]))
    except Exception as exc:
        logger.info("oct-converter could not read %s: %r", fmt, exc)
        raise UnsupportedFormatError(
            f"This {what} file could not be read: the only available reader, oct-converter, "
            f"failed on it ({limitation}). {_EXPORT_DICOM}",
            path=path,
        ) from exc
    if data.dtype not in (np.uint8, np.uint16):
        data = data.astype(np.float32)
    lat = str(getattr(volume, "laterality", "") or "").upper()
    laterality = {
        "R": Laterality.RIGHT,
        "OD": Laterality.RIGHT,
        "L": Laterality.LEFT,
        "OS": Laterality.LEFT,
    }
    meta = ScanMetadata(
        source_paths=(path,),
        format=fmt,
        modality=Modality.OCT_VOLUME if len(data) > 1 else Modality.OCT_BSCAN,
        laterality=laterality.get(lat, Laterality.UNKNOWN),
        manufacturer=maker,
        bit_depth=16 if data.dtype == np.uint16 else 8,
    )
    return Scan(frames=data, metadata=meta)
