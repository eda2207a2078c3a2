"""The viewer's session, without Qt: the opened scans, the model's state and the analysis
queue.

:class:`Session` holds them and tells every change as an event; each opened scan is a
:class:`~octviewer.viewer.entry.ScanEntry`; :class:`ModelState` names where the model stands;
:class:`AnalysisQueue` says which scan is analysed next. The jobs' work (model, analysis,
reports) is in :mod:`octviewer.viewer.work`. The :class:`~octviewer.ui.controller.Controller`
owns the entries and drives them; nothing here imports PySide6, so the session can be built
and tested without a display.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from octviewer.viewer.entry import ScanEntry
from octviewer.viewer.events import Events, ModelChanged, ScanAdded, ScanChanged

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.result_cache import ResultCache
    from octviewer.core.scan import Scan


class ModelState(str, enum.Enum):
    NONE = "none"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


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


class Session:
    """The opened scans, the model and the analysis queue: what the controller drives and the
    window draws. Every change goes out as one typed event on :attr:`events`
    (:mod:`octviewer.viewer.events`), so the window is told, it does not ask."""

    def __init__(self, model_text: str = "") -> None:
        self.events = Events()
        self._entries: dict[int, ScanEntry] = {}
        self._next_uid = 0
        self.engine: Engine | None = None
        self.model_state = ModelState.NONE
        self.model_text = model_text
        self.queue = AnalysisQueue()
        self.result_cache: ResultCache | None = None  # set: results read and stored there
        self.recompute: dict[int, bool] = {}  # uids to analyse once past the cache ("again")

    def entries(self) -> list[ScanEntry]:
        return list(self._entries.values())

    def entry(self, uid: int | None) -> ScanEntry | None:
        return None if uid is None else self._entries.get(uid)

    def add(self, path: Path, *, series: str | None = None, scan: Scan | None = None) -> ScanEntry:
        """A new entry (emits :class:`ScanAdded`)."""
        self._next_uid += 1
        entry = ScanEntry(self._next_uid, path, series=series, scan=scan)
        self._entries[entry.uid] = entry
        self.events.emit(ScanAdded(entry))
        return entry

    def pop(self, uid: int) -> ScanEntry | None:
        """Forget entry ``uid`` (the caller emits :class:`ScanRemoved` once its jobs are
        stopped)."""
        return self._entries.pop(uid, None)

    def changed(self, entry: ScanEntry) -> None:
        self.events.emit(ScanChanged(entry))

    def set_model(self, engine: Engine | None, state: ModelState, text: str) -> None:
        self.engine, self.model_state, self.model_text = engine, state, text
        self.events.emit(ModelChanged(state.value, text, engine))
