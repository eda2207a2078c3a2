"""DICOMDIR: the media index of a DICOM disc or export (PS3.10 / PS3.3 F.5).

A DICOMDIR holds no image; it lists patients, studies, series and the files of each series
(paths relative to the DICOMDIR). Opening one lists the series it references and opens the
chosen one from the files it names; files that are not there are named in the refusal.
Patient records (name, ID) are only walked through, never shown, logged or returned.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from octviewer.core.io.dicom.header import (
    METADATA_ERRORS,
    HeaderTooLongError,
    dcmread_bounded,
    too_long,
)
from octviewer.core.io.errors import library_cause
from octviewer.core.scan import Scan
from octviewer.errors import (
    AmbiguousSeriesError,
    CorruptFileError,
    MissingReferencedFilesError,
    NoPixelDataError,
)

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)

MEDIA_DIRECTORY_UID = "1.2.840.10008.1.3.10"
#: Bytes read to tell a DICOMDIR: its file meta (the Media Storage SOP Class) and its first
#: elements (group 0004) sit at the start; the rest of the file is never parsed to decide.
SNIFF_BYTES = 64 * 1024
#: record types that point at a file with an image octviewer can show
IMAGE_RECORDS = {"IMAGE", "STEREOMETRIC"}
_COPY_ALL = (
    "Copy the whole export (the DICOMDIR file together with the folders next to it, e.g. "
    "DICOM/) and open the DICOMDIR again, or open the folder that holds the image files."
)


@dataclass
class DicomdirSeries:
    """One series that a DICOMDIR references."""

    uid: str
    modality: str = ""
    number: str = ""
    description: str = ""
    study_date: str = ""
    files: list[Path] = field(default_factory=list)  # absolute paths, as the index names them
    frames: int = 0
    has_images: bool = False

    @property
    def missing(self) -> list[Path]:
        return [p for p in self.files if not p.is_file()]

    def describe(self, root: Path) -> str:
        what = " ".join(x for x in (self.number and f"series {self.number}", self.description) if x)
        kind = self.modality or "?"
        files = ", ".join(_rel(p, root) for p in self.files[:3]) + (
            "..." if len(self.files) > 3 else ""
        )
        content = f"{self.frames} frame(s)" if self.has_images else "no image (raw data/report)"
        date = f", study {self.study_date}" if self.study_date else ""
        return f"{what or 'series'} — {kind}, {len(self.files)} file(s) [{files}], {content}{date}"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def is_dicomdir(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    try:  # pydicom converts a value when it is first read: a damaged VR fails only here
        uid = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    except METADATA_ERRORS as exc:  # no readable class: the records decide, the reader says why
        logger.info("unreadable Media Storage SOP Class UID: %s", exc)
        uid = ""
    return uid == MEDIA_DIRECTORY_UID or "DirectoryRecordSequence" in ds


def file_is_dicomdir(path: Path) -> bool:
    """Cheap check whether a DICOM file is a DICOMDIR, from its first :data:`SNIFF_BYTES`
    only (a file of megabytes of zeros after the preamble answers at once)."""
    import pydicom

    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if _uid_in(head[: _meta_end(head)]):
        return True
    try:
        ds = pydicom.dcmread(io.BytesIO(head), stop_before_pixels=True, defer_size=1024, force=True)
    except Exception:  # cut off by the prefix, or not parseable: the reader says why
        return False
    return is_dicomdir(ds) or any(tag.group == 0x0004 for tag in list(ds.keys()))


def _meta_end(head: bytes) -> int:
    """Where the file meta group ends (its group length), or 0 without one."""
    if head[128:132] != b"DICM" or head[132:134] != b"\x02\x00" or head[136:138] != b"UL":
        return 0
    return min(len(head), 144 + int.from_bytes(head[140:144], "little"))


def _uid_in(meta: bytes) -> bool:
    """The Media Storage Directory UID as a whole value (not the prefix of a longer UID)."""
    at = meta.find(MEDIA_DIRECTORY_UID.encode())
    end = meta[at + len(MEDIA_DIRECTORY_UID) : at + len(MEDIA_DIRECTORY_UID) + 1]
    return at >= 0 and end in (b"", b"\x00", b" ", b"\x02")


def _records_in_order(ds: Dataset) -> list[tuple[int, Dataset]]:
    """(depth, record) in hierarchy order, following the offsets; file order as fallback."""
    records = list(ds.get("DirectoryRecordSequence", []))
    by_offset = {getattr(r, "seq_item_tell", None): r for r in records}
    root = ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity")
    if root is None or None in by_offset or root not in by_offset:
        return [(0, r) for r in records]
    out: list[tuple[int, Dataset]] = []
    seen: set[int] = set()

    def walk(offset: int, depth: int) -> None:
        while offset and offset in by_offset and offset not in seen:
            seen.add(offset)
            rec = by_offset[offset]
            out.append((depth, rec))
            walk(int(rec.get("OffsetOfReferencedLowerLevelDirectoryEntity") or 0), depth + 1)
            offset = int(rec.get("OffsetOfTheNextDirectoryRecord") or 0)

    walk(int(root), 0)
    return out if len(out) == len(records) else [(0, r) for r in records]


def list_series(path: Path, ds: Dataset | None = None) -> dict[str, DicomdirSeries]:
    """The series a DICOMDIR references, by SeriesInstanceUID (in index order)."""
    ds = ds if ds is not None else dcmread_bounded(path, force=True)
    root = path.parent
    series: dict[str, DicomdirSeries] = {}
    current: DicomdirSeries | None = None
    study_date = ""
    for _depth, rec in _records_in_order(ds):
        kind = str(rec.get("DirectoryRecordType", "")).upper()
        if kind == "STUDY":
            study_date = str(rec.get("StudyDate", "") or "")
        elif kind == "SERIES":
            uid = str(rec.get("SeriesInstanceUID") or f"series-{len(series) + 1}")
            current = series.setdefault(
                uid,
                DicomdirSeries(
                    uid,
                    modality=str(rec.get("Modality", "") or ""),
                    number=str(rec.get("SeriesNumber", "") or ""),
                    description=str(rec.get("SeriesDescription", "") or ""),
                    study_date=study_date,
                ),
            )
        elif current is not None and "ReferencedFileID" in rec:
            parts = rec.ReferencedFileID
            parts = [parts] if isinstance(parts, str) else list(parts)
            current.files.append(root.joinpath(*[str(p) for p in parts]))
            if kind in IMAGE_RECORDS:
                current.has_images = True
                current.frames += int(rec.get("NumberOfFrames") or 1)
    return series


def read_dicomdir(path: Path, *, series: str | None = None) -> Scan:
    """Open the series of a DICOMDIR (``series`` = its SeriesInstanceUID when it lists several)."""
    from octviewer.core.io.series import read_dicom_files

    try:
        ds = dcmread_bounded(path, force=True)
        listed = list_series(path, ds)  # values are converted here: a bad VR fails here
    except HeaderTooLongError as exc:
        raise too_long(path) from exc
    except (PermissionError, MemoryError):
        raise
    except Exception as exc:  # pydicom raises many types on a damaged index
        raise CorruptFileError(
            "This DICOMDIR (the index of a DICOM export) ends early or is damaged and its list "
            f"of series cannot be read ({library_cause(exc)}). {_COPY_ALL}",
            path=path,
        ) from exc
    root = path.parent
    choices = {uid: s.describe(root) for uid, s in listed.items() if s.has_images}
    every_file = [p for s in listed.values() for p in s.files]
    if not choices:
        raise NoPixelDataError(
            f"This DICOMDIR is an index of {len(listed)} series and none of them holds an image "
            "(raw data or reports only). Open the image export of the examination instead.",
            path=path,
        )
    missing_all = [p for p in every_file if not p.is_file()]
    if every_file and len(missing_all) == len(every_file):
        raise MissingReferencedFilesError(
            f"This DICOMDIR is only the index of a DICOM export: it lists {len(listed)} series "
            f"({'; '.join(s.describe(root) for s in listed.values())}), but none of the "
            f"{len(every_file)} files it points to is here: "
            + ", ".join(_rel(p, root) for p in missing_all[:8])
            + (" ..." if len(missing_all) > 8 else "")
            + f". {_COPY_ALL}",
            missing=missing_all,
            path=path,
        )
    if series is None and len(choices) > 1:
        raise AmbiguousSeriesError(
            f"This DICOMDIR lists {len(choices)} series with images. Choose one: "
            + "; ".join(choices.values()),
            series=choices,
            path=path,
        )
    uid = series if series is not None else next(iter(choices))
    if uid not in choices:
        raise AmbiguousSeriesError(
            f"This DICOMDIR has no image series '{uid}'. Choose one of: "
            + "; ".join(choices.values()),
            series=choices,
            path=path,
        )
    chosen = listed[uid]
    if chosen.missing:
        raise MissingReferencedFilesError(
            f"The DICOMDIR lists {len(chosen.files)} file(s) for {chosen.describe(root)}, but "
            f"{len(chosen.missing)} of them are not here: "
            + ", ".join(_rel(p, root) for p in chosen.missing[:8])
            + f". {_COPY_ALL}",
            missing=chosen.missing,
            path=path,
        )
    logger.debug("opening DICOMDIR series with %d file(s)", len(chosen.files))
    return read_dicom_files(root, chosen.files)
