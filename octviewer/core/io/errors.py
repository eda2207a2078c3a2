"""Reader-specific refinements of the :mod:`octviewer.errors` family (no new base class).

Every error here is a :class:`~octviewer.errors.ScanReadError`, so callers of
:func:`octviewer.core.io.load` only ever need to catch that.
"""

from __future__ import annotations

from octviewer.errors import MissingDependencyError, ScanReadError


class ScanNotFoundError(ScanReadError):
    """The path does not exist (moved, renamed, or a drive that is not connected)."""


class ScanPermissionError(ScanReadError):
    """The operating system refused to let octviewer read the file or folder."""


class MissingReaderError(MissingDependencyError, ScanReadError):
    """A vendor format whose optional reader package is not installed; names the extra."""
