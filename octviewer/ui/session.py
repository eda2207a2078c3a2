"""The viewer's session, without Qt: the opened scans, their statuses and the model's state.

:class:`ScanEntry` is one opened file or folder and what the app knows about it;
:class:`EntryStatus` and :class:`ModelState` name where it and the model stand. The
:class:`~octviewer.ui.controller.Controller` owns the entries and drives them; nothing here
imports PySide6, so the session can be built and tested without a display.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
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
    scan: Scan | None = None
    result: ScanResult | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    progress: tuple[int, int] = (0, 0)
    cams: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.perf_counter)

    @property
    def name(self) -> str:
        if self.scan is not None:
            return self.scan.metadata.display_name
        return self.path.name or str(self.path)

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
