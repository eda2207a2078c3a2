"""Sizes a vendor file's header claims, checked against the file's length and the memory
budget of :mod:`octviewer.core.io.safety` *before* a library allocates for them.

eyepy parses a Heidelberg ``.vol`` with ``construct``, which reads ``SizeXSlo x SizeYSlo``
bytes for the SLO and ``SizeX x SizeZ x 4`` for each B-scan as the header says: a header that
claims 4 billion pixels makes Python allocate 4 GB before anything notices that the file holds
2 MB. oct-converter does the same with Topcon chunk and image sizes. Here a few header fields
are read with :mod:`struct` and a file whose claimed sizes exceed its length, or the budget, is
refused with a message that says which size.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from octviewer.core.io import safety
from octviewer.errors import CorruptFileError

logger = logging.getLogger(__name__)

#: HSF-OCT-10x file header (eyepy ``vol_reader.vol_format``): 2 048 bytes, then the SLO
#: (SizeXSlo x SizeYSlo bytes), then per B-scan a header of BScanHdrSize bytes and
#: SizeX x SizeZ float32 samples.
VOL_HEADER_BYTES = 2048
#: a B-scan header holds at least its 256 bytes of general fields
VOL_MIN_BSCAN_HEADER = 256
#: Bytes a ``.vol`` may hold after its last B-scan without its header being wrong (the
#: development files end with 0 or 132). More than this *and* more than one whole B-scan of the
#: header's size means the header's B-scan size or count disagrees with the file: with one
#: B-scan there is no second B-scan header whose position would show it, and eyepy reads a
#: slice of the real image (a SizeX of 1 gives a 496 x 1 strip of the vitreous: all zeros).
VOL_TRAILER_BYTES = 64 * 1024
#: Most chunks a Topcon file may list (real files hold a few dozen).
MAX_TOPCON_CHUNKS = 4096
#: the Topcon chunks that hold the B-scans, in the order oct-converter looks for them
_TOPCON_OCT = {"FDA": (b"@IMG_JPEG", b"@IMG_MOT_COMP_03"), "FDS": (b"@IMG_SCAN_03",)}
_TOPCON_CONTOUR = b"@CONTOUR_INFO"
_CONTOUR_HEADER = 34  # id (20 bytes), method, format, width, height, size (uint32s)
#: fundus image chunks: (header bytes, offset of the image byte count in the header)
TOPCON_FUNDUS = {b"@IMG_FUNDUS": (24, 20), b"@IMG_TRC_02": (21, 17), b"@IMG_OBS": (21, 17)}


@dataclass(frozen=True)
class VolSizes:
    """The sizes a ``.vol`` header claims (SizeX = A-scans per B-scan, SizeZ = depth)."""

    size_x: int
    n_bscans: int
    size_z: int
    slo_x: int
    slo_y: int
    bscan_header: int

    @property
    def bscan_bytes(self) -> int:
        """One B-scan as the file stores it: its header and SizeX x SizeZ float32 samples."""
        return self.bscan_header + self.size_x * self.size_z * 4

    @property
    def expected_bytes(self) -> int:
        return VOL_HEADER_BYTES + self.slo_x * self.slo_y + self.n_bscans * self.bscan_bytes


def _damaged(what: str, path: Path) -> CorruptFileError:
    return CorruptFileError(
        f"The {what}; it is damaged or was cut short, and octviewer did not read it (that "
        "could exhaust the computer's memory). Copy or export it again from the device.",
        path=path,
    )


def check_vol(path: Path) -> VolSizes:
    """Read and check the HSF-OCT header and each B-scan header's size fields (no pixels)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(VOL_HEADER_BYTES)
        if len(head) < VOL_HEADER_BYTES:
            raise _damaged(
                f"Heidelberg .vol file ends inside its {VOL_HEADER_BYTES}-byte file header", path
            )
        size_x, n_bscans, size_z = struct.unpack_from("<3I", head, 12)
        slo_x, slo_y = struct.unpack_from("<2I", head, 48)
        (hdr,) = struct.unpack_from("<I", head, 100)
        sizes = VolSizes(size_x, n_bscans, size_z, slo_x, slo_y, hdr)
        _check_vol_sizes(sizes, size, path)
        _check_bscan_headers(fh, sizes, path)
    return sizes


