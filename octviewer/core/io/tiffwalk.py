"""The page chain of a TIFF, walked here before Pillow or tifffile see the file.

A TIFF is a chain of image file directories (IFDs), each pointing at the next. A damaged file
can point back to an earlier page (a cycle), hold thousands of bogus pages, or list strips at
offset 0 or beyond its end, which tifffile silently fills with zeros. The walk reads only the
directories (at most :data:`MAX_PAGES`, each at most :data:`MAX_ENTRIES` entries, every offset
inside the file, none visited twice), so its work is bounded by the file's size, and it says
which pages really hold their pixel data.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from octviewer.core.io import safety
from octviewer.errors import CorruptFileError, ImageTooLargeError

logger = logging.getLogger(__name__)

#: Most pages walked: the frame limit of a scan plus room for thumbnails.
MAX_PAGES = safety.MAX_FRAMES + 64
#: Most entries one directory may hold (real ones hold a few dozen).
MAX_ENTRIES = 4096
#: Most strip or tile offsets read for one page.
MAX_SEGMENTS = 1 << 20
_TYPES = {1: "B", 2: "B", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i", 13: "I", 16: "Q", 17: "q", 18: "Q"}  # fmt: skip
_WIDTH, _LENGTH = 256, 257
_OFFSETS = (273, 324)  # StripOffsets, TileOffsets
_COUNTS = (279, 325)  # StripByteCounts, TileByteCounts


@dataclass(frozen=True)
class TiffPage:
    """One page: its size and whether every strip/tile it lists lies inside the file."""

    cols: int
    rows: int
    holds_data: bool


class _Reader:
    def __init__(self, fh: BinaryIO, size: int, big: bool, order: str) -> None:
        self.fh, self.size, self.big, self.order = fh, size, big, order

    def at(self, offset: int, fmt: str) -> tuple[int, ...]:
        n = struct.calcsize(self.order + fmt)
        if offset < 0 or offset + n > self.size:
            raise ValueError(f"offset {offset} outside the file")
        self.fh.seek(offset)
        return struct.unpack(self.order + fmt, self.fh.read(n))


def _damaged(path: Path, what: str) -> CorruptFileError:
    return CorruptFileError(
        f"The TIFF file is damaged: {what}. Copy or export it again from the device.", path=path
    )


def walk_tiff(path: Path) -> list[TiffPage]:
    """The pages of a TIFF in chain order; :class:`CorruptFileError` for a cycle, an offset
    outside the file or a directory too large, :class:`ImageTooLargeError` for too many."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 8:
            raise _damaged(path, "its header is incomplete")
        big = struct.unpack(order + "H", head[2:4])[0] == 43
        r = _Reader(fh, size, big, order)
        try:
            offset = r.at(8, "Q")[0] if big else r.at(4, "I")[0]
            return _walk(r, offset, path)
        except (ValueError, struct.error) as exc:
            raise _damaged(path, f"a page directory lies outside the file ({exc})") from exc


def _walk(r: _Reader, offset: int, path: Path) -> list[TiffPage]:
    pages: list[TiffPage] = []
    seen: set[int] = set()
    while offset:
        if offset in seen:
            raise _damaged(path, f"its list of pages loops back to page {len(seen)} of itself")
        if len(pages) >= MAX_PAGES:
            raise ImageTooLargeError(
                f"The TIFF file holds more than {MAX_PAGES} pages; octviewer opens at most "
                f"{safety.MAX_FRAMES} frames. Export a smaller part of the examination.",
                path=path,
            )
        seen.add(offset)
        page, offset = _page(r, offset, path)
        pages.append(page)
    if not pages:
        raise _damaged(path, "it lists no page")
    return pages


def _page(r: _Reader, offset: int, path: Path) -> tuple[TiffPage, int]:
    """One directory -> (page, offset of the next directory)."""
    n = r.at(offset, "Q" if r.big else "H")[0]
    entry, start = (20, offset + 8) if r.big else (12, offset + 2)
    if n == 0 or n > MAX_ENTRIES or start + n * entry > r.size:
        raise _damaged(path, f"the page directory at byte {offset} claims {n} entries")
    tags: dict[int, tuple[int, int, int]] = {}
    for k in range(n):
        at = start + k * entry
        tag, typ = r.at(at, "HH")
        count = r.at(at + 4, "Q" if r.big else "I")[0]
        tags[tag] = (typ, count, at + (12 if r.big else 8))
    nxt = r.at(start + n * entry, "Q" if r.big else "I")[0]
    cols, rows = _value(r, tags.get(_WIDTH)), _value(r, tags.get(_LENGTH))
    offsets = _values(r, next((tags[t] for t in _OFFSETS if t in tags), None))
    counts = _values(r, next((tags[t] for t in _COUNTS if t in tags), None))
    holds = bool(offsets) and len(offsets) == len(counts)
    holds = holds and all(
        o > 0 and c > 0 and o + c <= r.size for o, c in zip(offsets, counts, strict=True)
    )
    return TiffPage(cols or 0, rows or 0, holds), nxt


def _values(r: _Reader, entry: tuple[int, int, int] | None) -> list[int]:
    """The numbers of an entry (inline or at its offset); [] when absent or unreadable."""
    if entry is None:
        return []
    typ, count, value_at = entry
    code = _TYPES.get(typ)
    if code is None or count == 0 or count > MAX_SEGMENTS:
        return []
    nbytes = struct.calcsize(code) * count
    if nbytes > (8 if r.big else 4):
        value_at = r.at(value_at, "Q" if r.big else "I")[0]
    try:
        return list(r.at(value_at, f"{count}{code}"))
    except (ValueError, struct.error):
        return []


def _value(r: _Reader, entry: tuple[int, int, int] | None) -> int | None:
    values = _values(r, entry)
    return values[0] if len(values) == 1 else None


def check_pages_hold_data(pages: list[TiffPage], path: Path) -> tuple[str, ...]:
    """Refuse a TIFF none of whose pages holds its pixel data (a decoder would show zeros);
    a note naming the pages that do not, when only some."""
    missing = [i + 1 for i, p in enumerate(pages) if not p.holds_data]
    if len(missing) == len(pages):
        raise _damaged(
            path,
            "its pages point to pixel data that is not in the file (strips at offset 0, of "
            "length 0 or beyond its end); there is no image to show",
        )
    if not missing:
        return ()
    listed = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
    logger.info("TIFF: %d page(s) without their pixel data", len(missing))
    return (
        f"{len(missing)} page(s) of this TIFF ({listed}) point to pixel data that is not in "
        "the file: those frames are blank (zeros), not part of the scan",
    )
