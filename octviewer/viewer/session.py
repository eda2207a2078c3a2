"""The viewer's session, without Qt: the opened scans, their statuses, the model's state and
the analysis queue.

:class:`ScanEntry` is one opened file or folder and what the app knows about it;
:class:`EntryStatus` and :class:`ModelState` name where it and the model stand;
:class:`AnalysisQueue` says which scan is analysed next. The jobs' work (model, analysis,
reports) is in :mod:`octviewer.viewer.work`. The :class:`~octviewer.ui.controller.Controller`
owns the entries and drives them; nothing here imports PySide6, so the session can be built
and tested without a display.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from octviewer.viewer.events import Events, ModelChanged, ScanAdded, ScanChanged
from octviewer.viewer.residency import ScanHeader, scan_nbytes

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
    #: what is kept of a scan read from a file when its frames are released (viewer/residency.py)
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
