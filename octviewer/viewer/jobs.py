"""Background jobs with numbered requests, without Qt: stale results dropped, cancel cooperative.

A job is a plain callable ``fn(ctx)``. Every submission gets a request number; for each
*channel* ("analysis", "cam", ...) only the newest request counts when ``supersede=True``, so a
result that arrives after a newer request on the same channel is dropped instead of being
shown on the wrong scan or frame. Cancellation is cooperative: the job receives a
:class:`JobContext` whose ``cancelled()`` the core checks between batches.

:class:`Jobs` runs each job in the calling thread, with the delivery rules of the threaded
runner (``on_result`` / ``on_error`` / ``on_progress``, stale results dropped, superseded jobs
skipped, cooperative cancel): the controller's tests inject it and need no event loop and no
QApplication. A job submitted while another runs (from its job or its callbacks) waits until
that one is delivered, as on a one-thread pool; inside :meth:`Jobs.held` submitted jobs start
when the block ends, as they would once the caller returned to the event loop.
:class:`octviewer.ui.workers.JobRunner` is the same bookkeeping with a Qt thread pool.
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

from octviewer.viewer.events import Event, Events

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """Given to a running job: progress reporting and the cancel flag."""

    request_id: int
    channel: str
    cancel_flag: threading.Event = field(default_factory=threading.Event)
    report: Callable[[int, int], None] | None = None

    def cancelled(self) -> bool:
        return self.cancel_flag.is_set()

    def progress(self, done: int, total: int) -> None:
        if self.report is not None:
            self.report(int(done), int(total))


@dataclass
class Job:
    ctx: JobContext
    fn: Callable[[JobContext], Any]
    on_result: Callable[[Any], None] | None
    on_error: Callable[[BaseException, str], None] | None
    on_progress: Callable[[int, int], None] | None
    supersede: bool


@dataclass(frozen=True)
class BusyChanged(Event):
    busy: bool


def execute(
    job: Job,
    is_current: Callable[[str, int], bool],
    result: Callable[[int, object], None],
    error: Callable[[int, object, str], None],
    finished: Callable[[int], None],
) -> None:
    """Run ``job`` unless superseded; hand its outcome to ``result`` or ``error``."""
    ctx = job.ctx
    try:
        if job.supersede and not is_current(ctx.channel, ctx.request_id):
            log.debug("skipping superseded %s request %d", ctx.channel, ctx.request_id)
            return
        out = job.fn(ctx)
    except BaseException as exc:  # delivered to the caller, which decides how to show it
        error(ctx.request_id, exc, traceback.format_exc())
    else:
        result(ctx.request_id, out)
    finally:
        finished(ctx.request_id)


def synchronous_default() -> bool:
    """``OCTVIEWER_SYNCHRONOUS`` set to anything but "" or "0": runners run jobs in place."""
    return os.environ.get("OCTVIEWER_SYNCHRONOUS", "") not in ("", "0")


def matches(job_channel: str, channel: str | None) -> bool:
    """``None`` matches all; ``"analysis"`` matches ``"analysis"`` and ``"analysis:<n>"``."""
    return channel is None or job_channel == channel or job_channel.startswith(channel + ":")


class Jobs:
    """Numbered jobs run in the calling thread (see the module docstring). ``busy_changed``
    (a signal-like face of :attr:`events`) says when the first job starts and the last ends."""

    sync = True

    def __init__(self) -> None:
        self.events = Events()
        self.busy_changed = self.events.signal(BusyChanged)
        self._pending: deque[int] = deque()  # submitted, not started (in this thread)
        self._draining = False
        self._holds = 0
        self._lock = threading.Lock()
        self._next_id = 0
        self._latest: dict[str, int] = {}
        self._jobs: dict[int, Job] = {}
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
        ctx = JobContext(rid, channel, report=self._reporter(rid))
        job = Job(ctx, fn, on_result, on_error, on_progress, supersede)
        self._jobs[rid] = job
        if len(self._jobs) == 1:
            self.events.emit(BusyChanged(True))
        self._launch(job)
        return rid

    def _reporter(self, rid: int) -> Callable[[int, int], None]:
        """What a job's ``ctx.progress`` calls (here: delivery in place)."""
        return lambda done, total: self.deliver_progress(rid, done, total)

    def _launch(self, job: Job) -> None:
        """Start ``job``: here, run it in this thread once the running one is delivered."""
        self._pending.append(job.ctx.request_id)
        self._drain()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Jobs submitted inside the block start when it ends (as on a pool, where they run
        while the caller goes on). No effect with threads."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            self._drain()

    def _drain(self) -> None:
        """Run pending jobs oldest first, one at a time, in this thread."""
        if self._draining or self._holds:
            return
        self._draining = True
        try:
            while self._pending:
                job = self._jobs.get(self._pending.popleft())
                if job is not None:  # None: shut down meanwhile
                    execute(
                        job,
                        self.is_current,
                        self.deliver_result,
                        self.deliver_error,
                        self.deliver_finished,
                    )
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
            if matches(job.ctx.channel, channel):
                job.ctx.cancel_flag.set()

    def pending(self, channel: str | None = None) -> int:
        return sum(1 for j in self._jobs.values() if matches(j.ctx.channel, channel))

    def is_busy(self) -> bool:
        return bool(self._jobs)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel everything; True when all stopped."""
        self.cancel()
        self._pending.clear()
        ok = self._wait_for_threads(timeout_ms)
        self._jobs.clear()
        return ok

    def _wait_for_threads(self, timeout_ms: int) -> bool:
        return True

    # --- delivery (the caller's thread) --------------------------------------------------------
    def _stale(self, rid: int) -> bool:
        job = self._jobs.get(rid)
        if job is None:
            return True
        return job.supersede and not self.is_current(job.ctx.channel, rid)

    def deliver_result(self, rid: int, out: object) -> None:
        if self._stale(rid):
            log.debug("dropping stale result of request %d", rid)
            self.dropped.append(rid)
            return
        job = self._jobs[rid]
        if job.on_result is not None:
            job.on_result(out)

    def deliver_error(self, rid: int, exc: object, tb: str) -> None:
        if self._stale(rid):
            log.debug("dropping stale error of request %d: %s", rid, exc)
            self.dropped.append(rid)
            return
        job = self._jobs[rid]
        if job.on_error is not None:
            job.on_error(exc, tb)  # type: ignore[arg-type]
        else:
            log.error("unhandled error in background job %d:\n%s", rid, tb)

    def deliver_progress(self, rid: int, done: int, total: int) -> None:
        job = self._jobs.get(rid)
        if job is not None and job.on_progress is not None and not self._stale(rid):
            job.on_progress(done, total)

    def deliver_finished(self, rid: int) -> None:
        self._jobs.pop(rid, None)
        if not self._jobs:
            self.events.emit(BusyChanged(False))
