"""DICOM through pydicom 3: single-frame, multi-frame Ophthalmic Tomography, intensity chain.

pydicom (and through it pylibjpeg) is imported inside the functions, so importing this module
stays cheap. Frames are decoded one at a time (``pydicom.pixels.iter_pixels``), never with
``ds.pixel_array`` on a whole volume.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.core.io import safety
from octviewer.core.scan import (
    Laterality,
    Localizer,
    Modality,
    PatientIdentity,
    PixelSpacing,
    Scan,
    ScanMetadata,
)
from octviewer.errors import (
    CorruptFileError,
    MissingDecoderError,
    NoPixelDataError,
    ScanReadError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)

OPT_SOP = "1.2.840.10008.5.1.4.1.1.77.1.5.4"  # Ophthalmic Tomography Image Storage
_OCT_SOPS = {OPT_SOP, "1.2.840.10008.5.1.4.1.1.77.1.5.8"}  # + OCT B-scan Volume Analysis
_PHOTO_SOPS = {
    "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.2",  # Ophthalmic Photography 16 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.3",  # Stereometric Relationship
    "1.2.840.10008.5.1.4.1.1.77.1.5.5",  # Wide Field Ophthalmic Photography Stereographic
    "1.2.840.10008.5.1.4.1.1.77.1.5.6",  # Wide Field Ophthalmic Photography 3D Coordinates
    "1.2.840.10008.5.1.4.1.1.77.1.5.7",  # Ophthalmic OCT En Face (an en-face, not a B-scan)
}
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# Transfer syntax name fragment -> what to install when its decoder is missing
_DECODER_PACKAGES = (
    ("JPEG-LS", "pyjpegls  (pip install pyjpegls)"),
    ("JPEG 2000", "pylibjpeg-openjpeg  (pip install pylibjpeg pylibjpeg-openjpeg)"),
    ("High-Throughput JPEG 2000", "pylibjpeg-openjpeg  (pip install pylibjpeg pylibjpeg-openjpeg)"),
    ("RLE", "pylibjpeg-rle  (pip install pylibjpeg pylibjpeg-rle)"),
    (
        "JPEG",
        'pylibjpeg-libjpeg  (pip install "octviewer[jpeg]", i.e. pylibjpeg pylibjpeg-libjpeg)',
    ),
)


#: What reading a malformed metadata value raises (a wrong VR, NaN, a sequence where a number
#: belongs, several values, a deferred value that cannot be read back).
_METADATA_ERRORS = (
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    NotImplementedError,
    OSError,
)


def tolerant(default: Any) -> Any:
    """Decorator for the metadata helpers: a malformed value means the information is
    unknown (``default``), logged, never a failure to open the scan. The pixels decide."""

    def wrap(func: Any) -> Any:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except _METADATA_ERRORS as exc:
                logger.info("ignoring malformed DICOM metadata in %s: %s", func.__name__, exc)
                return default

        return inner

    return wrap


def decoder_package(transfer_syntax_name: str) -> str:
    """The package that decodes a transfer syntax, as named in MissingDecoderError messages."""
    for fragment, package in _DECODER_PACKAGES:
        if fragment in transfer_syntax_name:
            return package
    return (
        "a pydicom pixel data plugin (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg)"
    )


# --- reading ----------------------------------------------------------------------------------
def read_header(path: Path, *, stop_before_pixels: bool = False, force: bool = True) -> Dataset:
    """Parse a DICOM file; large values (the pixels) are left on disk until needed."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if _blank_dataset(path):
        raise CorruptFileError(
            "The DICOM file is damaged: where its image description should begin it holds only "
            "zero bytes (the copy or the export was not written completely). Copy or export it "
            "again from the device.",
            path=path,
        )
    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=stop_before_pixels, defer_size="4 KB", force=force
        )
    except InvalidDicomError as exc:
        raise UnsupportedFormatError(
            "The file is not a DICOM file (it has no DICOM header). Export the scan again as "
            "DICOM, or open the image file itself.",
            path=path,
        ) from exc
    except (PermissionError, MemoryError):
        raise
    except Exception as exc:  # pydicom raises many types on damaged headers
        raise CorruptFileError(
            f"The DICOM file is damaged or incomplete and its header cannot be read ({_cause(exc)})."
            " Copy or export it again from the device.",
            path=path,
        ) from exc
    if "SOPClassUID" not in ds and "Rows" not in ds and "PatientID" not in ds:
        # force=True parses almost any bytes; a real DICOM object has at least some of these
        if _has_preamble(path):
            raise CorruptFileError(
                "The DICOM file is cut short: its header ends before the image description. "
                "Copy or export it again from the device.",
                path=path,
            )
        raise UnsupportedFormatError(
            "The file does not contain a DICOM image. Export the scan again as DICOM.",
            path=path,
        )
    return ds


