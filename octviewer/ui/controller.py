"""The glue between the core and the widgets: opened scans, the model, background jobs.

No widgets and no Qt here. The controller drives the session (:mod:`octviewer.viewer.session`:
the opened scans, the model, the analysis queue), loads scans through ``io_jobs`` and runs the
engine through ``model_jobs`` (one job at a time), one analysis at a time through the
queue (the scan on screen first; cancel between batches; ``result_cache``, when set, answers
first). The runners drop stale results; every change goes out as an event
(:mod:`octviewer.viewer.events`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.errors import AmbiguousSeriesError, AnalysisCancelled, OCTViewerError
from octviewer.viewer import events, presenters, session, work
from octviewer.viewer.entry import EntryStatus, ScanEntry
from octviewer.viewer.jobs import Jobs
from octviewer.viewer.presenters import NO_MODEL_TEXT
from octviewer.viewer.residency import FrameKeeper, ScanHeader, read_scan
from octviewer.viewer.session import ModelState
from octviewer.viewer.work import DEFAULT_REPORT, ReportOptions

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.heatmap import Heatmap
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan

log = logging.getLogger(__name__)


class Controller:
    """Drives the session; its events have signal-like faces here (uids as arguments).
    ``model_jobs`` / ``io_jobs``: runners with :class:`~octviewer.viewer.jobs.Jobs`'s
    ``submit`` (a test injects ``Jobs()``: no QApplication); without them the Qt thread
    pools are made (:class:`~octviewer.ui.workers.JobRunner`, ``sync`` as there)."""

    def __init__(
        self,
        *,
        sync: bool | None = None,
        model_jobs: Jobs | None = None,
        io_jobs: Jobs | None = None,
    ) -> None:
        if model_jobs is None or io_jobs is None:
            from octviewer.ui.workers import JobRunner  # Qt only when no runner is injected

            model_jobs = model_jobs or JobRunner(1, sync=sync)
            io_jobs = io_jobs or JobRunner(2, sync=sync)
        self.model_jobs, self.io_jobs = model_jobs, io_jobs
        self.session = session.Session(NO_MODEL_TEXT)
        self.events = ev = self.session.events
        self.entry_added = ev.signal(events.ScanAdded)  # uid
        self.entry_updated = ev.signal(events.ScanChanged)  # uid
        self.entry_removed = ev.signal(events.ScanRemoved)  # uid
        self.result_ready = ev.signal(events.ResultArrived)  # uid
        self.analysis_failed = ev.signal(events.AnalysisFailed)  # uid
        self.analysis_progress = ev.signal(events.AnalysisProgress)  # uid, done, total
        self.analysis_running = ev.signal(events.AnalysisRunning)  # bool
        self.cam_ready = ev.signal(events.CamReady)  # uid, frame, class
        self.model_changed = ev.signal(events.ModelChanged)  # ModelState value, status text
        self.error = ev.signal(events.ErrorRaised)  # title, message, details (a traceback)
        self.series_needed = ev.signal(events.SeriesNeeded)  # uid, {key: description}
        self.export_progress = ev.signal(events.ExportProgress)  # done, total
        self.export_finished = ev.signal(events.ExportFinished)  # list[Path] written
        self.frames = FrameKeeper(self, self._report_error)  # whose frames stay in memory

    # --- the session's state, by its old names ---------------------------------------------
    @property
    def engine(self) -> Engine | None:
        return self.session.engine

    @property
    def model_state(self) -> ModelState:
        return self.session.model_state

    def entries(self) -> list[ScanEntry]:
        return self.session.entries()

    def entry(self, uid: int) -> ScanEntry | None:
        return self.session.entry(uid)

    def _emit(self, event: events.Event) -> None:
        self.session.events.emit(event)

    def set_priority(self, uid: int | None) -> None:
        """The scan on screen: analysed first; released frames are read again (viewer/residency.py)."""
        self.session.queue.priority = uid
        self.frames.show(uid)

    def open_paths(self, paths: Iterable[str | Path | tuple[str | Path, str | None]]) -> list[int]:
        """Open files/folders or (path, series key) pairs in the background: an entry each."""
        uids = []
        with self._batch():
            for p in paths:
                path, series = p if isinstance(p, tuple) else (p, None)
                entry = self.session.add(Path(path), series=series)
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
        entry = self.session.add(Path(src), scan=scan)
        self._enqueue(entry)
        return entry.uid

    def open_series(self, uid: int, series: str) -> None:
        entry = self.session.entry(uid)
        if entry is None:
            return
        entry.series, entry.status, entry.error = series, EntryStatus.OPENING, None
        self.session.changed(entry)
        self._load(entry)

    def remove(self, uid: int) -> None:
        if self.session.pop(uid) is None:
            return
        self.io_jobs.invalidate(f"load:{uid}")
        self.model_jobs.invalidate(f"analysis:{uid}")
        if self.session.queue.discard(uid):
            self._emit(events.AnalysisRunning(False))
            self._start_next()
        self._emit(events.ScanRemoved(uid))

    def _load(self, entry: ScanEntry) -> None:
        path, series, uid = entry.path, entry.series, entry.uid
        self.io_jobs.submit(
            f"load:{uid}",
            lambda ctx: read_scan(path, series),
            on_result=lambda got: self._on_loaded(uid, *got),
            on_error=lambda exc, tb: self._on_load_error(uid, exc, tb),
        )

    def _on_loaded(self, uid: int, scan: Scan, header: ScanHeader) -> None:
        entry = self.session.entry(uid)
        if entry is None:
            return
        self.frames.loaded(entry, scan, header)
        md = scan.metadata
        log.info("opened %s: %d frame(s) %dx%d, %s", md.format, scan.n_frames, *scan.shape,
                 md.modality.value)  # fmt: skip
        self._enqueue(entry)

    def _on_load_error(self, uid: int, exc: BaseException, tb: str) -> None:
        entry = self.session.entry(uid)
        if entry is None:
            return
        if isinstance(exc, AmbiguousSeriesError) and exc.independent and exc.series:
            # a folder of separate scans (vendor files, unrelated images): one entry each
            keys = list(exc.series)
            entry.series, entry.status, entry.error = keys[0], EntryStatus.OPENING, None
            self.session.changed(entry)
            with self._batch():
                self._load(entry)
                for key in keys[1:]:
                    self._load(self.session.add(entry.path, series=key))
            return
        if isinstance(exc, AmbiguousSeriesError):
            entry.status, entry.error = EntryStatus.FAILED, str(exc)
            self.session.changed(entry)
            self._emit(events.SeriesNeeded(uid, dict(exc.series)))
            return
        entry.status = EntryStatus.FAILED
        entry.error = self._report_error(f"Could not open {entry.path.name}", exc, tb)
        self.session.changed(entry)

    def _report_error(self, title: str, exc: BaseException, tb: str) -> str:
        """Emit ``error`` with the core's message (OCTViewerError) or a generic one (logged)."""
        if isinstance(exc, OCTViewerError):
            log.warning("%s: %s", title, exc)
            msg, details = str(exc), ""
        else:
            log.error("%s: unexpected error\n%s", title, tb)
            msg, details = presenters.unexpected_error_text(exc), tb
        self._emit(events.ErrorRaised(title, msg, details))
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
                text = presenters.model_not_found_text(bundle)
                self._emit(events.ErrorRaised("Model not found", text))
            self.session.set_model(None, ModelState.NONE, NO_MODEL_TEXT)
            return
        self.model_jobs.cancel("analysis")
        self.session.set_model(
            self.engine, ModelState.LOADING, presenters.model_loading(bundle.name)
        )
        self.model_jobs.submit(
            "model",
            lambda ctx: work.make_engine(bundle, device, precision),
            on_result=self._on_model_loaded,
            on_error=lambda exc, tb: self._on_model_error(bundle, exc, tb),
        )

    def set_engine(self, engine: Engine) -> None:
        """Use an already-built engine (tests, benchmarks)."""
        self._on_model_loaded(engine)

    def _on_model_loaded(self, engine: Engine) -> None:
        ident = engine.identity
        log.info("model ready: %s on %s", ident, engine.device)
        self.session.set_model(engine, ModelState.READY, presenters.model_status(ident))
        with self._batch():
            for entry in self.entries():
                if entry.needs_analysis(ident.sha256):  # results of another model: analyse again
                    entry.result, entry.cams = None, {}
                    self._enqueue(entry)
            self._start_next()

    def _on_model_error(self, bundle: Path, exc: BaseException, tb: str) -> None:
        self._report_error(f"Could not load the model {bundle.name}", exc, tb)
        if self.engine is not None:  # the previous model stays in use
            self._on_model_loaded(self.engine)
        else:
            self.session.set_model(None, ModelState.FAILED, NO_MODEL_TEXT)

    def analyse(self, uid: int) -> None:
        """(Re)analyse an entry, e.g. after a cancel."""
        entry = self.session.entry(uid)
        if entry is not None and entry.opened:
            entry.result, entry.cams = None, {}
            self.session.recompute[uid] = True
            self._enqueue(entry)

    def _enqueue(self, entry: ScanEntry) -> None:
        ready = self.model_state is ModelState.READY
        entry.status = EntryStatus.QUEUED if ready else EntryStatus.WAITING
        self.session.queue.add(entry.uid)
        self.session.changed(entry)
        self._start_next()

    def _start_next(self) -> None:
        """Start the next queued analysis, if the model is ready and none is running."""
        if self.model_state is not ModelState.READY:
            return
        uid = self.session.queue.next()
        if uid is None:
            return
        entry = self.session.entry(uid)
        assert entry is not None and entry.opened and self.engine is not None
        entry.status, entry.progress = EntryStatus.ANALYSING, (0, entry.n_frames)
        self.session.changed(entry)
        self._emit(events.AnalysisRunning(True))
        engine, scan, source = self.engine, entry.scan, (entry.path, entry.series)
        started = time.perf_counter()
        cached = (self.session.result_cache, self.session.recompute.pop(uid, None) is None)
        self.model_jobs.submit(
            f"analysis:{uid}",
            lambda ctx: work.analyse_entry(engine, scan, source, ctx, *cached),
            on_result=lambda res: self._on_analysed(uid, res, started),
            on_error=lambda exc, tb: self._on_analysis_error(uid, exc, tb),
            on_progress=lambda d, t: self._on_progress(uid, d, t),
        )

    def cancel_analysis(self) -> None:
        """Stop the running analysis (between batches) and the queue behind it."""
        for uid in self.session.queue.clear():
            entry = self.session.entry(uid)
            if entry is not None:
                entry.status = EntryStatus.CANCELLED
                self.session.changed(entry)
        if self.session.queue.running is not None:
            self.model_jobs.cancel(f"analysis:{self.session.queue.running}")

    def is_analysing(self) -> bool:
        return self.session.queue.running is not None

    def _on_progress(self, uid: int, done: int, total: int) -> None:
        entry = self.session.entry(uid)
        if entry is not None:
            entry.progress = (done, total)
            self._emit(events.AnalysisProgress(entry, done, total))  # the list only

    def _finish_running(self) -> None:
        self.session.queue.finish()
        self._emit(events.AnalysisRunning(False))
        self._start_next()

    def _on_analysed(self, uid: int, result: ScanResult, started: float) -> None:
        entry = self.session.entry(uid)
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
            self.session.changed(entry)
            self._emit(events.ResultArrived(entry))
        self._finish_running()

    def _on_analysis_error(self, uid: int, exc: BaseException, tb: str) -> None:
        entry = self.session.entry(uid)
        if entry is not None:
            if isinstance(exc, AnalysisCancelled):
                entry.status = EntryStatus.CANCELLED
                log.info("analysis of scan %d cancelled", uid)
            else:
                entry.status = EntryStatus.ANALYSIS_FAILED
                entry.error = self._report_error(f"Could not analyse {entry.name}", exc, tb)
            self.session.changed(entry)
            self._emit(events.AnalysisFailed(uid))
        self._finish_running()

    def request_cam(self, uid: int, frame: int, class_index: int) -> Heatmap | None:
        """The cached Heatmap, or None after asking the engine for it (``cam_ready`` follows).
        Only the newest request counts: moving to another frame drops older ones."""
        entry = self.session.entry(uid)
        if entry is None or entry.scan is None or entry.result is None or self.engine is None:
            return None
        key = (frame, class_index)
        if key in entry.cams:
            return entry.cams[key]
        engine, scan = self.engine, entry.scan

        def done(cam: Heatmap) -> None:
            e = self.session.entry(uid)
            if e is not None:
                e.cams[key] = cam
                self._emit(events.CamReady(uid, frame, class_index))

        self.model_jobs.submit(
            "cam",
            lambda ctx: engine.heatmap(scan, frame, class_index),
            on_result=done,
            on_error=lambda exc, tb: self._report_error("Could not compute the heatmap", exc, tb),
        )
        e = self.session.entry(uid)
        return None if e is None else e.cams.get(key)  # sync mode: computed already

    def export_report(
        self, uid: int, frame: int, path: str | Path, options: ReportOptions = DEFAULT_REPORT
    ) -> None:
        """Write one scan/frame's PNG report in the background."""
        entry = self.entry(uid)
        assert entry is not None
        job = work.ReportJob.of(entry, self.engine, frame, Path(path), options)
        self.model_jobs.submit(
            "export",
            lambda ctx: [job.run()],
            on_result=self._on_exported,
            on_error=lambda exc, tb: self._report_error("Could not export the report", exc, tb),
            supersede=False,
        )

    def export_all(
        self, directory: str | Path, options: ReportOptions = DEFAULT_REPORT
    ) -> list[int]:
        """One report per analysed scan (its most suspicious frame for volumes, its predicted
        class's heatmap) into ``directory``."""
        plan = work.export_plan(self.entries(), Path(directory))
        opts = replace(options, class_index=None, show_unreliable=False)
        jobs = [work.ReportJob.of(e, self.engine, frame, path, opts) for e, frame, path in plan]
        self.model_jobs.submit(
            "export-all",
            lambda ctx: work.write_reports(jobs, ctx.cancelled, ctx.progress),
            on_result=self._on_exported,
            on_error=lambda exc, tb: self._report_error("Could not export the reports", exc, tb),
            on_progress=lambda d, t: self._emit(events.ExportProgress(d, t)),
        )
        return [e.uid for e, _, _ in plan]

    def cancel_export(self) -> None:
        self.model_jobs.cancel("export-all")

    def _on_exported(self, paths: Any) -> None:
        log.info("wrote %d report(s)", len(paths))
        self._emit(events.ExportFinished(list(paths)))

    def shutdown(self) -> None:
        self.model_jobs.shutdown()
        self.io_jobs.shutdown()
