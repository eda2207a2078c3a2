"""Typed events and the small callback list that carries them, without Qt.

The session and the view state *push*: each change is one event (a frozen dataclass) handed
to every callback connected to an :class:`Events`. The Qt layer connects one callback per
view owner and redraws once per event; tests connect a list's ``append``.

:meth:`Events.signal` gives a signal-like face onto one event type (``connect`` /
``disconnect`` / ``emit``, the slot called with the event's :meth:`args`): the controller's
``result_ready``, ``model_changed`` ... keep their names and arguments for scripts, and
pytest-qt's ``waitSignal`` accepts them as it accepts a Qt signal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from octviewer.viewer.entry import ScanEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """The base of every event; :meth:`args` are what a signal-style slot receives."""

    def args(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class ScanAdded(Event):
    """A scan was opened (its entry exists, its file may still be read)."""

    entry: ScanEntry

    def args(self) -> tuple[Any, ...]:
        return (self.entry.uid,)


@dataclass(frozen=True)
class ScanChanged(Event):
    """A scan's status, frames or result changed."""

    entry: ScanEntry

    def args(self) -> tuple[Any, ...]:
        return (self.entry.uid,)


@dataclass(frozen=True)
class ScanRemoved(Event):
    uid: int


@dataclass(frozen=True)
class ResultArrived(Event):
    """A scan's analysis is done (a :class:`ScanChanged` came just before)."""

    entry: ScanEntry

    def args(self) -> tuple[Any, ...]:
        return (self.entry.uid,)


@dataclass(frozen=True)
class AnalysisFailed(Event):
    """A scan's analysis failed or was cancelled (a :class:`ScanChanged` came just before)."""

    uid: int


@dataclass(frozen=True)
class AnalysisProgress(Event):
    """A batch of a running analysis is done (the list entry only, no full redraw)."""

    entry: ScanEntry
    done: int
    total: int

    def args(self) -> tuple[Any, ...]:
        return (self.entry.uid, self.done, self.total)


@dataclass(frozen=True)
class AnalysisRunning(Event):
    running: bool


@dataclass(frozen=True)
class CamReady(Event):
    """A heatmap asked for arrived: scan ``uid``, ``frame``, ``class_index``."""

    uid: int
    frame: int
    class_index: int


@dataclass(frozen=True)
class ModelChanged(Event):
    """The model's state (a ModelState value), the status bar's text for it, and the engine
    (a core Engine once ready; the previous one or None while loading or after a failure)."""

    state: str
    text: str
    engine: Any = None

    def args(self) -> tuple[Any, ...]:
        return (self.state, self.text)


@dataclass(frozen=True)
class ErrorRaised(Event):
    """Something the user must be told: title, message, details (a traceback or "")."""

    title: str
    message: str
    details: str = ""


@dataclass(frozen=True)
class SeriesNeeded(Event):
    """A folder holds several series: which one should scan ``uid`` open ({key: text})."""

    uid: int
    series: dict[str, str]


@dataclass(frozen=True)
class ExportProgress(Event):
    done: int
    total: int


@dataclass(frozen=True)
class ExportFinished(Event):
    paths: list[Path]

    def args(self) -> tuple[Any, ...]:
        return (list(self.paths),)


@dataclass(frozen=True)
class ViewChanged(Event):
    """Fields of the view state changed (their names)."""

    fields: frozenset[str]


Callback = Callable[[Event], None]


class Events:
    """A list of callbacks; :meth:`emit` calls each with the event, in connection order."""

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []

    def connect(self, callback: Callback) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callback) -> None:
        """Forget ``callback`` (its first connection); a callback never connected is ignored."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, event: Event) -> None:
        for callback in list(self._callbacks):  # a callback may connect or disconnect
            callback(event)

    def signal(self, kind: type[Event]) -> EventSignal:
        """A signal-like face onto the events of type ``kind``."""
        return EventSignal(self, kind)


class EventSignal:
    """``connect(slot)``: ``slot(*event.args())`` for every event of one type."""

    def __init__(self, events: Events, kind: type[Event]) -> None:
        self._events, self._kind = events, kind
        self._wrappers: list[tuple[Callable[..., Any], Callback]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        def wrapper(event: Event) -> None:
            if isinstance(event, self._kind):
                slot(*event.args())

        self._wrappers.append((slot, wrapper))
        self._events.connect(wrapper)

    def disconnect(self, slot: Callable[..., Any] | None = None) -> None:
        """Disconnect ``slot`` (None: every slot); one never connected raises TypeError, as
        a Qt signal's does (pytest-qt relies on it being silent only for that)."""
        found = [(s, w) for s, w in self._wrappers if slot is None or s == slot]
        if slot is not None and not found:
            raise TypeError(f"{slot!r} is not connected")
        for pair in found[: None if slot is None else 1]:
            self._wrappers.remove(pair)
            self._events.disconnect(pair[1])
