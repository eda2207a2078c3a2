"""The viewer's session, without Qt: the opened scans, their statuses, the model's state,
the analysis queue and the reports to write.

:class:`ScanEntry` is one opened file or folder and what the app knows about it;
:class:`EntryStatus` and :class:`ModelState` name where it and the model stand;
:class:`AnalysisQueue` says which scan is analysed next; :class:`ReportJob` is one report,
with everything it needs copied so it can be written on a worker thread. The
:class:`~octviewer.ui.controller.Controller` owns the entries and drives them; nothing here
imports PySide6, so the session can be built and tested without a display.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.ui.residency import ScanHeader, read_scan, scan_nbytes

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.heatmap import Heatmap
    from octviewer.core.result_cache import ResultCache
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan


class EntryStatus(str, enum.Enum):
    OPENING = "Opening…"
    WAITING = "Waiting for the model"
    QUEUED = "Queued"
    ANALYSING = "Analysing…"
    DONE = "Done"
    CANCELLED = "Cancelled"
    FAILED = "Could not open"
    ANALYSIS_FAILED = "Analysis failed"


class ModelState(str, enum.Enum):
    NONE = "none"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class ScanEntry:
    """One opened file or folder and what the app knows about it."""

    uid: int
    path: Path
    series: str | None = None
    status: EntryStatus = EntryStatus.OPENING
    scan: Scan | None = None  # None before it is read, when it failed, or when released
    #: what is kept of a scan read from a file when its frames are released (ui/residency.py)
    header: ScanHeader | None = None
    #: why the released frames could not be read again (shown instead of the scan)
    reread_error: str | None = None
    result: ScanResult | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    progress: tuple[int, int] = (0, 0)
    #: heatmaps asked for, by (frame, class), at the model's resolution (a few hundred bytes)
    cams: dict[tuple[int, int], Heatmap] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.perf_counter)

    @property
    def name(self) -> str:
        if self.scan is not None:
            return self.scan.metadata.display_name
        if self.header is not None:
            return self.header.metadata.display_name
        return self.path.name or str(self.path)

    @property
    def released(self) -> bool:
        """Read once, frames given back to free memory: reading the file again shows it."""
        return self.scan is None and self.header is not None

    @property
    def opened(self) -> bool:
        """The scan was read (its frames may be released since)."""
        return self.scan is not None or self.header is not None

    @property
    def is_volume(self) -> bool:
        return self.n_frames > 1

    @property
    def n_frames(self) -> int:
        """Frames of the scan (0 before it is read)."""
        known = self.scan if self.scan is not None else self.header
        return 0 if known is None else known.n_frames

    def release(self) -> None:
        """Give the frames (and localizer) back; the header, result and heatmaps stay."""
        if self.header is not None:
            self.scan = None

    def held_bytes(self) -> int:
        """Bytes of array data this entry holds: frames and localizer while resident, the
        result's per-frame arrays and the kept heatmaps (what grows with the entries)."""
        n = scan_nbytes(self.scan)
        if self.result is not None:
            for fr in self.result.frames:
                n += fr.probabilities.nbytes + fr.logits.nbytes
                n += fr.heatmap.nbytes if fr.heatmap is not None else 0
        seen = {id(fr.heatmap) for fr in self.result.frames} if self.result is not None else set()
        return n + sum(h.nbytes for h in self.cams.values() if id(h) not in seen)

    def take_result(self, result: ScanResult, elapsed_s: float) -> None:
        """The analysis is done: keep ``result`` and cache the heatmaps it carries."""
        self.result, self.status, self.elapsed_s = result, EntryStatus.DONE, elapsed_s
        for fr in result.frames:
            if fr.heatmap is not None and fr.cam_class is not None:
                self.cams[(fr.frame_index, fr.cam_class)] = fr.heatmap

    def needs_analysis(self, model_sha256: str) -> bool:
        """Opened, and without a result of that model (results of another model no longer
        describe what is shown)."""
        return (
            self.opened
            and self.status is not EntryStatus.FAILED
            and (self.result is None or self.result.model.sha256 != model_sha256)
        )

    @property
    def summary(self) -> str:
        """One line for the side list (:func:`~octviewer.ui.presenters.entry_summary`)."""
        from octviewer.ui.presenters import entry_summary

        return entry_summary(self)