def _check_vol_sizes(s: VolSizes, file_size: int, path: Path) -> None:
    if min(s.size_x, s.n_bscans, s.size_z) == 0 or s.bscan_header < VOL_MIN_BSCAN_HEADER:
        raise _damaged(
            f"Heidelberg .vol header declares an impossible size ({s.n_bscans} B-scans of "
            f"{s.size_x} x {s.size_z} pixels, B-scan headers of {s.bscan_header} bytes)",
            path,
        )
    if s.expected_bytes > file_size:
        raise CorruptFileError(
            "The Heidelberg .vol file could not be parsed: it ends early (its header declares "
            f"{s.n_bscans} B-scan(s) of {s.size_x} x {s.size_z} pixels and a {s.slo_x} x "
            f"{s.slo_y} SLO image, {s.expected_bytes / 1e6:,.1f} MB of data, but the file holds "
            f"{file_size / 1e6:,.1f} MB), or its header is damaged; octviewer read nothing "
            "more. Copy or export it again from the device.",
            path=path,
        )
    if file_size - s.expected_bytes > max(VOL_TRAILER_BYTES, s.bscan_bytes):
        raise CorruptFileError(
            "The Heidelberg .vol file does not match its header: the header declares "
            f"{s.n_bscans} B-scan(s) of {s.size_x} x {s.size_z} pixels and a {s.slo_x} x "
            f"{s.slo_y} SLO image ({s.expected_bytes / 1e6:,.2f} MB of data), but the file holds "
            f"{file_size / 1e6:,.2f} MB, more than another whole B-scan beyond what the header "
            "describes. The header's B-scan size or count is damaged, and what it describes "
            "would be a slice of the real image; octviewer did not show it. Copy or export it "
            "again from the device.",
            path=path,
        )
    safety.check_frame_size(s.size_z, s.size_x, path)
    if s.slo_x and s.slo_y:
        safety.check_frame_size(s.slo_y, s.slo_x, path)
    safety.check_scan_bytes(s.n_bscans, s.size_z, s.size_x, 4, path)  # float32 as eyepy reads


def _check_bscan_headers(fh: object, s: VolSizes, path: Path) -> None:
    """Each B-scan header repeats BScanHdrSize (offset 12) and its segmentation lines
    (NumSeg x SizeX x 4 bytes, offset 48) must fit inside it."""
    start = VOL_HEADER_BYTES + s.slo_x * s.slo_y
    step = s.bscan_header + s.size_x * s.size_z * 4
    for i in range(s.n_bscans):
        fh.seek(start + i * step)  # type: ignore[attr-defined]
        head = fh.read(52)  # type: ignore[attr-defined]
        if len(head) < 52:
            raise _damaged(f"Heidelberg .vol file ends inside the header of B-scan {i + 1}", path)
        (hdr,) = struct.unpack_from("<I", head, 12)
        (n_seg,) = struct.unpack_from("<I", head, 48)
        if hdr != s.bscan_header or VOL_MIN_BSCAN_HEADER + n_seg * 4 * s.size_x > hdr:
            raise _damaged(
                f"header of B-scan {i + 1} in this Heidelberg .vol file does not match the file "
                f"header (header size {hdr} instead of {s.bscan_header}, or {n_seg} "
                "segmentation lines that do not fit in it)",
                path,
            )


