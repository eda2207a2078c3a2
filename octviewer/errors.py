"""The one exception family of octviewer.

Every error a user can cause (a bad file, a wrong model, a missing decoder) is an
:class:`OCTViewerError` whose message is written for a clinician: what went wrong and what
to do about it. The UI shows ``str(error)`` in a dialog; the command line prints it. Code
that catches anything broader must log the traceback.
"""

from __future__ import annotations

from pathlib import Path


class OCTViewerError(Exception):
    """Base class: an expected failure with a message a user can act on."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:
        if self.path is not None and str(self.path) not in self.message:
            return f"{self.message} ({self.path.name})"
        return self.message


# --- opening scans -----------------------------------------------------------------------
class ScanReadError(OCTViewerError):
    """A file or folder could not be opened as a scan."""


class EmptyFileError(ScanReadError):
    """The file has no content."""


class UnsupportedFormatError(ScanReadError):
    """The content is not a format octviewer can read."""


class CorruptFileError(ScanReadError):
    """The file claims a known format but its content is damaged or truncated."""


class NoPixelDataError(ScanReadError):
    """A DICOM object that carries no image (e.g. Raw Data, a report)."""


class MissingDecoderError(ScanReadError):
    """A compressed file whose decoder package is not installed; the message names it."""


class ImageTooLargeError(ScanReadError):
    """The image is too large to open safely (or a decompression bomb)."""


class NoImagesFoundError(ScanReadError):
    """A folder that holds nothing octviewer can open."""


class AmbiguousSeriesError(ScanReadError):
    """A folder holding several series; the caller must pick one.

    ``series`` maps a series key to a short human description so a UI can ask.
    ``independent`` is True when the choices are separate scans (vendor files, unrelated
    images, several series) that a caller should rather open one by one, each with its key.
    """

    def __init__(
        self,
        message: str,
        *,
        series: dict[str, str],
        path: str | Path | None = None,
        independent: bool = False,
    ):
        super().__init__(message, path=path)
        self.series = series
        self.independent = independent


class MissingReferencedFilesError(ScanReadError):
    """An index (a DICOMDIR) whose referenced files are not there; ``missing`` lists them."""

    def __init__(self, message: str, *, missing: list[Path], path: str | Path | None = None):
        super().__init__(message, path=path)
        self.missing = list(missing)


class MissingDependencyError(OCTViewerError):
    """An optional feature needs a package that is not installed; the message names the extra."""


# --- models ---------------------------------------------------------------------------------
class ModelError(OCTViewerError):
    """A model file or bundle could not be used."""


class ModelFormatError(ModelError):
    """The file is not a model bundle / weight file octviewer understands, or it is corrupt."""


class ModelMismatchError(ModelError):
    """The weights do not fit the declared architecture (shapes, class count, keys)."""


class UnsafeModelFileError(ModelError):
    """The file would need to execute code to load (a pickle with arbitrary objects)."""


# --- analysis and output -------------------------------------------------------------------
class AnalysisError(OCTViewerError):
    """Inference failed on a scan that did load."""


class AnalysisCancelled(OCTViewerError):
    """The user cancelled a running analysis."""


class ReportError(OCTViewerError):
    """A report could not be rendered or written."""


class TrainingError(OCTViewerError):
    """A training run was refused or failed (bad dataset, existing run directory...)."""


# --- archives (PACS, DICOMweb) ---------------------------------------------------------------
class ArchiveError(OCTViewerError):
    """An archive (DICOMweb or DIMSE node) could not be used: configuration, connection, refusal.

    ``node`` names the node; ``resendable`` is True when what was to be sent is kept and can be
    sent again (nothing was lost)."""

    def __init__(self, message: str, *, node: str = "", resendable: bool = False) -> None:
        super().__init__(message)
        self.node = node
        self.resendable = resendable


class ArchiveConfigError(ArchiveError):
    """A node description that cannot be used (bad address, unknown node name)."""


class ArchiveConnectionError(ArchiveError):
    """The archive could not be reached, or refused the association / the login."""


class ArchiveRefusedError(ArchiveError):
    """The archive answered but refused the request (DIMSE failure status, HTTP 4xx/5xx)."""


class ArchiveCancelledError(ArchiveError):
    """The user cancelled a retrieve; what it had written to the cache was removed."""