@dataclass
class AnalysisQueue:
    """Which scan is analysed next: one at a time, the scan on screen (``priority``) first,
    the others in the order they were queued."""

    waiting: list[int] = field(default_factory=list)
    priority: int | None = None  # the scan on screen
    running: int | None = None

    def add(self, uid: int) -> None:
        """Queue ``uid`` unless it is queued or running already."""
        if uid not in self.waiting and uid != self.running:
            self.waiting.append(uid)

    def discard(self, uid: int) -> bool:
        """Forget ``uid``; True when it was the running one (the runner is free again)."""
        if uid in self.waiting:
            self.waiting.remove(uid)
        if self.running == uid:
            self.running = None
            return True
        return False

    def next(self) -> int | None:
        """Start the next scan (it becomes ``running``), or None when one runs or none waits."""
        if self.running is not None or not self.waiting:
            return None
        uid = self.priority if self.priority in self.waiting else self.waiting[0]
        self.waiting.remove(uid)
        self.running = uid
        return uid

    def finish(self) -> None:
        """The running analysis ended (result, failure or cancel)."""
        self.running = None

    def clear(self) -> list[int]:
        """Empty the waiting list; return what was waiting, in order."""
        out, self.waiting = self.waiting, []
        return out


def make_engine(bundle: Path, device: str, precision: str) -> Engine:
    """Load a model bundle (a model job; torch is imported here, not at start-up).
    ``precision``: "auto" (bf16 where native) or "fp32", with "+int8" for int8 arithmetic on
    the CPU (``Engine(quantize=True)``; a GPU ignores it and keeps the first part), "+noint8"
    for never int8, nothing for int8 when the bundle was validated in it (``quantize=None``)."""
    from octviewer.core.engine import Engine

    base, _, int8 = precision.partition("+")
    quantize = {"int8": True, "noint8": False}.get(int8)
    return Engine(bundle, device=device, precision=base, quantize=quantize)


def analyse(
    engine: Engine,
    scan: Scan,
    progress: Callable[[int, int], None],
    cancelled: Callable[[], bool],
    cache: ResultCache | None = None,
    series: str | None = None,
    lookup: bool = True,
) -> ScanResult:
    """The viewer's analysis of a scan. B-scan: prediction and CAM in one pass. Volume:
    predictions for every frame (the mirrored view only where it can change the answer,
    core/volume_rule.py), then the CAM of the frame on screen on request (request_cam).
    With a ``cache``: its result when it has one (``lookup``), else the engine's, stored."""
    from octviewer.core.volume_rule import VolumeShortcut

    def compute() -> ScanResult:
        return engine.analyze(
            scan,
            cam=not scan.is_volume,
            progress=progress,
            cancel=cancelled,
            shortcut=VolumeShortcut() if scan.is_volume else None,
        )

    if cache is None:
        return compute()
    return cache.through(scan, engine, compute, series=series, lookup=lookup)


def analyse_entry(
    engine: Engine,
    scan: Scan | None,
    source: tuple[Path, str | None],
    progress: Callable[[int, int], None],
    cancelled: Callable[[], bool],
    cache: ResultCache | None = None,
    lookup: bool = True,
) -> ScanResult:
    """The analysis job: a released scan (``scan`` None, e.g. analysed again by a new model)
    is read again from ``source`` (path, series) for the analysis and released after it.
    With a ``cache``: its result when it has one (``lookup``), else the engine's, stored."""
    if scan is None:
        scan, _header = read_scan(*source)
    return analyse(engine, scan, progress, cancelled, cache, source[1], lookup)


def default_report_name(entry: ScanEntry, frame: int) -> str:
    """``<file stem>[_frameN]_<class>_report.png``: from the file name, never the patient's name."""
    from octviewer.core.report.naming import safe_stem

    parts = [safe_stem(entry.path.stem if entry.path.suffix else entry.path.name, max_len=60)]
    if entry.is_volume:
        parts.append(f"frame{frame + 1:03d}")
    if entry.result is not None:
        with contextlib.suppress(KeyError):
            parts.append(entry.result.frame(frame).presented_class or "not-assessed")
    return "_".join(parts) + "_report.png"


