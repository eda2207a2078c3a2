"""Memory safety: refuse absurd sizes before decoding, shrink very large photographs safely.

All checks use sizes read from headers, before any pixel is decoded, so a decompression bomb
(a tiny file that claims 30 000 x 30 000 pixels) is refused without allocating anything. For
compressed DICOM the size the stream itself declares (JPEG SOF, JPEG-LS SOF55, JPEG 2000 SIZ)
is checked too (:func:`stream_size`): the decoder allocates for that one, not for the
header's Rows x Columns.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from octviewer.errors import CorruptFileError, ImageTooLargeError

#: Largest frame decoded at full resolution (about 8 200 x 8 200). Bigger frames are refused,
#: except JPEGs, which the decoder can shrink 2x, 4x or 8x while decoding.
MAX_DECODE_PIXELS = 64 * 1024 * 1024
#: Frames above this (e.g. a 6 000 x 4 000 fundus photo) are shrunk after decoding; no OCT
#: B-scan comes close (they are about 500 x 1 000).
MAX_KEEP_PIXELS = 4096 * 4096
#: Largest pixel buffer a whole scan may occupy once decoded.
MAX_SCAN_BYTES = 2 * 1024**3
#: More frames than any real OCT volume has (dense Spectralis volumes have up to about 1 000).
MAX_FRAMES = 4096


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} megapixels"


def check_frame_size(rows: int, cols: int, path: Path, *, can_reduce: bool = False) -> int:
    """Return the decode reduction factor (1, 2, 4 or 8) for a frame of ``rows x cols``.

    Raises :class:`ImageTooLargeError` when the frame is empty, or too large to decode even
    with the allowed reduction (``can_reduce`` is True for JPEG, whose decoder can scale).
    """
    if rows <= 0 or cols <= 0:
        raise ImageTooLargeError(
            f"The image declares an impossible size ({cols} x {rows} pixels); the file is damaged.",
            path=path,
        )
    pixels = rows * cols
    if pixels <= MAX_DECODE_PIXELS:
        return 1
    if can_reduce:
        for factor in (2, 4, 8):
            if math.ceil(rows / factor) * math.ceil(cols / factor) <= MAX_DECODE_PIXELS:
                return factor
    raise ImageTooLargeError(
        f"The image is {cols} x {rows} pixels ({_mp(pixels)}), far larger than any OCT scan; "
        f"octviewer refuses to open images above {_mp(MAX_DECODE_PIXELS)} to protect the "
        "computer's memory. If it is a real scan, export it again at its normal size.",
        path=path,
    )


def check_scan_bytes(n_frames: int, rows: int, cols: int, itemsize: int, path: Path) -> None:
    """Refuse a scan whose decoded frames would not fit the memory budget."""
    if n_frames > MAX_FRAMES:
        raise ImageTooLargeError(
            f"The scan declares {n_frames} frames; octviewer opens at most {MAX_FRAMES}. "
            "Export a smaller part of the examination.",
            path=path,
        )
    total = n_frames * rows * cols * itemsize
    if total > MAX_SCAN_BYTES:
        raise ImageTooLargeError(
            f"The scan would need {total / 1024**3:.1f} GB of memory once decoded "
            f"({n_frames} frames of {cols} x {rows} pixels); the limit is "
            f"{MAX_SCAN_BYTES / 1024**3:.0f} GB. Export fewer B-scans or a smaller volume.",
            path=path,
        )


def keep_size(rows: int, cols: int) -> tuple[int, int]:
    """Size (rows, cols) to keep a decoded frame at: unchanged unless above MAX_KEEP_PIXELS."""
    pixels = rows * cols
    if pixels <= MAX_KEEP_PIXELS:
        return rows, cols
    scale = math.sqrt(MAX_KEEP_PIXELS / pixels)
    return max(1, int(rows * scale)), max(1, int(cols * scale))


# --- sizes declared inside compressed streams -------------------------------------------------
#: Most tiles a JPEG 2000 codestream may declare (the standard's own limit is 65 535): each
#: tile costs the decoder bookkeeping memory before any pixel is decoded.
MAX_J2K_TILES = 4096


@dataclass(frozen=True)
class StreamSize:
    """What a JPEG / JPEG-LS / JPEG 2000 stream says about the image it holds."""

    codec: str
    rows: int
    cols: int
    components: int
    tiles: int = 1


def stream_size(data: bytes) -> StreamSize | None:
    """The size a compressed frame declares in its own header (SOF or SIZ marker), read
    without decoding; None when ``data`` does not start like a JPEG family stream."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"\xff\x4f\xff\x51":
        return _j2k_size(data, 4)
    if data[4:8] == b"jP  " or data[4:8] == b"jp2c":  # JP2 boxes: find the codestream
        at = data.find(b"\xff\x4f\xff\x51", 0, 1 << 16)
        return _j2k_size(data, at + 4) if at >= 0 else None
    return None


def _jpeg_size(data: bytes) -> StreamSize | None:
    """Walk the marker segments to the first SOF (baseline, extended, progressive, lossless,
    JPEG-LS SOF55)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        is_sof = (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xF7
        if is_sof and i + 10 <= len(data):
            rows = int.from_bytes(data[i + 5 : i + 7], "big")
            cols = int.from_bytes(data[i + 7 : i + 9], "big")
            codec = "JPEG-LS" if marker == 0xF7 else "JPEG"
            return StreamSize(codec, rows, cols, data[i + 9])
        if length < 2:
            return None
        i += 2 + length
    return None


def _j2k_size(data: bytes, at: int) -> StreamSize | None:
    """SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz (after SOC SIZ)."""
    if at + 38 > len(data):
        return None
    lsiz, _rsiz, x, y, xo, yo, xt, yt, xto, yto, comps = struct.unpack(
        ">HHIIIIIIIIH", data[at : at + 38]
    )
    if lsiz < 38 or x <= xo or y <= yo or xt == 0 or yt == 0:
        return StreamSize("JPEG 2000", 0, 0, comps, 0)  # impossible: refused as damaged
    tiles = math.ceil((x - xto) / xt) * math.ceil((y - yto) / yt)
    return StreamSize("JPEG 2000", y - yo, x - xo, comps, tiles)


def check_stream_size(size: StreamSize, rows: int, cols: int, samples: int, path: Path) -> None:
    """Refuse a compressed frame whose own header declares a larger (or an absurd) size than
    the file's Rows x Columns, before the decoder allocates for it. (A smaller one is left to
    the decoder: it cannot cost more memory than the header's size.)"""
    if size.rows <= 0 or size.cols <= 0 or size.components < 1 or size.tiles < 1:
        raise CorruptFileError(
            f"The {size.codec} image data in this file is damaged (its header declares an "
            "impossible size). Export the scan again from the device.",
            path=path,
        )
    too_many_tiles = size.tiles > MAX_J2K_TILES
    larger = size.rows > rows or size.cols > cols or size.components > max(samples, 4)
    if larger or too_many_tiles:
        what = f"{size.cols} x {size.rows} pixels" if larger else f"{size.tiles} tiles"
        raise CorruptFileError(
            f"The {size.codec} image data declares {what} ({size.components} component(s)) but "
            f"the file says {cols} x {rows} with {samples}: it is damaged or was edited, and "
            "octviewer did not decode it (that could exhaust the memory). Export it again.",
            path=path,
        )
