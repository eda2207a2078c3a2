"""Content sniffing: what a file really is, from its first bytes (the suffix is only a hint)."""

from __future__ import annotations

import enum
from pathlib import Path

HEADER_BYTES = 512


class FileKind(str, enum.Enum):
    """Formats octviewer recognises by content."""

    PNG = "PNG"
    JPEG = "JPEG"
    TIFF = "TIFF"
    BMP = "BMP"
    DICOM = "DICOM"
    HEIDELBERG_VOL = "Heidelberg VOL"
    HEIDELBERG_E2E = "Heidelberg E2E"
    TOPCON_FDA = "Topcon FDA"
    # recognised, but not scans: used to give a precise refusal
    TEXT = "text"
    PDF = "PDF document"
    ZIP = "ZIP archive"
    OTHER_IMAGE = "other image format"
    UNKNOWN = "unknown"


IMAGE_KINDS = frozenset({FileKind.PNG, FileKind.JPEG, FileKind.TIFF, FileKind.BMP})
SCAN_KINDS = IMAGE_KINDS | {
    FileKind.DICOM,
    FileKind.HEIDELBERG_VOL,
    FileKind.HEIDELBERG_E2E,
    FileKind.TOPCON_FDA,
}

_MAGIC: tuple[tuple[bytes, FileKind], ...] = (
    (b"\x89PNG\r\n\x1a\n", FileKind.PNG),
    (b"\xff\xd8\xff", FileKind.JPEG),
    (b"II*\x00", FileKind.TIFF),
    (b"MM\x00*", FileKind.TIFF),
    (b"II+\x00", FileKind.TIFF),  # BigTIFF
    (b"MM\x00+", FileKind.TIFF),
    (b"HSF-OCT-", FileKind.HEIDELBERG_VOL),
    (b"CMDb", FileKind.HEIDELBERG_E2E),
    (b"FOCT", FileKind.TOPCON_FDA),
    (b"%PDF", FileKind.PDF),
    (b"PK\x03\x04", FileKind.ZIP),
    (b"GIF8", FileKind.OTHER_IMAGE),
    (b"\x00\x00\x00\x0cjP  ", FileKind.OTHER_IMAGE),  # JPEG 2000 (JP2)
)

# DICOM group 0002 / 0008 as the first tag of a file written without the 128-byte preamble
_DICOM_NO_PREAMBLE = (b"\x02\x00", b"\x08\x00")


def sniff_bytes(head: bytes) -> FileKind:
    """Classify a file from its first bytes (at least 132 for the DICOM preamble)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return FileKind.DICOM
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"BM") and len(head) >= 26 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return FileKind.BMP  # BM + a known DIB header size
    if head[8:12] == b"WEBP" and head.startswith(b"RIFF"):
        return FileKind.OTHER_IMAGE
    if (
        len(head) >= 8
        and head[:2] in _DICOM_NO_PREAMBLE
        and head[4:6].isalpha()
        and head[4:6].isupper()
    ):
        return FileKind.DICOM  # explicit VR, no preamble
    if (
        len(head) >= 8
        and head[:2] in _DICOM_NO_PREAMBLE
        and int.from_bytes(head[4:8], "little") < 1024
    ):
        return FileKind.DICOM  # implicit VR: group 0002/0008 tag and a short value length
    if _looks_like_text(head):
        return FileKind.TEXT
    return FileKind.UNKNOWN


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character may be cut at the end of the window
        try:
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)


def sniff(path: Path) -> FileKind:
    """Read the first bytes of ``path`` and classify it. Raises ``OSError`` as the OS does."""
    with path.open("rb") as fh:
        head = fh.read(HEADER_BYTES)
    return sniff_bytes(head)
