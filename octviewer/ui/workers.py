"""Background jobs on a Qt thread pool: :class:`~octviewer.viewer.jobs.Jobs`'s numbered
requests (stale results dropped, cooperative cancel), run on worker threads.

Results travel back through queued signals and are delivered on the GUI thread.

Synchronous mode (``JobRunner(sync=True)``, or the environment variable
``OCTVIEWER_SYNCHRONOUS=1`` for runners made without ``sync``): jobs run in the calling
thread, exactly as :class:`~octviewer.viewer.jobs.Jobs` runs them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from octviewer.core.device import lower_thread_priority
from octviewer.viewer.jobs import Job, Jobs, execute, synchronous_default

log = logging.getLogger(__name__)
#: per pool thread: whether its priority was lowered (the window's thread keeps its own)
_pool_thread = threading.local()


class _Bridge(QObject):
    """Lives on the GUI thread; worker threads emit, the GUI thread receives (queued)."""

    result = Signal(int, object)
    error = Signal(int, object, str)
    progress = Signal(int, int, int)
    finished = Signal(int)

    def __init__(self, runner: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self.result.connect(self._deliver_result)
        self.error.connect(self._deliver_error)
        self.progress.connect(self._deliver_progress)
        self.finished.connect(self._deliver_finished)

    @Slot(int, object)
    def _deliver_result(self, rid: int, out: object) -> None:
        self._runner.deliver_result(rid, out)

    @Slot(int, object, str)
    def _deliver_error(self, rid: int, exc: object, tb: str) -> None:
        self._runner.deliver_error(rid, exc, tb)

    @Slot(int, int, int)
    def _deliver_progress(self, rid: int, done: int, total: int) -> None:
        self._runner.deliver_progress(rid, done, total)

    @Slot(int)
    def _deliver_finished(self, rid: int) -> None:
        self._runner.deliver_finished(rid)


class _Runnable(QRunnable):
    def __init__(self, job: Job, bridge: _Bridge, runner: JobRunner) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._job = job
        self._bridge = bridge
        self._runner = runner

    def run(self) -> None:  # runs on a pool thread
        if not getattr(_pool_thread, "lowered", False):  # once per pool thread
            _pool_thread.lowered = True
            lower_thread_priority()
        b = self._bridge
        execute(self._job, self._runner.is_current, b.result.emit, b.error.emit, b.finished.emit)


class JobRunner(Jobs):
    """Runs jobs on its own thread pool; delivers results on the GUI thread.

    ``max_threads=1`` serialises jobs (the model pool: one engine, one job at a time).
    ``sync=True`` runs them in the calling thread instead (None: ``OCTVIEWER_SYNCHRONOUS``).
    """

    def __init__(
        self, max_threads: int = 1, parent: QObject | None = None, *, sync: bool | None = None
    ) -> None:
        super().__init__()
        self.sync = synchronous_default() if sync is None else sync
        self._pool = QThreadPool(parent)
        self._pool.setMaxThreadCount(max_threads)
        self._bridge = _Bridge(self, parent)

    def _reporter(self, rid: int) -> Callable[[int, int], None]:
        if self.sync:
            return super()._reporter(rid)
        emit = self._bridge.progress.emit
        return lambda done, total: emit(rid, done, total)

    def _launch(self, job: Job) -> None:
        if self.sync:
            super()._launch(job)
        else:
            self._pool.start(_Runnable(job, self._bridge, self))

    def _wait_for_threads(self, timeout_ms: int) -> bool:
        self._pool.clear()
        return self._pool.waitForDone(timeout_ms)
