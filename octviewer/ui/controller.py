"""The glue between the core and the widgets: opened scans, the model, background jobs.

No widgets here. The controller owns the opened scans (:class:`~.session.ScanEntry`), loads
them on an I/O pool and runs the engine on a one-thread model pool, one analysis at a time
through :class:`~.session.AnalysisQueue` (the scan on screen first; cancel between batches;
``result_cache``, when set, answers first). :class:`~.workers.JobRunner` drops stale results.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from octviewer.errors import AmbiguousSeriesError, AnalysisCancelled, OCTViewerError
from octviewer.ui.workers import JobRunner
from octviewer.viewer import presenters, session, work
from octviewer.viewer.presenters import NO_MODEL_TEXT
from octviewer.viewer.residency import FrameKeeper, ScanHeader, read_scan
from octviewer.viewer.session import EntryStatus, ModelState, ScanEntry

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.heatmap import Heatmap
    from octviewer.core.result_cache import ResultCache
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan
    from octviewer.viewer.session import Look

log = logging.getLogger(__name__)
default_report_name = work.default_report_name  # re-exported: tests and scripts use it here


class Controller(QObject):
    """Signals carry entry uids; widgets read the entry through :meth:`entry`."""

    entry_added = Signal(int)
    entry_updated = Signal(int)
    entry_removed = Signal(int)
    result_ready = Signal(int)
    analysis_failed = Signal(int)
    analysis_progress = Signal(int, int, int)  # uid, done, total
    analysis_running = Signal(bool)
    cam_ready = Signal(int, int, int)  # uid, frame, class
    model_changed = Signal(str, str)  # ModelState value, text for the status bar
    error = Signal(str, str, str)  # title, message, details (traceback for unexpected errors)
    series_needed = Signal(int, object)  # uid, {key: description}
    export_progress = Signal(int, int)
    export_finished = Signal(object)  # list[Path] written

    def __init__(self, parent: QObject | None = None, *, sync: bool | None = None) -> None:
        """``sync``: run jobs in the calling thread (tests; see ui/workers.py)."""
        super().__init__(parent)
        self.model_jobs = JobRunner(1, self, sync=sync)
        self.io_jobs = JobRunner(2, self, sync=sync)
        self.engine: Engine | None = None
        self.model_state = ModelState.NONE
        self.model_text = NO_MODEL_TEXT
        self._entries: dict[int, ScanEntry] = {}
        self._next_uid = 0
        self.queue = session.AnalysisQueue()
        self.result_cache: ResultCache | None = None  # set: results read and stored there
        self.recompute: dict[int, bool] = {}  # uids to analyse once past the cache ("again")
        self.frames = FrameKeeper(self, self._report_error)  # whose frames stay in memory

    def entries(self) -> list[ScanEntry]:
        return list(self._entries.values())

    def entry(self, uid: int) -> ScanEntry | None:
        return self._entries.get(uid)

    def set_priority(self, uid: int | None) -> None:
        """The scan on screen: analysed first; released frames are read again (viewer/residency.py)."""
        self.queue.priority = uid
        self.frames.show(uid)

    def open_paths(self, paths: Iterable[str | Path | tuple[str | Path, str | None]]) -> list[int]:
        """Open files/folders or (path, series key) pairs in the background: an entry each."""
        uids = []
        with self._batch():
            for p in paths:
                path, series = p if isinstance(p, tuple) else (p, None)
                entry = self._new_entry(Path(path), series=series)
                uids.append(entry.uid)
                self._load(entry)
        return uids

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """Sync mode: jobs submitted inside start after it, as threads deliver after it."""
        with self.io_jobs.held(), self.model_jobs.held():
            yield

    def add_scan(self, scan: Scan, path: str | Path | None = None) -> int:
        """Add a scan that is already in memory (scripts, tests); it is analysed like a file."""
        src = path or (scan.metadata.source_paths[0] if scan.metadata.source_paths else "scan")
        entry = self._new_entry(Path(src), scan=scan)
        self._enqueue(entry)
        return entry.uid

    def _new_entry(
        self, path: Path, *, series: str | None = None, scan: Scan | None = None
    ) -> ScanEntry:
        self._next_uid += 1
        entry = ScanEntry(self._next_uid, path, series=series, scan=scan)
        self._entries[entry.uid] = entry
        self.entry_added.emit(entry.uid)
        return entry

    def open_series(self, uid: int, series: str) -> None:
        entry = self._entries.get(uid)
        if entry is None:
            return
        entry.series, entry.status, entry.error = series, EntryStatus.OPENING, None
        self.entry_updated.emit(uid)
        self._load(entry)

    def remove(self, uid: int) -> None:
        if self._entries.pop(uid, None) is None:
            return
        self.io_jobs.invalidate(f"load:{uid}")
        self.model_jobs.invalidate(f"analysis:{uid}")
        if self.queue.discard(uid):
            self.analysis_running.emit(False)
            self._start_next()
        self.entry_removed.emit(uid)

    def _load(self, entry: ScanEntry) -> None:
        path, series, uid = entry.path, entry.series, entry.uid
        self.io_jobs.submit(
            f"load:{uid}",
            lambda ctx: read_scan(path, series),
            on_result=lambda got: self._on_loaded(uid, *got),
            on_error=lambda exc, tb: self._on_load_error(uid, exc, tb),
        )

    def _on_loaded(self, uid: int, scan: Scan, header: ScanHeader) -> None:
        entry = self._entries.get(uid)
        if entry is None:
            return
        self.frames.loaded(entry, scan, header)
        log.info(
            "opened %s: %d frame(s) %dx%d, %s",
            scan.metadata.format,
            scan.n_frames,
            *scan.shape,
            scan.metadata.modality.value,
        )
        self._enqueue(entry)

    def _on_load_error(self, uid: int, exc: BaseException, tb: str) -> None:
        entry = self._entries.get(uid)
        if entry is None:
            return
        if isinstance(exc, AmbiguousSeriesError) and exc.independent and exc.series:
            # a folder of separate scans (vendor files, unrelated images): one entry each
            keys = list(exc.series)
            entry.series, entry.status, entry.error = keys[0], EntryStatus.OPENING, None
            self.entry_updated.emit(uid)
            with self._batch():
                self._load(entry)
                for key in keys[1:]:
                    self._load(self._new_entry(entry.path, series=key))
            return
        if isinstance(exc, AmbiguousSeriesError):
            entry.status, entry.error = EntryStatus.FAILED, str(exc)
            self.entry_updated.emit(uid)
            self.series_needed.emit(uid, dict(exc.series))
            return
        entry.status = EntryStatus.FAILED
        entry.error = self._report_error(f"Could not open {entry.path.name}", exc, tb)
        self.entry_updated.emit(uid)

    def _report_error(self, title: str, exc: BaseException, tb: str) -> str:
        """Emit ``error`` with the core's message (OCTViewerError) or a generic one (logged)."""
        if isinstance(exc, OCTViewerError):
            log.warning("%s: %s", title, exc)
            msg, details = str(exc), ""
        else:
            log.error("%s: unexpected error\n%s", title, tb)
            msg, details = presenters.unexpected_error_text(exc), tb
        self.error.emit(title, msg, details)
        return msg

    def load_model(
        self, path: str | Path | None, device: str = "auto", precision: str = "auto"
    ) -> None:
        """Load a bundle in the background (None = the bundled default, if present);
        ``precision``: "auto" or "fp32", "+int8" added for int8 (:func:`.work.make_engine`)."""
        from octviewer.resources import default_model_path

        bundle = Path(path) if path else default_model_path()
        if not bundle.is_file():
            if path:
                self.error.emit("Model not found", presenters.model_not_found_text(bundle), "")
            self._set_model(None, ModelState.NONE, NO_MODEL_TEXT)
            return
        self.model_jobs.cancel("analysis")
        self._set_model(self.engine, ModelState.LOADING, presenters.model_loading(bundle.name))
        self.model_jobs.submit(
            "model",
            lambda ctx: work.make_engine(bundle, device, precision),
            on_result=self._on_model_loaded,
            on_error=lambda exc, tb: self._on_model_error(bundle, exc, tb),
        )

    def set_engine(self, engine: Engine) -> None:
        """Use an already-built engine (tests, benchmarks)."""
        self._on_model_loaded(engine)

    def _set_model(self, engine: Engine | None, state: ModelState, text: str) -> None:
        self.engine, self.model_state, self.model_text = engine, state, text
        self.model_changed.emit(state.value, text)

    def _on_model_loaded(self, engine: Engine) -> None:
        ident = engine.identity
        log.info("model ready: %s on %s", ident, engine.device)
        self._set_model(engine, ModelState.READY, presenters.model_status(ident))
        with self._batch():
            for entry in self._entries.values():
                if entry.needs_analysis(ident.sha256):  # results of another model: analyse again
                    entry.result, entry.cams = None, {}
                    self._enqueue(entry)
            self._start_next()

    def _on_model_error(self, bundle: Path, exc: BaseException, tb: str) -> None:
        self._report_error(f"Could not load the model {bundle.name}", exc, tb)
        if self.engine is not None:  # the previous model stays in use
            self._on_model_loaded(self.engine)
        else:
            self._set_model(None, ModelState.FAILED, NO_MODEL_TEXT)

    def analyse(self, uid: int) -> None:
        """(Re)analyse an entry, e.g. after a cancel."""
        entry = self._entries.get(uid)
        if entry is not None and entry.opened:
            entry.result, entry.cams = None, {}
            self.recompute[uid] = True
            self._enqueue(entry)

    def _enqueue(self, entry: ScanEntry) -> None:
        ready = self.model_state is ModelState.READY
        entry.status = EntryStatus.QUEUED if ready else EntryStatus.WAITING
        self.queue.add(entry.uid)
        self.entry_updated.emit(entry.uid)
        self._start_next()

    def _start_next(self) -> None:
        """Start the next queued analysis, if the model is ready and none is running."""
        if self.model_state is not ModelState.READY:
            return
        uid = self.queue.next()
        if uid is None:
            return
        entry = self._entries[uid]
        assert entry.opened and self.engine is not None
        entry.status, entry.progress = EntryStatus.ANALYSING, (0, entry.n_frames)
        self.entry_updated.emit(uid)
        self.analysis_running.emit(True)
        engine, scan, source = self.engine, entry.scan, (entry.path, entry.series)
        started, cached = (
            time.perf_counter(),
            (self.result_cache, self.recompute.pop(uid, None) is None),
        )
        self.model_jobs.submit(
            f"analysis:{uid}",
            lambda ctx: work.analyse_entry(
                engine, scan, source, ctx.progress, ctx.cancelled, *cached
            ),
            on_result=lambda res: self._on_analysed(uid, res, started),
            on_error=lambda exc, tb: self._on_analysis_error(uid, exc, tb),
            on_progress=lambda d, t: self._on_progress(uid, d, t),
        )

    def cancel_analysis(self) -> None:
        """Stop the running analysis (between batches) and the queue behind it."""
        for uid in self.queue.clear():
            self._entries[uid].status = EntryStatus.CANCELLED
            self.entry_updated.emit(uid)
        if self.queue.running is not None:
            self.model_jobs.cancel(f"analysis:{self.queue.running}")

    def is_analysing(self) -> bool:
        return self.queue.running is not None

    def _on_progress(self, uid: int, done: int, total: int) -> None:
        entry = self._entries.get(uid)
        if entry is not None:
            entry.progress = (done, total)
            self.analysis_progress.emit(uid, done, total)  # cheap: no full redraw per batch

    def _finish_running(self) -> None:
        self.queue.finish()
        self.analysis_running.emit(False)
        self._start_next()

    def _on_analysed(self, uid: int, result: ScanResult, started: float) -> None:
        entry = self._entries.get(uid)
        current = self.engine.identity.sha256 if self.engine is not None else result.model.sha256
        if entry is not None and result.model.sha256 != current:
            self._finish_running()  # produced by the previous model: analyse again with this one
            self.analyse(uid)
            return
        if entry is not None:
            entry.take_result(result, time.perf_counter() - started)
            log.info(
                "analysed scan %d: %d frame(s) in %.2f s", uid, len(result.frames), entry.elapsed_s
            )
            self.entry_updated.emit(uid)
            self.result_ready.emit(uid)
        self._finish_running()

    def _on_analysis_error(self, uid: int, exc: BaseException, tb: str) -> None:
        entry = self._entries.get(uid)
        if entry is not None:
            if isinstance(exc, AnalysisCancelled):
                entry.status = EntryStatus.CANCELLED
                log.info("analysis of scan %d cancelled", uid)
            else:
                entry.status = EntryStatus.ANALYSIS_FAILED
                entry.error = self._report_error(f"Could not analyse {entry.name}", exc, tb)
            self.entry_updated.emit(uid)
            self.analysis_failed.emit(uid)
        self._finish_running()

    def request_cam(self, uid: int, frame: int, class_index: int) -> Heatmap | None:
        """The cached Heatmap, or None after asking the engine for it (``cam_ready`` follows).
        Only the newest request counts: moving to another frame drops older ones."""
        entry = self._entries.get(uid)
        if entry is None or entry.scan is None or entry.result is None or self.engine is None:
            return None
        key = (frame, class_index)
        if key in entry.cams:
            return entry.cams[key]
        engine, scan = self.engine, entry.scan

        def done(cam: Heatmap) -> None:
            e = self._entries.get(uid)
            if e is not None:
                e.cams[key] = cam
                self.cam_ready.emit(uid, frame, class_index)

        self.model_jobs.submit(
            "cam",
            lambda ctx: engine.heatmap(scan, frame, class_index),
            on_result=done,
            on_error=lambda exc, tb: self._report_error("Could not compute the heatmap", exc, tb),
        )
        e = self._entries.get(uid)
        return None if e is None else e.cams.get(key)  # sync mode: computed already

    cam_for = request_cam  # the old name: it submits a job, it is not a getter

    def export_report(
        self,
        uid: int,
        frame: int,
        path: str | Path,
        *,
        class_index: int | None = None,
        include_identity: bool = False,
        show_unreliable: bool = False,
        look: Look | None = None,
    ) -> None:
        """Write one scan/frame's PNG report in the background (options: ReportJob.of)."""
        entry, options = self._entries[uid], (class_index, include_identity, show_unreliable, look)
        job = work.ReportJob.of(entry, self.engine, frame, Path(path), *options)
        self.model_jobs.submit(
            "export",
            lambda ctx: [job.run()],
            on_result=self._on_exported,
            on_error=lambda exc, tb: self._report_error("Could not export the report", exc, tb),
            supersede=False,
        )

    def export_all(
        self, directory: str | Path, *, include_identity: bool = False, look: Look | None = None
    ) -> list[int]:
        """One report per analysed scan (its most suspicious frame for volumes) into ``directory``."""
        plan = work.export_plan(self._entries.values(), Path(directory))
        options = (None, include_identity, False, look)
        jobs = [work.ReportJob.of(e, self.engine, frame, path, *options) for e, frame, path in plan]
        self.model_jobs.submit(
            "export-all",
            lambda ctx: work.write_reports(jobs, ctx.cancelled, ctx.progress),
            on_result=self._on_exported,
            on_error=lambda exc, tb: self._report_error("Could not export the reports", exc, tb),
            on_progress=lambda d, t: self.export_progress.emit(d, t),
        )
        return [e.uid for e, _, _ in plan]

    def cancel_export(self) -> None:
        self.model_jobs.cancel("export-all")

    def _on_exported(self, paths: Any) -> None:
        log.info("wrote %d report(s)", len(paths))
        self.export_finished.emit(list(paths))

    def shutdown(self) -> None:
        self.model_jobs.shutdown()
        self.io_jobs.shutdown()
