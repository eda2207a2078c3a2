"""Vendor raw formats: Heidelberg .vol and .E2E (eyepy, oct-converter), Topcon .fda/.fds.

The optional readers (``pip install "octviewer[vendor]"``) are imported only when such a file
is opened; oct-converter pulls in OpenCV, so it must never load at start-up.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path

import numpy as np

from octviewer.core.io.errors import library_cause, missing_reader
from octviewer.core.io.headers import check_vol
from octviewer.core.io.vol_display import vol_display
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

_EXPORT_DICOM = (
    "Export the examination from the device software as DICOM (Ophthalmic Tomography) and "
    "open that file instead."
)


#: Heidelberg .vol scan patterns (file header ``ScanPattern``) -> localizer pattern
VOL_PATTERNS = {
    0: ("unknown pattern", "line"),
    1: ("single line scan", "line"),
    2: ("circular scan", "circle"),
    3: ("volume scan (ART mode)", "line"),
    4: ("fast volume scan", "line"),
    5: ("radial scan", "radial"),
}
#: the same header field as :class:`ScanPattern` (HSF-OCT-103, as eyepy's ``vol_reader``
#: documents ``scan_pattern``: 1 single line, 2 circular, 3 volume in ART mode, 4 fast volume,
#: 5 radial; 0 unknown)
VOL_SCAN_PATTERNS = {
    1: ScanPattern.LINE,
    2: ScanPattern.CIRCLE,
    3: ScanPattern.VOLUME,
    4: ScanPattern.VOLUME,
    5: ScanPattern.RADIAL,
}
#: Heidelberg's stated minimum of its Q index (signal strength, dB) for a usable Spectralis
#: scan: "the manufacturer signal index threshold provided by Heidelberg Engineering is a Q
#: score of 15" (BMC Ophthalmology 22:148, 2022, doi:10.1186/s12886-022-02356-4); the OSCAR-IB
#: quality criteria use the same 15 dB limit (PLoS One 7:e34823, 2012)
SPECTRALIS_Q_MINIMUM = 15.0
#: a Q outside this range is no measurement (the B-scan header holds an INVALID marker value
#: where a B-scan has none)
_Q_RANGE = (0.0, 100.0)


def read_heidelberg_vol(path: Path) -> Scan:
    """Heidelberg Spectralis .vol (HSF-OCT-1xx), every scan pattern (line, volume, circle,
    radial): B-scans, SLO localizer and B-scan positions.

    Built from eyepy's parsed file (``HeVolReader.parsed_file``), not its ``EyeVolume``, which
    refuses circular and radial scans although the file parses.
    """
    check_vol(path)  # the sizes the header claims, before eyepy allocates for them
    try:
        from eyepy.io.he.vol_reader import HeVolReader
    except ImportError as exc:
        raise missing_reader("eyepy", "Heidelberg .vol", path, exc) from exc

    try:
        parsed = HeVolReader(path).parsed_file
        raw = [np.asarray(b.data, dtype=np.float32) for b in parsed.bscans]
        slo = np.asarray(parsed.localizer)
    except PermissionError:
        raise
    except Exception as exc:  # construct raises StreamError / ConstError for cut or odd files
        logger.info("eyepy could not parse a .vol file: %s", type(exc).__name__)
        raise CorruptFileError(
            "The Heidelberg .vol file could not be parsed: it ends early or its header does not "
            f"match the HSF-OCT format ({library_cause(exc)}). Copy or export it again. "
            f"{_EXPORT_DICOM}",
            path=path,
        ) from exc
    pattern_no = int(parsed.scan_pattern or 0)
    pattern_name, pattern = VOL_PATTERNS.get(pattern_no, (f"scan pattern {pattern_no}", "line"))
    if not raw or len({r.shape for r in raw}) != 1:
        raise UnsupportedFormatError(
            f"This Heidelberg .vol file ({pattern_name}) holds "
            + ("no B-scan" if not raw else "B-scans of different sizes")
            + f", which octviewer cannot show. {_EXPORT_DICOM}",
            path=path,
        )
    # HEYEX's display transform (float reflectivity -> 8-bit), as Kermany's exports show it
    data = np.stack([vol_display(r) for r in raw])
    return Scan(
        frames=np.ascontiguousarray(data),
        metadata=_vol_metadata(parsed, path, len(data), pattern_no, pattern_name),
        identity=PatientIdentity(
            patient_id=str(parsed.patient_id or "").strip() or None,
            birth_date=_as_date_text(parsed.dob),
        ),
        localizer=Localizer(image=slo, positions=_vol_positions(parsed), pattern=pattern),
    )


def _vol_positions(parsed: object) -> np.ndarray | None:
    """B-scan start/end (circle: start and centre) in SLO pixels, from millimetres."""
    sx, sy = float(parsed.scale_x_slo or 0), float(parsed.scale_y_slo or 0)
    if sx <= 0 or sy <= 0:
        return None
    return np.asarray(
        [[b.start_x / sx, b.start_y / sy, b.end_x / sx, b.end_y / sy] for b in parsed.bscans],
        dtype=np.float32,
    )


def vol_protocol(
    pattern_no: int, pattern_name: str, field: str = ".vol header ScanPattern"
) -> ScanProtocol:
    """What the .vol header's ScanPattern states. A circle scan on the Spectralis is the
    peripapillary RNFL scan around the optic disc; for the other patterns the header names no
    region (GridType only says a thickness grid exists, not where), so the region stays unknown.
    """
    source = f"{field} {pattern_no}"
    pattern = VOL_SCAN_PATTERNS.get(pattern_no, ScanPattern.UNKNOWN)
    if pattern is ScanPattern.UNKNOWN:
        return ScanProtocol(source=source)
    region = ScanRegion.UNKNOWN
    if pattern is ScanPattern.CIRCLE:
        region = ScanRegion.OPTIC_DISC
        source += " (circular scan: the Spectralis peripapillary RNFL circle around the disc)"
    else:
        source += f" ({pattern_name})"
    return ScanProtocol(pattern=pattern, region=region, name=pattern_name, source=source)


def q_value(value: object) -> float:
    """One Spectralis Q value as a float; NaN where it is missing, not a number or outside
    0-100 dB (a hostile or INVALID header value)."""
    try:
        q = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return q if math.isfinite(q) and _Q_RANGE[0] <= q <= _Q_RANGE[1] else math.nan


def spectralis_quality(values: list[object], source: str) -> DeviceQuality | None:
    """Per-frame Q values as :class:`DeviceQuality`; None when no frame has one."""
    qs = tuple(q_value(v) for v in values)
    if not any(math.isfinite(q) for q in qs):
        return None
    return DeviceQuality(
        name="Spectralis Q", values=qs, minimum=SPECTRALIS_Q_MINIMUM, source=source
    )


def _vol_metadata(
    parsed: object, path: Path, n: int, pattern_no: int, pattern_name: str
) -> ScanMetadata:
    distance = float(parsed.distance or 0)
    spacing = PixelSpacing(
        row=float(parsed.scale_y),
        col=float(parsed.scale_x),
        unit="mm",
        frame=distance if distance > 0 and n > 1 else None,
    )
    lat = str(parsed.scan_position or "").strip().upper()
    return ScanMetadata(
        source_paths=(path,),
        format="Heidelberg VOL",
        modality=Modality.OCT_VOLUME if n > 1 else Modality.OCT_BSCAN,
        laterality={"OD": Laterality.RIGHT, "OS": Laterality.LEFT}.get(lat, Laterality.UNKNOWN),
        spacing=spacing,
        manufacturer="Heidelberg Engineering",
        device_model="Spectralis",
        acquisition_date=_as_date(parsed.visit_date),
        bit_depth=8,
        notes=(f"Heidelberg {pattern_name}",) if pattern_no != 1 else (),
        protocol=vol_protocol(pattern_no, pattern_name),
        device_quality=spectralis_quality(
            [getattr(b, "quality", None) for b in parsed.bscans][:n],
            ".vol B-scan header Quality",
        ),
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
    """Heidelberg .E2E: eyepy's E2E reader first, then oct-converter; where neither finds a
    B-scan, the refusal says so and what to export instead."""
    tried, missing = [], []
    for package, read in (("eyepy", _e2e_with_eyepy), ("oct-converter", _e2e_with_oct_converter)):
        try:
            return read(path)
        except ImportError as exc:
            missing.append((package, exc))
        except _NothingFound as exc:
            tried.append(f"{package} {exc}")
    if missing:  # the reader that is not installed might read it
        error = missing_reader(missing[0][0], "Heidelberg .E2E", path, missing[0][1])
        if tried:
            error.message = f"No B-scan could be read from this file ({'; '.join(tried)}). " + (
                error.message
            )
            error.args = (error.message,)
        raise error
    raise UnsupportedFormatError(
        "No B-scan could be read from this Heidelberg .E2E file: "
        + "; ".join(tried)
        + ". Heidelberg does not document the E2E format and minimised or newer E2E exports "
        "are not understood by the available readers. In Heyex, export the scan as DICOM "
        "(Ophthalmic Tomography) or as a .vol file (Heyex 1: Export > Raw data) and open that "
        "file instead.",
        path=path,
    )


class _NothingFound(Exception):
    """A reader parsed (or failed to parse) an E2E file and found no B-scan; text says which."""


def _e2e_with_eyepy(path: Path) -> Scan:
    from eyepy.io.he.e2e_reader import HeE2eReader  # the module itself: PyInstaller sees it

    try:
        with HeE2eReader(path) as reader:
            volumes = reader.volumes
    except Exception as exc:
        logger.info("eyepy could not read an E2E file: %s", type(exc).__name__)
        raise _NothingFound(f"could not parse it: {library_cause(exc)}") from exc
    volumes = [v for v in volumes if np.asarray(v.data).size]
    if not volumes:
        raise _NothingFound("found no series with B-scans in it")
    vol = volumes[0]
    data = np.asarray(vol.data)
    data = data[np.newaxis] if data.ndim == 2 else data
    lat = str(vol.laterality or "").strip().upper()
    meta = ScanMetadata(
        source_paths=(path,),
        format="Heidelberg E2E",
        modality=Modality.OCT_VOLUME if len(data) > 1 else Modality.OCT_BSCAN,
        laterality={"OD": Laterality.RIGHT, "OS": Laterality.LEFT}.get(lat, Laterality.UNKNOWN),
        spacing=PixelSpacing(row=float(vol.scale_y), col=float(vol.scale_x), unit="mm"),
        manufacturer="Heidelberg Engineering",
        bit_depth=8,
        **_e2e_eyepy_protocol(vol, len(data)),
    )
    return Scan(frames=np.ascontiguousarray(data), metadata=meta)


def _e2e_eyepy_protocol(vol: object, n: int) -> dict[str, object]:
    """Scan pattern and Q from eyepy's E2E B-scan headers (``scan_pattern``, numbered as in
    .vol, which eyepy itself assumes when it refuses patterns 2 and 5; ``quality_ui``, the
    per-B-scan quality of Heyex's metadata export). Only on real files: the minimised test
    file yields no B-scan. Anything odd leaves both unknown."""
    try:
        metas = list(vol.meta["bscan_meta"])[:n]  # type: ignore[attr-defined]
    except Exception as exc:  # an eyepy version or file without it
        logger.info("E2E: no B-scan metadata for the protocol (%s)", type(exc).__name__)
        return {}

    def field(meta: object, key: str) -> object:
        try:
            return meta[key]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):  # a B-scan without the field: not stated
            return None

    out: dict[str, object] = {}
    patterns = {field(m, "scan_pattern") for m in metas}
    if len(patterns) == 1:
        number = next(iter(patterns))
        if isinstance(number, int) and not isinstance(number, bool):
            name = VOL_PATTERNS.get(number, (f"scan pattern {number}",))[0]
            out["protocol"] = vol_protocol(number, name, field="E2E B-scan header scan pattern")
    if len(metas) == n:
        quality = spectralis_quality(
            [field(m, "quality_ui") for m in metas], "E2E B-scan header quality (eyepy)"
        )
        if quality is not None:
            out["device_quality"] = quality
    return out


def _e2e_with_oct_converter(path: Path) -> Scan:
    import contextlib
    import io

    from octviewer.core.io.octconverter_compat import import_readers

    readers = import_readers()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            result = readers.E2E(str(path)).read_oct_volume()
    except Exception as exc:
        logger.info("oct-converter could not read an E2E file: %s", type(exc).__name__)
        raise _NothingFound(f"could not parse it: {library_cause(exc)}") from exc
    volumes = [v for v in (result if isinstance(result, list) else [result]) if v.volume]
    if not volumes:
        raise _NothingFound("found no B-scans in it")
    data = np.stack([np.asarray(f) for f in volumes[0].volume])
    if data.dtype not in (np.uint8, np.uint16):
        data = data.astype(np.float32)
    lat = {"R": Laterality.RIGHT, "L": Laterality.LEFT}
    meta = ScanMetadata(
        source_paths=(path,),
        format="Heidelberg E2E",
        modality=Modality.OCT_VOLUME if len(data) > 1 else Modality.OCT_BSCAN,
        laterality=lat.get(str(volumes[0].laterality or "").upper()[:1], Laterality.UNKNOWN),
        manufacturer="Heidelberg Engineering",
        bit_depth=16 if data.dtype == np.uint16 else 8,
        protocol=_e2e_pattern_name(volumes[0]),
    )
    return Scan(frames=data, metadata=meta)


def _e2e_pattern_name(volume: object) -> ScanProtocol:
    """oct-converter keeps only the E2E's scan pattern text (e.g. "OCT ART Volume"), whose
    vocabulary is not documented: it becomes the protocol name, pattern and region stay
    unknown. One text for the whole file, else nothing."""
    try:
        texts = {str(t).strip() for t in volume.metadata["scan_pattern"].values()}  # type: ignore[attr-defined]
    except Exception as exc:  # not every oct-converter version or file has it
        logger.info("E2E: no scan pattern text for the protocol (%s)", type(exc).__name__)
        return ScanProtocol()
    texts.discard("")
    if len(texts) != 1:
        return ScanProtocol()
    return ScanProtocol(name=next(iter(texts))[:64], source="E2E scan pattern text (oct-converter)")
