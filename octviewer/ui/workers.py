"""Background jobs with numbered requests: stale results are dropped, cancel is cooperative.

A job is a plain callable run on a :class:`QThreadPool`. Every submission gets a request
number; for each *channel* ("analysis", "cam", ...) only the newest request counts when
``supersede=True``, so a result that arrives after a newer request on the same channel is
dropped instead of being shown on the wrong scan or frame. Cancellation is cooperative: the
job receives a :class:`JobContext` whose ``cancelled()`` the core checks between batches.

Results travel back through queued signals and are delivered on the GUI thread.

Synchronous mode (``JobRunner(sync=True)``, or the environment variable
``OCTVIEWER_SYNCHRONOUS=1`` for runners made without ``sync``): jobs run in the calling thread,
with the same delivery (``on_result`` / ``on_error`` / ``on_progress``, stale results dropped,
superseded jobs skipped, cooperative cancel), so tests of the controller need no event loop.
A job submitted while another runs (from its job or its callbacks) waits until that one is
delivered, as on the one-thread pool; inside :meth:`JobRunner.held` submitted jobs start when
the block ends, as they would once the caller returned to the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """Given to a running job: progress reporting and the cancel flag."""

    request_id: int
    channel: str
    _cancel: threading.Event = field(default_factory=threading.Event)
    _progress: Callable[[int, int], None] | None = None

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(int(done), int(total))


@dataclass
class _Job:
    ctx: JobContext
    fn: Callable[[JobContext], Any]
    on_result: Callable[[Any], None] | None
    on_error: Callable[[BaseException, str], None] | None
    on_progress: Callable[[int, int], None] | None
    supersede: bool


class _Bridge(QObject):
    """Lives on the GUI thread; worker threads emit, the GUI thread receives (queued)."""

    result = Signal(int, object)
    error = Signal(int, object, str)
    progress = Signal(int, int, int)
    finished = Signal(int)


class _Runnable(QRunnable):
    def __init__(self, job: _Job, bridge: _Bridge, runner: JobRunner) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._job = job
        self._bridge = bridge
        self._runner = runner

    def run(self) -> None:  # runs on a pool thread
        b = self._bridge
        _execute(self._job, self._runner, b.result.emit, b.error.emit, b.finished.emit)


def _execute(
    job: _Job,
    runner: JobRunner,
    result: Callable[[int, object], None],
    error: Callable[[int, object, str], None],
    finished: Callable[[int], None],
) -> None:
    """Run ``job`` unless superseded; hand its outcome to ``result`` or ``error``."""
    ctx = job.ctx
    try:
        if job.supersede and not runner.is_current(ctx.channel, ctx.request_id):
            log.debug("skipping superseded %s request %d", ctx.channel, ctx.request_id)
            return
        out = job.fn(ctx)
    except BaseException as exc:  # delivered to the GUI, which decides how to show it
        error(ctx.request_id, exc, traceback.format_exc())
    else:
        result(ctx.request_id, out)
    finally:
        finished(ctx.request_id)


def synchronous_default() -> bool:
    """``OCTVIEWER_SYNCHRONOUS`` set to anything but "" or "0": runners run jobs in place."""
    return os.environ.get("OCTVIEWER_SYNCHRONOUS", "") not in ("", "0")


class JobRunner(QObject):
    """Runs jobs on its own thread pool; delivers results on the GUI thread.

    ``max_threads=1`` serialises jobs (the model pool: one engine, one job at a time).
    ``sync=True`` runs them in the calling thread instead (None: ``OCTVIEWER_SYNCHRONOUS``).
    """

    busy_changed = Signal(bool)

    def __init__(
        self, max_threads: int = 1, parent: QObject | None = None, *, sync: bool | None = None
    ) -> None:
        super().__init__(parent)
        self.sync = synchronous_default() if sync is None else sync
        self._pending: deque[int] = deque()  # sync mode: submitted, not started
        self._draining = False
        self._holds = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._bridge = _Bridge(self)
        self._bridge.result.connect(self._on_result)
        self._bridge.error.connect(self._on_error)
        self._bridge.progress.connect(self._on_progress)
        self._bridge.finished.connect(self._on_finished)
        self._lock = threading.Lock()
        self._next_id = 0
        self._latest: dict[str, int] = {}
        self._jobs: dict[int, _Job] = {}
        self.dropped: list[int] = []  # request ids whose results were stale (for tests/logs)

    # --- submission -------------------------------------------------------------------------
    def submit(
        self,
        channel: str,
        fn: Callable[[JobContext], Any],
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException, str], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        supersede: bool = True,
    ) -> int:
        """Queue ``fn(ctx)``; return its request number. With ``supersede`` a newer request on
        the same channel makes this one stale (skipped if not started, result dropped if done)."""
        with self._lock:
            self._next_id += 1
            rid = self._next_id
            if supersede:
                self._latest[channel] = rid
        bridge = self._bridge
        report = self._on_progress if self.sync else bridge.progress.emit
        ctx = JobContext(rid, channel, _progress=lambda d, t: report(rid, d, t))
        job = _Job(ctx, fn, on_result, on_error, on_progress, supersede)
        self._jobs[rid] = job
        was_idle = len(self._jobs) == 1
        if self.sync:
            self._pending.append(rid)
            if was_idle:
                self.busy_changed.emit(True)
            self._drain()
            return rid
        self._pool.start(_Runnable(job, bridge, self))
        if was_idle:
            self.busy_changed.emit(True)
        return rid

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Sync mode: jobs submitted inside the block start when it ends (as on the pool,
        where they run while the caller goes on). No effect with threads."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            self._drain()

    def _drain(self) -> None:
        """Sync mode: run pending jobs oldest first, one at a time, in this thread."""
        if self._draining or self._holds:
            return
        self._draining = True
        try:
            while self._pending:
                job = self._jobs.get(self._pending.popleft())
                if job is not None:  # None: shut down meanwhile
                    _execute(job, self, self._on_result, self._on_error, self._on_finished)
        finally:
            self._draining = False

    def is_current(self, channel: str, request_id: int) -> bool:
        with self._lock:
            return self._latest.get(channel) == request_id

    def invalidate(self, channel: str) -> None:
        """Make every request on ``channel`` stale (and ask running ones to stop)."""
        with self._lock:
            self._latest[channel] = -1
        self.cancel(channel)

    def cancel(self, channel: str | None = None) -> None:
        """Ask jobs (of ``channel``, or all) to stop at their next check."""
        for job in list(self._jobs.values()):
            if _matches(job.ctx.channel, channel):
                job.ctx._cancel.set()

    def pending(self, channel: str | None = None) -> int:
        return sum(1 for j in self._jobs.values() if _matches(j.ctx.channel, channel))

    def is_busy(self) -> bool:
        return bool(self._jobs)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel everything, wait for the threads; True when all stopped."""
        self.cancel()
        self._pending.clear()
        self._pool.clear()
        ok = self._pool.waitForDone(timeout_ms)
        self._jobs.clear()
        return ok

    # --- delivery (GUI thread) -----------------------------------------------------------
    def _stale(self, rid: int) -> bool:
        job = self._jobs.get(rid)
        if job is None:
            return True
        return job.supersede and not self.is_current(job.ctx.channel, rid)

    @Slot(int, object)
    def _on_result(self, rid: int, out: object) -> None:
        if self._stale(rid):
            log.debug("dropping stale result of request %d", rid)
            self.dropped.append(rid)
            return
        job = self._jobs[rid]
        if job.on_result is not None:
            job.on_result(out)

    @Slot(int, object, str)
    def _on_error(self, rid: int, exc: object, tb: str) -> None:
        if self._stale(rid):
            log.debug("dropping stale error of request %d: %s", rid, exc)
            self.dropped.append(rid)
            return
        job = self._jobs[rid]
        if job.on_error is not None:
            job.on_error(exc, tb)  # type: ignore[arg-type]
        else:
            log.error("unhandled error in background job %d:\n%s", rid, tb)

    @Slot(int, int, int)
    def _on_progress(self, rid: int, done: int, total: int) -> None:
        job = self._jobs.get(rid)
        if job is not None and job.on_progress is not None and not self._stale(rid):
            job.on_progress(done, total)

    @Slot(int)
    def _on_finished(self, rid: int) -> None:
        self._jobs.pop(rid, None)
        if not self._jobs:
            self.busy_changed.emit(False)


def _matches(job_channel: str, channel: str | None) -> bool:
    """``None`` matches all; ``"analysis"`` matches ``"analysis"`` and ``"analysis:<n>"``."""
    return channel is None or job_channel == channel or job_channel.startswith(channel + ":")