def export_plan(entries: Iterable[ScanEntry], directory: Path) -> list[tuple[ScanEntry, int, Path]]:
    """Export all: each analysed entry, the frame its report shows (the most suspicious one of
    a volume) and its file in ``directory`` (a clash gets ``_`` before ``.png``)."""
    from octviewer.core.report.naming import unique_name

    plan = []
    used: set[str] = set()
    for e in entries:
        if e.result is None or not e.opened:
            continue
        frame = (
            e.result.most_suspicious_frame()
            if len(e.result.frames) > 1
            else e.result.frames[0].frame_index
        )
        plan.append((e, frame, directory / unique_name(default_report_name(e, frame), used)))
    return plan


def write_reports(
    jobs: list[ReportJob], cancelled: Callable[[], bool], progress: Callable[[int, int], None]
) -> list[Path]:
    """Write ``jobs`` in order until ``cancelled()``; return the files written."""
    written = []
    for i, job in enumerate(jobs):
        if cancelled():
            break
        written.append(job.run())
        progress(i + 1, len(jobs))
    return written


@dataclass(frozen=True)
class ReportJob:
    """One PNG report, with the scan, result, engine and cached heatmaps taken when it was
    asked for (the entry may change or close while a worker writes it). A released scan
    (``scan`` None) is read again from ``source`` (path, series, checksum) by the worker."""

    scan: Scan | None
    result: ScanResult
    engine: Engine | None
    cams: dict[tuple[int, int], Heatmap]
    frame: int
    class_index: int | None
    path: Path
    include_identity: bool
    show_unreliable: bool = False
    look: dict[str, Any] | None = None
    source: tuple[Path, str | None, int] | None = None

    @classmethod
    def of(
        cls,
        entry: ScanEntry,
        engine: Engine | None,
        frame: int,
        path: Path,
        class_index: int | None = None,
        include_identity: bool = False,
        show_unreliable: bool = False,
        look: dict[str, Any] | None = None,
    ) -> ReportJob:
        """The report of ``entry``'s ``frame``: the heatmap of ``class_index`` (None: the
        predicted class); ``show_unreliable``: a not-assessed frame's output drawn anyway;
        ``look``: the heatmap as the window shows it (colormap, opacity, contours)."""
        assert entry.opened and entry.result is not None
        cams = dict(entry.cams)
        options = (class_index, path, include_identity, show_unreliable, look)
        h = entry.header
        source = None if h is None else (entry.path, entry.series, h.checksum)
        return cls(entry.scan, entry.result, engine, cams, frame, *options, source=source)

    def _read(self) -> Scan:
        """The scan: as taken, or read again (refused when the file changed since)."""
        if self.scan is not None:
            return self.scan
        from octviewer.errors import ReportError

        assert self.source is not None
        path, series, checksum = self.source
        scan, header = read_scan(path, series)
        if header.checksum != checksum:
            raise ReportError(
                f"{path.name} changed since it was analysed, so its result no longer describes "
                "it. Show it to analyse it again, then write its report."
            )
        return scan

    def run(self) -> Path:
        """Write the report (computing the frame's heatmap when none is cached)."""
        from octviewer.core.report import save_report

        scan = self._read()
        fr = self.result.frame(self.frame)
        cls = fr.predicted_index if self.class_index is None else self.class_index
        cam = self.cams.get((self.frame, cls))
        drawn = fr.assessable or self.show_unreliable  # no heatmap for a frame not assessed
        if cam is None and self.engine is not None and drawn:
            cam = self.engine.heatmap(scan, self.frame, cls)
        look = dict(self.look or {})
        page = str(look.pop("page", "A4"))  # the printable page's size (PDF only)
        result = self.result.with_cam(self.frame, cam, cls)
        if self.path.suffix.lower() == ".pdf":
            from octviewer.core.report.pdf import PrintOptions, page_size, save_report_pdf

            options = PrintOptions(
                page=page_size(page),
                frame_index=self.frame,
                include_identity=self.include_identity,
                show_unreliable=self.show_unreliable,
                **look,
            )
            return save_report_pdf(scan, result, self.path, options)
        return save_report(
            scan,
            result,
            self.path,
            frame_index=self.frame,
            include_identity=self.include_identity,
            show_unreliable=self.show_unreliable,
            **look,
        )
