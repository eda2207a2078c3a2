"""One archive node as one object (test, find, retrieve, send), the retrieval cache and the
outbox.

The cache (``<cache folder>/archive/studies``) holds what was retrieved: identifiable data, so
it stays in the user's own cache folder, is never exported and :func:`clear_cache` empties it.
The outbox (``<cache folder>/archive/outbox/<node>``) holds results to be filed: written there
before sending and removed only once the archive took them, so a refusal loses nothing and
:meth:`Archive.resend` sends them again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom import Dataset

from octviewer.core.archive import dicomweb, dimse
from octviewer.core.archive import query as q
from octviewer.core.archive.credentials import password_for
from octviewer.core.archive.nodes import ArchiveNode
from octviewer.core.result_cache import cache_home
from octviewer.errors import ArchiveError, MissingDependencyError

log = logging.getLogger(__name__)

OPT_SOP = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
NOT_SCANS = {"SR", "DOC", "KO", "PR"}
_SAFE = re.compile(r"[^0-9A-Za-z._-]")


def archive_cache() -> Path:
    return cache_home() / "archive"


def clear_cache() -> tuple[int, int]:
    """Delete every retrieved study (not the outbox); returns (files, bytes) removed."""
    root = archive_cache() / "studies"
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    size = sum(p.stat().st_size for p in files)
    shutil.rmtree(root, ignore_errors=True)
    log.info("Archive cache cleared: %d file(s), %d bytes", len(files), size)
    return len(files), size


def check_available() -> None:
    """Raise MissingDependencyError naming the extra when the archive packages are missing."""
    import importlib.util

    missing = [m for m in ("pynetdicom", "dicomweb_client", "highdicom")
               if importlib.util.find_spec(m) is None]  # fmt: skip
    if missing:
        raise MissingDependencyError(
            f"Archive access needs {', '.join(missing)}: pip install 'octviewer[archive]'."
        )


@dataclass(frozen=True)
class RetrievedStudy:
    """What a retrieve put into the cache: the folder and its files."""

    study_uid: str
    folder: Path
    files: tuple[Path, ...]

    def scan_files(self) -> list[Path]:
        """The files to analyse: the OCT volumes (OPT), else every image that is not a
        report, SR or presentation object (a localizer stays beside its volume)."""
        heads = [(p, pydicom.dcmread(p, stop_before_pixels=True)) for p in self.files]
        opt = [p for p, ds in heads if ds.get("SOPClassUID") == OPT_SOP]
        if opt:
            return sorted(opt)
        return sorted(p for p, ds in heads if ds.get("Modality") not in NOT_SCANS)


def _localizer_uids(files: Sequence[Path]) -> set[str]:
    """The SOP Instance UIDs of the localizers that OCT files refer to (frame locations)."""
    from octviewer.core.io.dicom.localizer import frame_locations

    uids = set()
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.get("SOPClassUID") == OPT_SOP:
            ref, _positions = frame_locations(ds)
            if ref:
                uids.add(ref)
    return uids


class Archive:
    """One node: every call contacts it (nothing happens on construction)."""

    def __init__(self, node: ArchiveNode, ask: Callable[[ArchiveNode], str | None] | None = None):
        check_available()
        self.node = node
        self._ask = ask

    @property
    def _password(self) -> str | None:
        return password_for(self.node, self._ask)

    @property
    def is_web(self) -> bool:
        return self.node.kind == "dicomweb"

    def test(self) -> str:
        """C-ECHO or a QIDO-RS ping; returns what was done (raises ArchiveError)."""
        if self.is_web:
            dicomweb.ping(self.node, self._password)
            return "QIDO-RS answered"
        dimse.echo(self.node)
        return "C-ECHO answered"

    def find(self, query: q.StudyQuery) -> list[q.StudyInfo]:
        if self.is_web:
            found = dicomweb.find_studies(self.node, query, self._password)
        else:
            found = dimse.find_studies(self.node, query)
        log.info("%s: %d study(ies) found", self.node.name, len(found))
        return found

    def series(self, study_uid: str) -> list[q.SeriesInfo]:
        if self.is_web:
            return dicomweb.find_series(self.node, study_uid, self._password)
        return dimse.find_series(self.node, study_uid)

    def has_result(self, study_uid: str, model_sha256: str) -> bool:
        """True when the study holds a series filed by this model (its SHA-256 prefix in the
        series description, as :func:`objects.series_label` writes it)."""
        tag = f"[{model_sha256[:16]}]"
        return any(tag in s.description for s in self.series(study_uid))

    def retrieve(
        self,
        study_uid: str,
        series_uids: Sequence[str] = (),
        cancel: Callable[[], bool] | None = None,
    ) -> RetrievedStudy:
        """The study (or the given series) into the cache, by the node's retrieve method.

        Each instance is written to a temporary name and renamed, so no file is ever half
        written; a retrieve that is cancelled (``cancel()`` True: ArchiveCancelledError) or
        interrupted removes the files it wrote, so the cache holds no partial study."""
        folder = archive_cache() / "studies" / hashlib.sha1(study_uid.encode()).hexdigest()[:20]
        folder.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        new: list[Path] = []

        def keep(ds: Dataset) -> None:
            path = folder / f"{_SAFE.sub('_', str(ds.SOPInstanceUID))}.dcm"
            tmp = path.with_name(f".{path.name}.part")
            ds.save_as(tmp, enforce_file_format=True)
            if not path.exists():
                new.append(path)
            tmp.replace(path)
            files.append(path)

        try:
            self._retrieve_into(study_uid, series_uids, keep, cancel)
        except BaseException:  # cancelled, refused, Ctrl+C: no partial study stays behind
            for p in [*new, *folder.glob(".*.part")]:
                p.unlink(missing_ok=True)
            log.info("%s: retrieve stopped; %d new file(s) removed", self.node.name, len(new))
            raise
        method = self.node.retrieve
        if not files:
            raise ArchiveError(
                f"{self.node.name}: the retrieve returned no instances for this study.",
                node=self.node.name,
            )
        log.info("%s: %d instance(s) retrieved by %s", self.node.name, len(files), method)
        return RetrievedStudy(study_uid, folder, tuple(files))

    def _retrieve_into(
        self,
        study_uid: str,
        series_uids: Sequence[str],
        keep: Callable[[Dataset], None],
        cancel: Callable[[], bool] | None,
    ) -> None:
        method = self.node.retrieve
        if method == "wado":
            dicomweb.retrieve(self.node, study_uid, series_uids, keep, self._password, cancel)
        elif method == "c-get":
            dimse.retrieve_get(self.node, study_uid, series_uids, keep, cancel)
        else:
            dimse.retrieve_move(self.node, study_uid, series_uids, keep, cancel)

    def retrieve_series(
        self, study_uid: str, series_uid: str, cancel: Callable[[], bool] | None = None
    ) -> RetrievedStudy:
        """One series (WADO-RS series retrieve; C-GET/C-MOVE at SERIES level) into the cache;
        ``files`` lists it alone. When its OCT frames refer to a localizer that is not in the
        cache yet, the study's en-face (OP) series are retrieved beside it too, so the volume
        opens with its localizer as it would from the whole study."""
        got = self.retrieve(study_uid, (series_uid,), cancel)
        cached = {p.stem for p in got.folder.glob("*.dcm")}
        missing = {_SAFE.sub("_", uid) for uid in _localizer_uids(got.files)} - cached
        if missing:
            enface = [s.series_uid for s in self.series(study_uid)
                      if s.modality == "OP" and s.series_uid != series_uid]  # fmt: skip
            if enface:
                log.info("%s: retrieving %d localizer series", self.node.name, len(enface))
                self.retrieve(study_uid, enface, cancel)
        return got

    # --- sending ------------------------------------------------------------------------
    @property
    def outbox(self) -> Path:
        return archive_cache() / "outbox" / _SAFE.sub("_", self.node.address)

    def send(self, datasets: Sequence[Dataset]) -> list[Path]:
        """Write ``datasets`` to the outbox, then send everything waiting there (older
        refusals too); returns the files sent. On refusal they stay (ArchiveError, resendable)."""
        self.outbox.mkdir(parents=True, exist_ok=True)
        for ds in datasets:
            ds.save_as(self.outbox / f"{_SAFE.sub('_', str(ds.SOPInstanceUID))}.dcm",
                       enforce_file_format=True)  # fmt: skip
        return self.resend()

    def pending(self) -> list[Path]:
        return sorted(self.outbox.glob("*.dcm")) if self.outbox.is_dir() else []

    def resend(self) -> list[Path]:
        """Send what waits in the outbox; each file is removed once the archive took it."""
        files = self.pending()
        if not files:
            return []
        datasets = [pydicom.dcmread(p) for p in files]
        if self.is_web:
            dicomweb.store(self.node, datasets, self._password)
        else:
            dimse.store(self.node, datasets)
        for p in files:
            p.unlink(missing_ok=True)
        return files