def topcon_chunks(path: Path, variant: str) -> dict[bytes, tuple[int, int]]:
    """The chunk list of a Topcon ``.fda`` / ``.fds`` (name -> first location, size), walked
    as oct-converter walks it, each chunk checked to lie inside the file; the OCT image
    chunk's own sizes are checked too (:func:`_check_topcon_oct`)."""
    size, what = path.stat().st_size, f"Topcon .{variant.lower()}"
    chunks: dict[bytes, tuple[int, int]] = {}
    contours: list[tuple[int, int]] = []  # every layer-segmentation chunk (oct-converter reads all)
    with path.open("rb") as fh:
        fh.seek(15)
        for _ in range(MAX_TOPCON_CHUNKS):
            name_size = fh.read(1)
            if not name_size:  # real files end the list with a zero byte
                raise _damaged(f"{what} file ends inside its list of data chunks", path)
            if name_size == b"\x00":
                break
            name = fh.read(name_size[0])
            raw = fh.read(4)
            if len(raw) < 4:
                raise _damaged(f"{what} file ends inside its list of data chunks", path)
            (length,) = struct.unpack("<I", raw)
            at = fh.tell()
            if at + length > size:
                raise _damaged(
                    f"{what} file declares a data chunk of {length / 1e6:,.1f} MB at byte "
                    f"{at:,}, beyond its end ({size:,} bytes)",
                    path,
                )
            chunks.setdefault(name, (at, length))
            if name == _TOPCON_CONTOUR:
                contours.append((at, length))
            fh.seek(length, 1)
        else:
            raise _damaged(f"{what} file lists more than {MAX_TOPCON_CHUNKS} data chunks", path)
        for name in _TOPCON_OCT[variant]:
            if name in chunks:
                _check_topcon_oct(fh, name, *chunks[name], what, path)
                break
        for at, length in contours:
            _check_topcon_contour(fh, at, length, what, path)
    return chunks


def _check_topcon_contour(fh: object, at: int, length: int, what: str, path: Path) -> None:
    """A layer-segmentation chunk (``@CONTOUR_INFO``: a 34-byte header, then width x height
    16-bit samples) against its own length: oct-converter reads every such chunk with the
    B-scans and allocates what its header states (a fuzzed width asked for gigabytes)."""
    fh.seek(at)  # type: ignore[attr-defined]
    head = fh.read(_CONTOUR_HEADER)  # type: ignore[attr-defined]
    if len(head) < _CONTOUR_HEADER or length < _CONTOUR_HEADER:
        raise _damaged(f"{what} file has a layer segmentation chunk too short for its header", path)
    width, height = struct.unpack("<II", head[22:30])
    if _CONTOUR_HEADER + 2 * width * height > length:
        raise _damaged(
            f"{what} file has a layer segmentation chunk that states {width:,} x {height:,} "
            f"samples, more than its {length:,} bytes hold",
            path,
        )


def _check_topcon_oct(fh: object, name: bytes, at: int, length: int, what: str, path: Path) -> None:
    """Width, height and number of B-scans of the OCT image chunk against the chunk's length
    (16-bit samples) and the memory budget, before oct-converter reads that many bytes."""
    jpeg = name == b"@IMG_JPEG"
    fh.seek(at)  # type: ignore[attr-defined]
    head = fh.read(25 if jpeg else 22)  # type: ignore[attr-defined]
    if len(head) < (25 if jpeg else 22):
        raise _damaged(f"{what} file ends inside its B-scan header", path)
    if jpeg:  # scan mode, two unknown, width, height, B-scans (oct-converter's oct_header)
        width, height, n = struct.unpack_from("<3I", head, 9)
    else:  # scan mode, width, height, bits per pixel, B-scans (oct_header_2)
        width, height, _bits, n = struct.unpack_from("<4I", head, 1)
    if min(width, height, n) == 0:
        raise _damaged(
            f"{what} file declares an empty B-scan volume ({n} x {width} x {height})", path
        )
    safety.check_frame_size(height, width, path)
    safety.check_scan_bytes(n, height, width, 2, path)
    raw_bytes = width * height * n * 2
    if not jpeg and raw_bytes > length - len(head):
        raise _damaged(
            f"{what} file declares {n} B-scan(s) of {width} x {height} pixels "
            f"({raw_bytes / 1e6:,.1f} MB) in a data chunk of {length / 1e6:,.1f} MB",
            path,
        )
    if jpeg and n * 4 > length:
        raise _damaged(f"{what} file declares {n} B-scans in a chunk too small for them", path)


def fundus_fits(path: Path, chunks: dict[bytes, tuple[int, int]]) -> bool:
    """Whether every fundus image chunk's own byte count fits inside the chunk (else
    oct-converter would read, and allocate, what the chunk header claims)."""
    with path.open("rb") as fh:
        for name, (header, at_size) in TOPCON_FUNDUS.items():
            if name not in chunks:
                continue
            at, length = chunks[name]
            fh.seek(at + at_size)
            raw = fh.read(4)
            if len(raw) < 4 or struct.unpack("<I", raw)[0] > length - header:
                logger.info("Topcon fundus chunk %s claims more bytes than it holds", name)
                return False
    return True
