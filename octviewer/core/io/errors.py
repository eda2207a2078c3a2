"""Reader-specific refinements of the :mod:`octviewer.errors` family (no new base class).

Every error here is a :class:`~octviewer.errors.ScanReadError`, so callers of
:func:`octviewer.core.io.load` only ever need to catch that.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from octviewer.errors import MissingDependencyError, ScanReadError

logger = logging.getLogger(__name__)


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


def missing_reader(
    package: str, what: str, path: Path, exc: ImportError | None = None
) -> MissingReaderError:
    """The error for a vendor format whose reader ``package`` is not installed, or installed
    but a part of it cannot be imported (an incomplete build); it names the extra to install."""
    if exc is not None and _installed(package):
        logger.warning("the %s reader is installed but cannot be imported: %s", package, exc)
        return MissingReaderError(
            f"Opening {what} files needs the package '{package}'; it is installed but part of "
            f"it could not be loaded ({type(exc).__name__}: {exc}). Reinstall octviewer with "
            'pip install "octviewer[vendor]", or report this if it is the packaged app.',
            path=path,
        )
    return MissingReaderError(
        f"Opening {what} files needs the optional package '{package}', which is not installed. "
        'Install it with: pip install "octviewer[vendor]"',
        path=path,
    )


def _installed(package: str) -> bool:
    import importlib.util

    module = {"oct-converter": "oct_converter"}.get(package, package)
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):  # blocked or half-imported
        return False
