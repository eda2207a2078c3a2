"""The main window's memory across runs: the last session and the result cache.

:class:`SessionKeeper` (``window.restorer``) keeps the list of open scans on disk as it changes
(:mod:`~octviewer.viewer.last_session`), offers to restore it after a run that did not close
normally (a status-bar button, never a modal dialog), restores it on *File > Restore last
session*, gives the controller the result cache (:mod:`octviewer.core.result_cache`) when the
setting allows it, empties the cache on *Analysis > Clear result cache*, and says when a result
shown came from the cache.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QPushButton

from octviewer.core.result_cache import ResultCache, cached_at_text
from octviewer.viewer.events import Event, ResultArrived, ScanAdded, ScanChanged, ScanRemoved
from octviewer.viewer.last_session import LastSession, SessionStore

if TYPE_CHECKING:
    from octviewer.ui.window_face import Window

log = logging.getLogger(__name__)

#: changes to the list of open scans are written at most this often (ms): the list is walked
#: and written whole, which cost milliseconds at every event of a session of a thousand scans
SAVE_DELAY_MS = 1000


def size_text(n_bytes: int) -> str:
    """ "1.2 MB", "340 kB", "12 bytes"."""
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:.1f} MB"
    if n_bytes >= 1_000:
        return f"{n_bytes / 1_000:.0f} kB"
    return f"{n_bytes} bytes"


class SessionKeeper:
    """See the module docstring. ``window`` is the main window (its Window face);
    :meth:`start` after its widgets and actions exist, :meth:`closed` from its close event."""

    def __init__(self, window: Window, store: SessionStore | None = None) -> None:
        self.window = window
        self.store = store or SessionStore()
        self.previous: LastSession | None = None  # the session before this run
        self.unclean = False
        self._saved = LastSession()  # nothing opened yet: the last session stays as it was
        self.restore_btn = QPushButton("Restore last session")
        self.restore_btn.setToolTip("Reopen the scans that were open when octviewer last ran")
        self.restore_btn.clicked.connect(self.restore_last_session)
        self.restore_btn.hide()
        self._save_soon = QTimer()
        self._save_soon.setSingleShot(True)
        self._save_soon.setInterval(SAVE_DELAY_MS)
        self._save_soon.timeout.connect(self.save_now)
        self.set_cache_enabled(window.settings.result_cache)

    # --- start and close ---------------------------------------------------------------------
    def start(self) -> None:
        """Read the last session, mark this run as running, follow the open scans, and offer
        to restore when the previous run did not close normally."""
        w, c = self.window, self.window.controller
        self.previous = self.store.load()
        self.unclean = self.store.start()
        c.events.connect(self._on_event)
        w.scan_list.current_uid_changed.connect(lambda _uid: self.save())
        # a permanent widget: beside the status messages, not over them
        w.statusBar().insertPermanentWidget(0, self.restore_btn)
        if self.unclean and self.previous:
            n = len(self.previous)
            self.restore_btn.setText(f"Restore last session ({n} scan{'s' * (n != 1)})")
            self.restore_btn.show()
            w.statusBar().showMessage("octviewer did not close normally last time.", 30000)

    def closed(self) -> None:
        """A clean close: save the session and remove the running marker."""
        self.save_now()
        self.store.close()

    # --- the session list --------------------------------------------------------------------
    def current_session(self) -> LastSession:
        """The scans open now (those read from a file or folder that exists), in list order."""
        w = self.window
        items, current = [], None
        for entry in w.controller.entries():
            if not entry.path.exists():  # an in-memory scan: nothing to reopen
                continue
            if entry.uid == w.view.uid:
                current = len(items)
            items.append((str(entry.path), entry.series))
        return LastSession(tuple(items), current)

    def save(self) -> None:
        """Save the list of open scans within :data:`SAVE_DELAY_MS` (once for a burst of
        changes; a crash loses at most that last second of it)."""
        if not self._save_soon.isActive():
            self._save_soon.start()

    def save_now(self) -> None:
        self._save_soon.stop()
        session = self.current_session()
        if session != self._saved:
            self.store.save(session)
            self._saved = session

    def restore_last_session(self) -> list[int]:
        """Reopen the scans of the last session (those not open already); their results come
        from the cache. The scan that was on screen is shown."""
        w, prev = self.window, self.previous
        self.restore_btn.hide()
        if not prev:
            w.statusBar().showMessage("There is no last session to restore.", 8000)
            return []
        open_now = {(str(e.path), e.series) for e in w.controller.entries()}
        wanted = [item for item in prev.items if item not in open_now]
        uids = w.controller.open_paths(wanted)
        shown = prev.items[prev.current] if prev.current is not None else None
        if shown in wanted:
            w.show_entry(uids[wanted.index(shown)])
        log.info("restored the last session: %d scan(s)", len(uids))
        w.statusBar().showMessage(f"Restored {len(uids)} scan(s) of the last session.", 8000)
        return uids

    # --- the result cache --------------------------------------------------------------------
    def set_cache_enabled(self, on: bool) -> None:
        """Use the result cache (read before analysing, store after) or not."""
        self.window.settings.result_cache = bool(on)
        self.window.controller.session.result_cache = ResultCache.default() if on else None

    def clear_result_cache(self) -> tuple[int, int]:
        """Empty the result cache and say how much it freed: (entries, bytes)."""
        cache = self.window.controller.session.result_cache or ResultCache.default()
        n, freed = cache.clear()
        self.window.statusBar().showMessage(
            f"Result cache cleared: {n} result{'s' * (n != 1)}, {size_text(freed)} freed.", 15000
        )
        return n, freed

    def _on_event(self, event: Event) -> None:
        if isinstance(event, (ScanAdded, ScanChanged, ScanRemoved)):
            self.save()
        elif isinstance(event, ResultArrived):
            entry = event.entry
            note = cached_at_text(entry.result) if entry.result else None
            if note and entry.uid == self.window.view.uid:
                self.window.statusBar().showMessage(f"{entry.name}: {note}.", 15000)
