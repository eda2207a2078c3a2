"""Memory safety: refuse absurd sizes before decoding, shrink very large photographs safely.

All checks use sizes read from headers, before any pixel is decoded, so a decompression bomb
(a tiny file that claims 30 000 x 30 000 pixels) is refused without allocating anything.
"""

from __future__ import annotations

import math
from pathlib import Path

from octviewer.errors import ImageTooLargeError

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
