"""Reader-specific refinements of the :mod:`octviewer.errors` family (no new base class).

Every error here is a :class:`~octviewer.errors.ScanReadError`, so callers of
:func:`octviewer.core.io.load` only ever need to catch that.
"""

from __future__ import annotations

import struct

from octviewer.errors import MissingDependencyError, ScanReadError


class ScanNotFoundError(ScanReadError):
    """The path does not exist (moved, renamed, or a drive that is not connected)."""


class ScanPermissionError(ScanReadError):
    """The operating system refused to let octviewer read the file or folder."""


class MissingReaderError(MissingDependencyError, ScanReadError):
    """A vendor format whose optional reader package is not installed; names the extra."""


def library_cause(exc: BaseException) -> str:
    """What a library said went wrong, in its own words but without the Python type name
    (a clinician cannot act on "TypeError"); a generic phrase where it said nothing useful."""
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    if isinstance(exc, (EOFError, struct.error)) or "unpack requires" in text or "EOF" in text:
        return "the data ends before a part the format requires"
    if isinstance(exc, MemoryError):
        return "a size in the file is far larger than the file itself"
    if isinstance(exc, KeyError) or len(text) < 4:
        return "a part the format requires is missing or unreadable"
    return text