def _blank_dataset(path: Path) -> bool:
    """True when the data set (after the preamble and the file meta group) starts with 64 zero
    bytes: pydicom would read those as millions of empty elements, for seconds, to conclude
    nothing."""
    with path.open("rb") as fh:
        head = fh.read(144)
        start = 0
        if head[128:132] == b"DICM":
            start = 132
            if head[132:134] == b"\x02\x00" and head[136:138] == b"UL":
                start = 144 + int.from_bytes(head[140:144], "little")
        fh.seek(start)
        window = fh.read(64)
    return len(window) == 64 and not any(window)


def _has_preamble(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


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
    meta = build_metadata(ds, (path,), decoded, fmt="DICOM", notes=tuple(notes))
    return Scan(frames=decoded.frames, metadata=meta, identity=identity_of(ds), localizer=localizer)


def has_pixels(ds: Dataset) -> bool:
    return any(kw in ds for kw in _PIXEL_KEYWORDS) and "Rows" in ds


@tolerant("unknown object")
def sop_class_name(ds: Dataset) -> str:
    from pydicom.uid import UID

    uid = ds.get("SOPClassUID") or getattr(
        ds.get("file_meta", None), "MediaStorageSOPClassUID", None
    )
    return UID(str(uid)).name if uid else "unknown object"


def require_pixels(ds: Dataset, path: Path) -> None:
    if not has_pixels(ds):
        raise NoPixelDataError(
            f"This DICOM file is a '{sop_class_name(ds)}' object and holds no image to show "
            "(for example raw device data or a report). Open the image export of the "
            "examination instead (an OCT or photography DICOM).",
            path=path,
        )


@dataclass(frozen=True)
class DecodedDicom:
    frames: np.ndarray  # (n, rows, cols), display-ready
    bit_depth: int
    was_color: bool
    notes: tuple[str, ...] = ()  # e.g. frames declared but not in the file


@dataclass(frozen=True)
class _Layout:
    """The header attributes that size the pixel buffer, parsed and bounded."""

    rows: int
    cols: int
    frames: int
    itemsize: int
    samples: int
    palette: bool


def decode_frames(path: Path, ds: Dataset) -> DecodedDicom:
    """Decode every frame of ``path`` one by one, applying the intensity chain to each.

    A file that holds fewer frames than its Number of Frames declares opens with the frames it
    holds, and says so in ``notes`` (never with uninitialised memory for the others)."""
    from pydicom.pixels import apply_color_lut, iter_pixels

    require_pixels(ds, path)
    lay = _layout(ds, path)
    safety.check_frame_size(lay.rows, lay.cols, path)
    safety.check_scan_bytes(lay.frames, lay.rows, lay.cols, lay.itemsize, path)
    _check_decoder(ds, path)
    _check_stream_sizes(ds, path, lay)
    colour = lay.samples > 1 or lay.palette
    out: np.ndarray | None = None
    bits, count = 8, 0
    try:
        for i, raw in enumerate(iter_pixels(path, **_bare_file_options(ds))):
            if i >= lay.frames:
                break
            if lay.palette:
                frame, bits = _rgb_to_grey(apply_color_lut(raw, ds)), 8
            elif colour:
                frame, bits = _rgb_to_grey(raw), 8
            else:
                frame, bits = apply_intensity_chain(raw, pixel_view(ds, i))
            if out is None:
                out = np.empty((lay.frames, *frame.shape), dtype=frame.dtype)
            out[i] = frame
            count = i + 1
    except ScanReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # pydicom and its decoder plugins raise many types
        raise CorruptFileError(
            "The image data in this DICOM file is damaged or incomplete and cannot be decoded "
            f"({_cause(exc)}). Export it again from the device.",
            path=path,
        ) from exc
    if out is None:
        raise CorruptFileError("The DICOM file declares an image but holds no frames.", path=path)
    notes: tuple[str, ...] = ()
    if count < lay.frames:
        logger.warning("%s declares %d frames but holds %d", path.name, lay.frames, count)
        out = out[:count].copy()
        notes = (f"the file declares {lay.frames} frames but holds only {count}: those are shown",)
    from octviewer.core.io.images import finite_frames

    out, note = finite_frames(out, path)
    return DecodedDicom(out, bits, colour, notes + note)


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def header_int(
    ds: Dataset, kw: str, path: Path, *, default: int | None = None, lo: int = 0, hi: int = 1 << 31
) -> int:
    """A whole-number attribute of the header (Rows, Number of Frames...), or
    :class:`CorruptFileError` naming it when it is absent, not a whole number (a wrong VR,
    NaN, several values, a sequence) or outside ``[lo, hi]``."""
    try:
        value = ds.get(kw)
    except Exception as exc:  # pydicom converts raw values lazily: a bad VR fails here
        raise _bad_attr(kw, f"cannot be read ({_cause(exc)})", path) from exc
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        if default is None:
            raise _bad_attr(kw, "is missing", path)
        return default
    if not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__len__"):
        if len(value) != 1:
            raise _bad_attr(kw, f"has {len(value)} values instead of one", path)
        value = value[0]
    try:
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        number = float(text)
    except (TypeError, ValueError, OverflowError):
        raise _bad_attr(kw, f"({str(value)[:20]!r}) is not a whole number", path) from None
    if not (math.isfinite(number) and number == int(number) and lo <= number <= hi):
        raise _bad_attr(kw, f"({str(value)[:20]!r}) is not a whole number in [{lo}, {hi}]", path)
    return int(number)


def _bad_attr(kw: str, problem: str, path: Path) -> CorruptFileError:
    return CorruptFileError(
        f"The DICOM header is damaged: its {kw} {problem}. Export the scan again from the device.",
        path=path,
    )


def _layout(ds: Dataset, path: Path) -> _Layout:
    rows = header_int(ds, "Rows", path, lo=1, hi=65535)
    cols = header_int(ds, "Columns", path, lo=1, hi=65535)
    frames = header_int(ds, "NumberOfFrames", path, default=1, lo=1)
    bits = header_int(ds, "BitsAllocated", path, default=8, lo=1, hi=64)
    samples = header_int(ds, "SamplesPerPixel", path, default=1, lo=1, hi=4)
    try:
        palette = str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR"
    except Exception as exc:  # a bad VR, converted lazily
        raise _bad_attr("PhotometricInterpretation", "cannot be read", path) from exc
    return _Layout(rows, cols, frames, 1 if bits <= 8 else 2, samples, palette)


def _check_stream_sizes(ds: Dataset, path: Path, lay: _Layout) -> None:
    """For compressed pixel data: the size each fragment's own header declares, before the
    decoder allocates for it (:func:`octviewer.core.io.safety.stream_size`)."""
    from pydicom.encaps import generate_fragments

    if not _transfer_syntax(ds).is_encapsulated:
        return
    try:
        data = ds.PixelData
        fragments = generate_fragments(data)
        for fragment in fragments:
            size = safety.stream_size(bytes(fragment[:65536]))
            if size is not None:
                safety.check_stream_size(size, lay.rows, lay.cols, lay.samples, path)
    except ScanReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # the encapsulation itself (item tags, lengths) is damaged
        raise CorruptFileError(
            "The compressed image data in this DICOM file is damaged (its fragments cannot be "
            f"read: {_cause(exc)}). Export it again from the device.",
            path=path,
        ) from exc


def _transfer_syntax(ds: Dataset) -> Any:
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    fm = getattr(ds, "file_meta", None)
    if fm is not None and fm.get("TransferSyntaxUID"):
        value = fm.TransferSyntaxUID
        return UID(value.decode("ascii", "replace") if isinstance(value, bytes) else str(value))
    implicit, little = getattr(ds, "original_encoding", (False, True))
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def _bare_file_options(ds: Dataset) -> dict[str, Any]:
    """A file written without the DICOM file meta (no preamble): tell pydicom its encoding."""
    fm = getattr(ds, "file_meta", None)
    if fm is not None and fm.get("TransferSyntaxUID"):
        return {}
    return {"transfer_syntax_uid": _transfer_syntax(ds)}


def _check_decoder(ds: Dataset, path: Path) -> None:
    from pydicom.pixels import get_decoder

    ts = _transfer_syntax(ds)
    if not ts.is_transfer_syntax:
        raise UnsupportedFormatError(
            f"The DICOM file declares the transfer syntax '{str(ts)[:64]}', which is not a DICOM "
            "transfer syntax octviewer knows, so its pixels cannot be interpreted. Export it "
            "again (uncompressed, or JPEG / JPEG 2000 / RLE).",
            path=path,
        )
    if not ts.is_compressed:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise UnsupportedFormatError(
            f"The image is compressed with '{ts.name}', which octviewer cannot decode. Export "
            "it again uncompressed or with JPEG / JPEG 2000 / RLE compression.",
            path=path,
        ) from exc
    if not decoder.is_available:
        raise _missing_decoder(ds, path)


def _missing_decoder(ds: Dataset, path: Path) -> MissingDecoderError:
    ts = _transfer_syntax(ds)
    return MissingDecoderError(
        f"This DICOM image is compressed with '{ts.name}' and the decoder for it is not "
        f"installed. Install {decoder_package(ts.name)} and open the file again.",
        path=path,
    )


def _rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    grey = rgb[..., :3].astype(np.float32) @ weights
    if rgb.dtype != np.uint8:
        top = 65535.0 if rgb.dtype == np.uint16 else float(rgb.max() or 1)
        grey *= 255.0 / top
    return np.clip(grey.round(), 0, 255).astype(np.uint8)


# --- intensity chain --------------------------------------------------------------------------
_VIEW_KEYWORDS = (
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
)


def pixel_view(ds: Dataset, index: int) -> Dataset:
    """The attributes the intensity chain needs for frame ``index``: top level, overridden by
    the shared, then the per-frame functional groups (Pixel Value Transformation, Frame VOI LUT)."""
    from pydicom import Dataset

    view = Dataset()
    if hasattr(ds, "file_meta"):
        view.file_meta = ds.file_meta
    for kw in _VIEW_KEYWORDS:
        if kw in ds:
            view[kw] = ds[kw]
    groups = []
    if ds.get("SharedFunctionalGroupsSequence"):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    for group in groups:
        for seq_kw in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
            seq = group.get(seq_kw)
            if seq:
                for elem in seq[0]:
                    view[elem.tag] = elem
    return view


def apply_intensity_chain(arr: np.ndarray, view: Dataset) -> tuple[np.ndarray, int]:
    """Modality LUT / rescale, then VOI LUT / window, then MONOCHROME1 inversion.

    Returns the display-ready frame (uint8, uint16 or float32) and its bit depth.
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if view.get("PhotometricInterpretation") == "MONOCHROME1":
            out = float(out.max() + out.min()) - out
        return out, 32
    bits = int(view.get("BitsStored") or view.get("BitsAllocated") or arr.dtype.itemsize * 8)
    signed = int(view.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    changed = False
    if view.get("ModalityLUTSequence"):
        arr = apply_modality_lut(arr, view)
        lo, hi = 0, 2 ** int(view.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
        changed = True
    elif "RescaleSlope" in view and "RescaleIntercept" in view:
        slope, intercept = float(view.RescaleSlope), float(view.RescaleIntercept)
        if (slope, intercept) != (1.0, 0.0):
            arr = apply_modality_lut(arr, view)
            lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
            changed = True
    voi_seq = view.get("VOILUTSequence")
    if voi_seq and voi_seq[0].get("LUTDescriptor") is not None:
        arr = apply_voi_lut(arr, view, prefer_lut=True)
        lo, hi = 0, 2 ** int(voi_seq[0].LUTDescriptor[2]) - 1
        changed = True
    elif view.get("WindowCenter") is not None and view.get("WindowWidth") is not None:
        arr = apply_voi_lut(arr, view, prefer_lut=False)  # output spans the same [lo, hi]
        changed = True
    if view.get("PhotometricInterpretation") == "MONOCHROME1":
        arr = (lo + hi) - arr.astype(np.float64 if changed or signed else np.int64)
        changed = changed or signed
    if not changed and lo >= 0 and hi <= 65535:
        dtype = np.uint8 if hi <= 255 else np.uint16
        return arr.astype(dtype, copy=False), 8 if hi <= 255 else 16
    out_bits = 8 if hi - lo <= 255 else 16
    top = 2**out_bits - 1
    scaled = (arr.astype(np.float64) - lo) * (top / max(hi - lo, 1e-12))
    return np.clip(scaled.round(), 0, top).astype(
        np.uint8 if out_bits == 8 else np.uint16
    ), out_bits


# --- metadata ---------------------------------------------------------------------------------


@tolerant(Modality.UNKNOWN)
def modality_of(ds: Dataset, n_frames: int) -> Modality:
    sop = str(ds.get("SOPClassUID", ""))
    dicom_modality = str(ds.get("Modality", "")).upper()
    if sop in _OCT_SOPS or (sop not in _PHOTO_SOPS and dicom_modality == "OPT"):
        return Modality.OCT_VOLUME if n_frames > 1 else Modality.OCT_BSCAN
    if sop in _PHOTO_SOPS or dicom_modality in ("OP", "XC"):
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


def _first_item(ds: Dataset, group_kw: str, seq_kw: str) -> Dataset | None:
    groups = ds.get(group_kw)
    if groups and groups[0].get(seq_kw):
        return groups[0].get(seq_kw)[0]
    return None


@tolerant(None)
def spacing_of(ds: Dataset) -> PixelSpacing | None:
    """Pixel spacing (mm) from the functional groups, else the top level; B-scan distance from
    Spacing Between Slices or the per-frame plane positions."""
    measures = _first_item(
        ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence"
    ) or _first_item(ds, "PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence")
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


@tolerant(None)
def instance_orientation(ds: Dataset) -> np.ndarray | None:
    value = ds.get("ImageOrientationPatient")
    if value is None:
        item = _first_item(ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence")
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


def find_localizer(
    folder: Path,
    ref_uid: str,
    positions: np.ndarray,
    *,
    exclude: Path | None = None,
    limit: int = 2000,
) -> tuple[Localizer | None, str | None]:
    """Look for the referenced localizer image among the DICOM files of ``folder``."""
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
            try:
                image = read_dicom(candidate).frames[0]
            except ScanReadError as exc:
                logger.warning("the localizer image could not be read: %s", exc)
                break
            return Localizer(image=image, positions=positions), None
    return None, (
        f"B-scan positions are known for {len(positions)} frame(s) on localizer {ref_uid}, but "
        "that localizer image is not in the same folder"
    )


def _text_of(ds: Dataset, kw: str) -> str | None:
    """A text attribute, stripped; None when absent, empty or unreadable (a bad VR)."""
    try:
        value = str(ds.get(kw) or "").strip()
    except _METADATA_ERRORS:
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


def build_metadata(
    ds: Dataset,
    paths: tuple[Path, ...],
    decoded: DecodedDicom,
    *,
    fmt: str,
    spacing: PixelSpacing | None = None,
    notes: tuple[str, ...] = (),
) -> ScanMetadata:
    n_frames = int(decoded.frames.shape[0])
    extra = ("converted from colour to greyscale",) if decoded.was_color else ()
    extra += decoded.notes

    def text(kw: str) -> str | None:
        return _text_of(ds, kw)

    return ScanMetadata(
        source_paths=paths,
        format=fmt,
        modality=modality_of(ds, n_frames),
        laterality=laterality_of(ds),
        spacing=spacing or spacing_of(ds),
        manufacturer=text("Manufacturer"),
        device_model=text("ManufacturerModelName"),
        acquisition_date=_date_of(ds),
        sop_class=sop_class_name(ds),
        series_uid=text("SeriesInstanceUID"),
        was_color=decoded.was_color,
        bit_depth=decoded.bit_depth,
        notes=extra + notes,
    )
