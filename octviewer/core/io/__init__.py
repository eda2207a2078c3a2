"""Readers: ``load(path)`` sniffs the content and hands the file to one reader per format.

Importing this package is cheap: pydicom, pylibjpeg, eyepy and oct-converter are imported by
the reader that needs them, when a file of that kind is opened.

Whatever the reader, :func:`load` then looks at the pixels (:mod:`octviewer.core.content`): a
scan is an OCT B-scan / volume only when the reader's evidence (colour, DICOM SOP class) *and*
the pixels say so; the content check's reason goes into ``metadata.notes``.
"""

from __future__ import annotations

import errno
import importlib
import logging
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from octviewer.core.content import ContentVerdict, check_frames
from octviewer.core.io.errors import MissingReaderError, ScanNotFoundError, ScanPermissionError
from octviewer.core.io.sniff import FileKind, sniff
from octviewer.core.presentation import frame_numbers
from octviewer.core.scan import Modality, Scan
from octviewer.errors import (
    CorruptFileError,
    EmptyFileError,
    ImageTooLargeError,
    OCTViewerError,
    ScanReadError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from octviewer.core.io.folders import FolderPlan

logger = logging.getLogger(__name__)

__all__ = [
    "READERS",
    "FileKind",
    "MissingReaderError",
    "ScanNotFoundError",
    "ScanPermissionError",
    "judge_content",
    "load",
    "plan_folder",
    "register_reader",
]

Reader = Callable[[Path], Scan]

#: FileKind -> "module:function" (imported on first use) or a callable.
READERS: dict[FileKind, str | Reader] = {
    FileKind.PNG: "octviewer.core.io.images:read_png",
    FileKind.JPEG: "octviewer.core.io.images:read_jpeg",
    FileKind.TIFF: "octviewer.core.io.images:read_tiff",
    FileKind.BMP: "octviewer.core.io.images:read_bmp",
    FileKind.DICOM: "octviewer.core.io.dicom:read_dicom",
    FileKind.HEIDELBERG_VOL: "octviewer.core.io.vendor:read_heidelberg_vol",
    FileKind.HEIDELBERG_E2E: "octviewer.core.io.vendor:read_heidelberg_e2e",
    FileKind.TOPCON_FDA: "octviewer.core.io.topcon:read_topcon",
}

_SUPPORTED = (
    "PNG, JPEG, TIFF, BMP, DICOM (and DICOMDIR), Heidelberg .vol / .E2E, Topcon .fda / .fds, "
    "or a folder of these"
)
_NOT_A_SCAN = {
    FileKind.TEXT: "a text file, not an image",
    FileKind.PDF: "a PDF document, not an image (export the scan itself, not a printout)",
    FileKind.ZIP: "a ZIP archive; unpack it first and open the folder",
    FileKind.OTHER_IMAGE: "an image format octviewer does not read (GIF, WebP or JPEG 2000)",
}


def plan_folder(path: str | Path) -> FolderPlan:
    """What a folder is: one scan, several independent scans, or a question for the user."""
    from octviewer.core.io.folders import plan_folder as plan

    return plan(Path(path).expanduser())


def register_reader(kind: FileKind, reader: str | Reader) -> None:
    """Add or replace the reader for a file kind ("module:function" or a callable)."""
    READERS[kind] = reader


def _resolve(reader: str | Reader) -> Reader:
    if callable(reader):
        return reader
    module, _, func = reader.partition(":")
    return getattr(importlib.import_module(module), func)


def load(path: str | Path, *, series: str | None = None) -> Scan:
    """Open a file or folder as a :class:`~octviewer.core.scan.Scan`.

    Raises only :class:`~octviewer.errors.ScanReadError` subclasses, with messages written for
    the person who chose the file. ``series`` picks one series of a folder that holds several
    (see :class:`~octviewer.errors.AmbiguousSeriesError`).
    """
    p = Path(path).expanduser()
    try:
        return judge_content(note_blank_frames(_load(p, series)))
    except OCTViewerError:
        raise
    except PermissionError as exc:
        raise ScanPermissionError(
            "octviewer is not allowed to read this file or folder (permission denied). Ask for "
            "read access, or copy the scan to a folder of your own.",
            path=p,
        ) from exc
    except MemoryError as exc:
        raise ImageTooLargeError(
            "The computer ran out of memory while opening this scan. Close other programs or "
            "open a smaller export.",
            path=p,
        ) from exc
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ScanNotFoundError(
                "The file or folder no longer exists (moved, renamed or on a disconnected drive).",
                path=p,
            ) from exc
        logger.exception("OS error while opening a scan")
        raise ScanReadError(
            f"The file could not be read from disk ({exc.strerror or exc}). Check the drive and try again.",
            path=p,
        ) from exc
    except Exception as exc:  # a library failing on odd input must not crash the app
        logger.exception("unexpected error while reading a scan")
        raise CorruptFileError(
            f"The file could not be read: its content is damaged or not what its format promises "
            f"({type(exc).__name__}). Export it again from the device.",
            path=p,
        ) from exc


def _load(p: Path, series: str | None) -> Scan:
    if not p.exists() and p.is_symlink():
        raise ScanNotFoundError(
            "This is a link (shortcut) that leads nowhere: its target is missing, or it points "
            "back to itself. Open the scan itself, or fix the link.",
            path=p,
        )
    if not p.exists():
        raise ScanNotFoundError(
            "The file or folder does not exist (moved, renamed or on a disconnected drive).",
            path=p,
        )
    if p.is_dir():
        from octviewer.core.io.folders import read_planned

        return read_planned(p, load, series=series)
    mode = p.stat().st_mode
    if not stat.S_ISREG(mode):
        raise UnsupportedFormatError("This is not a regular file (a device or a pipe).", path=p)
    if p.stat().st_size == 0:
        raise EmptyFileError(
            "The file is empty (0 bytes): the export or the copy did not finish. Copy or export "
            "the scan again.",
            path=p,
        )
    kind = sniff(p)
    reader = READERS.get(kind)
    if reader is None:
        what = _NOT_A_SCAN.get(kind, "not a format octviewer recognises")
        raise UnsupportedFormatError(f"The file is {what}. octviewer opens {_SUPPORTED}.", path=p)
    logger.debug("opening %s as %s", p.name, kind.value)
    if kind is FileKind.DICOM:
        from octviewer.core.io.dicomdir import file_is_dicomdir, read_dicomdir

        if file_is_dicomdir(p):  # a media index, not an image: list / open its series
            return read_dicomdir(p, series=series)
    return _resolve(reader)(p)


def note_blank_frames(scan: Scan) -> Scan:
    """Mark frames that hold one single value (no image: a file whose header and data disagree
    can yield them) in ``metadata.notes``, so they are never shown as if they were a scan; a
    scan whose every frame is blank is left to the content check, which refuses it as blank."""
    f = scan.frames.reshape(scan.n_frames, -1)
    blank = [i for i in range(scan.n_frames) if f[i].min() == f[i].max()]
    if blank and len(blank) < scan.n_frames:
        listed = frame_numbers(blank[:10]) + (" ..." if len(blank) > 10 else "")
        note = (
            f"{len(blank)} of {scan.n_frames} frames hold no image (one single value): frame(s) "
            f"{listed}; the file may be damaged or cut short"
        )
        logger.info("load: %s", note)
        scan.metadata = replace(scan.metadata, notes=(*scan.metadata.notes, note))
    return scan


#: Vendor raw formats whose frames are OCT B-scans by construction (the SLO is kept apart).
RAW_OCT_FORMATS = frozenset({"Heidelberg VOL", "Heidelberg E2E", "Topcon FDA", "Topcon FDS"})


def judge_content(scan: Scan) -> Scan:
    """Set ``scan.metadata.modality`` from the pixels as well as from the reader's evidence.

    OCT only when both agree, except for a vendor raw OCT file that states its scan pattern
    (its B-scans are B-scans; the protocol gate judges them). Pixels that are not a B-scan turn a reader's "OCT" into
    :attr:`Modality.EN_FACE` (UNKNOWN for a blank or tiny image); a reader's FUNDUS or UNKNOWN
    stays. B-scan pixels never turn a colour photo or a DICOM photograph into OCT, but say so in
    a note.
    """
    verdict = check_frames(scan.frames)
    md = scan.metadata
    if verdict.is_bscan and md.modality.is_oct:
        return scan
    stated_oct = md.modality.is_oct and md.format in RAW_OCT_FORMATS and md.protocol.is_stated
    if stated_oct and verdict.kind not in ("blank", "too small"):  # those hold nothing to read
        # a device's raw OCT file that states its scan pattern: its B-scans are B-scans by
        # construction, however folded (a circle scan round a deep cup fails the pixel check);
        # its protocol, not "not an OCT", then decides. (A DICOM OPT can hold misfiled en-face
        # frames, so there the pixels keep the last word.)
        note = "the pixels do not look like a typical B-scan, but the file states an OCT scan"
        logger.info("content check: %s kept (%s)", md.modality.value, md.protocol.description)
        scan.metadata = replace(md, notes=(*md.notes, note))
        return scan
    if verdict.is_bscan:
        said = (
            "it is a colour image"
            if md.was_color
            else f"the file is a DICOM {md.sop_class}"
            if md.sop_class
            else f"the file describes it as {md.modality.value}"
        )
        note = f"the pixels look like an OCT B-scan, but {said}: not analysed as OCT"
        modality = md.modality
    else:
        note = _verdict_note(verdict)
        modality = _pixel_modality(md.modality, verdict)
    logger.info("content check: %s -> %s (%s)", md.modality.value, modality.value, verdict.kind)
    scan.metadata = replace(md, modality=modality, notes=(*md.notes, note))
    return scan


def _verdict_note(verdict: ContentVerdict) -> str:
    return verdict.reason[0].upper() + verdict.reason[1:]


def _pixel_modality(reader_said: Modality, verdict: ContentVerdict) -> Modality:
    if not reader_said.is_oct:
        return reader_said  # the reader's FUNDUS / UNKNOWN is already "not OCT" and says more
    return Modality.EN_FACE if verdict.kind == "en-face" else Modality.UNKNOWN
