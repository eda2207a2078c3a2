"""Reading a DICOM header: the parse itself, the checks that it is an image, the
whole-number attributes that size the pixels, the transfer syntax, and the ``tolerant``
decorator of the metadata helpers."""

from __future__ import annotations

import functools
import io
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.core.io.errors import library_cause
from octviewer.errors import (
    CorruptFileError,
    NoPixelDataError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)


OPT_SOP = "1.2.840.10008.5.1.4.1.1.77.1.5.4"  # Ophthalmic Tomography Image Storage
OCT_SOPS = {OPT_SOP, "1.2.840.10008.5.1.4.1.1.77.1.5.8"}  # + OCT B-scan Volume Analysis
PHOTO_SOPS = {
    "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.2",  # Ophthalmic Photography 16 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.3",  # Stereometric Relationship
    "1.2.840.10008.5.1.4.1.1.77.1.5.5",  # Wide Field Ophthalmic Photography Stereographic
    "1.2.840.10008.5.1.4.1.1.77.1.5.6",  # Wide Field Ophthalmic Photography 3D Coordinates
    "1.2.840.10008.5.1.4.1.1.77.1.5.7",  # Ophthalmic OCT En Face (an en-face, not a B-scan)
}
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

#: What reading a malformed metadata value raises (a wrong VR, NaN, a sequence where a number
#: belongs, several values, a deferred value that cannot be read back).
METADATA_ERRORS = (
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
            except METADATA_ERRORS as exc:
                logger.info("ignoring malformed DICOM metadata in %s: %s", func.__name__, exc)
                return default

        return inner

    return wrap


#: Most read calls one parse of a DICOM header may make (pydicom reads an element with one or
#: two): about 200 000 elements, some 20 times what the header of a 4 096-frame OCT volume
#: holds, and one to three seconds of parsing.
MAX_HEADER_READS = 400_000
#: Most reads in a row that return only zero bytes: a run of zero bytes parses as millions of
#: empty elements (a minute for 64 MB), no real header has more than a few in a row.
MAX_ZERO_READS = 512


class HeaderTooLongError(Exception):
    """A DICOM header parse stopped at :data:`MAX_HEADER_READS` (internal: becomes a
    :class:`CorruptFileError` where it is caught)."""


class _CountedReader(io.BufferedReader):
    """The file as pydicom reads it, with a bound on the number of reads. A real
    ``BufferedReader``, so pydicom re-opens the path itself for deferred values."""

    reads = 0
    zero_reads = 0
    file_size = 1 << 62

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if size is not None and size > 0:  # a length field beyond the file allocates nothing
            size = min(size, max(0, self.file_size - self.tell()))
        data = super().read(size)
        self.zero_reads = self.zero_reads + 1 if data and not any(data[:64]) else 0
        if self.reads > MAX_HEADER_READS or self.zero_reads > MAX_ZERO_READS:
            raise HeaderTooLongError(f"{self.reads} reads, {self.zero_reads} of zeros in a row")
        return data


def _bounded_open(name: str | Path, mode: str = "rb") -> _CountedReader:
    """The file opened as :class:`_CountedReader` (read only): pydicom re-opens a file this
    way to read a deferred value, which it reads whole, at the length its element states."""
    if mode != "rb":
        raise ValueError(f"a DICOM file is opened for reading only, not {mode!r}")
    fh = _CountedReader(io.FileIO(str(name), "rb"))
    fh.file_size = Path(name).stat().st_size
    return fh


def dcmread_bounded(path: Path, **kwargs: Any) -> Dataset:
    """``pydicom.dcmread(path, **kwargs)`` whose work is bounded by :data:`MAX_HEADER_READS`
    (raises :class:`HeaderTooLongError` beyond it). A value left on disk (``defer_size``) is
    read back through the same bounds: never more bytes than the file holds after it."""
    import pydicom

    with _bounded_open(path) as fh:
        ds = pydicom.dcmread(fh, **kwargs)
    ds.fileobj_type = _bounded_open  # pydicom's deferred read calls it with (filename, "rb")
    return ds


def too_long(path: Path) -> CorruptFileError:
    return CorruptFileError(
        "The DICOM file is damaged: its header does not end where an image description should "
        "(a long run of zero bytes, or an endless list of elements: typically an interrupted "
        "copy), so octviewer stopped reading it. Copy or export it again from the device.",
        path=path,
    )


def read_header(path: Path, *, stop_before_pixels: bool = False, force: bool = True) -> Dataset:
    """Parse a DICOM file; large values (the pixels) are left on disk until needed. The parse
    is bounded (:data:`MAX_HEADER_READS`)."""
    from pydicom.errors import InvalidDicomError

    if _blank_dataset(path):
        raise CorruptFileError(
            "The DICOM file is damaged: where its image description should begin it holds only "
            "zero bytes (the copy or the export was not written completely). Copy or export it "
            "again from the device.",
            path=path,
        )
    try:
        ds = dcmread_bounded(
            path, stop_before_pixels=stop_before_pixels, defer_size="4 KB", force=force
        )
    except HeaderTooLongError as exc:
        raise too_long(path) from exc
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
            f"The DICOM file is damaged or incomplete and its header cannot be read ({error_cause(exc)})."
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


def error_cause(exc: BaseException) -> str:
    return library_cause(exc)


def header_int(
    ds: Dataset, kw: str, path: Path, *, default: int | None = None, lo: int = 0, hi: int = 1 << 31
) -> int:
    """A whole-number attribute of the header (Rows, Number of Frames...), or
    :class:`CorruptFileError` naming it when it is absent, not a whole number (a wrong VR,
    NaN, several values, a sequence) or outside ``[lo, hi]``."""
    try:
        value = ds.get(kw)
    except Exception as exc:  # pydicom converts raw values lazily: a bad VR fails here
        raise bad_attr(kw, f"cannot be read ({error_cause(exc)})", path) from exc
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        if default is None:
            raise bad_attr(kw, "is missing", path)
        return default
    if not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__len__"):
        if len(value) != 1:
            raise bad_attr(kw, f"has {len(value)} values instead of one", path)
        value = value[0]
    try:
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        number = float(text)
    except (TypeError, ValueError, OverflowError):
        raise bad_attr(kw, f"({str(value)[:20]!r}) is not a whole number", path) from None
    if not (math.isfinite(number) and number == int(number) and lo <= number <= hi):
        raise bad_attr(kw, f"({str(value)[:20]!r}) is not a whole number in [{lo}, {hi}]", path)
    return int(number)


def bad_attr(kw: str, problem: str, path: Path) -> CorruptFileError:
    return CorruptFileError(
        f"The DICOM header is damaged: its {kw} {problem}. Export the scan again from the device.",
        path=path,
    )


def transfer_syntax(ds: Dataset) -> Any:
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    fm = getattr(ds, "file_meta", None)
    if fm is not None and fm.get("TransferSyntaxUID"):
        value = fm.TransferSyntaxUID
        return UID(value.decode("ascii", "replace") if isinstance(value, bytes) else str(value))
    implicit, little = getattr(ds, "original_encoding", (False, True))
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def bare_file_options(ds: Dataset) -> dict[str, Any]:
    """A file written without the DICOM file meta (no preamble): tell pydicom its encoding."""
    fm = getattr(ds, "file_meta", None)
    if fm is not None and fm.get("TransferSyntaxUID"):
        return {}
    return {"transfer_syntax_uid": transfer_syntax(ds)}
