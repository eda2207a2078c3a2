"""Filing one analysed scan into its source study: the source instance's header, the
printable report (with the patient's identity: the archive files it into the patient's
record) and the SR, as :class:`objects.ResultObjects` ready to send."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from octviewer.core.archive.objects import ResultObjects, result_objects
from octviewer.core.results import ScanResult
from octviewer.core.scan import Scan
from octviewer.errors import ArchiveError


def source_header(scan: Scan) -> pydicom.Dataset:
    """The DICOM header of the file the scan was read from (no pixels); ArchiveError when
    the scan did not come from a DICOM instance (there is no study to file into)."""
    paths = [Path(p) for p in scan.metadata.source_paths]
    for path in paths:
        if path.is_file():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError):
                continue
            if "StudyInstanceUID" in ds and "SOPInstanceUID" in ds:
                return ds
    raise ArchiveError(
        "Only a scan opened from a DICOM file (e.g. from the archive) can be filed into its "
        "study: this one has no Study Instance UID."
    )


def objects_for(
    scan: Scan,
    result: ScanResult,
    *,
    page: str = "A4",
    when: _dt.datetime | None = None,
) -> ResultObjects:
    """The Encapsulated PDF and the SR of ``result`` for ``scan``'s source study."""
    from octviewer.core.report.pdf import PrintOptions, render_pdf

    when = when or _dt.datetime.now().astimezone()
    source = source_header(scan)
    pdf = render_pdf(scan, result, PrintOptions(page=page, include_identity=True, created=when))
    return result_objects(source, pdf, result, when)
