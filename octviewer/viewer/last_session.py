"""The viewer's last session on disk, without Qt: which scans were open (their paths and series
keys, in order) and which one was on screen, and a marker that says the app is running.

Both live in the app's cache folder (:func:`~octviewer.core.cache_dir.cache_home`), next to
the result cache. The marker is written at start and removed at a clean close: a marker left
by a process that is gone means the previous run did not close normally (a crash, a forced
quit), and the window offers to restore. The session file holds the user's own file paths, in
the user's own folder; it is never logged.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from octviewer.core.cache_dir import cache_home
from octviewer.core.result_cache import write_atomic

log = logging.getLogger(__name__)

SESSION_FILE = "last-session.json"
MARKER_FILE = "running.json"


@dataclass(frozen=True)
class LastSession:
    """The scans that were open, as ``(path, series key or None)``, and the index of the one
    on screen (None: none)."""

    items: tuple[tuple[str, str | None], ...] = ()
    current: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def to_json(self) -> str:
        items = [{"path": p, "series": s} for p, s in self.items]
        return json.dumps({"version": 1, "items": items, "current": self.current}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> LastSession:
        """Raises ValueError (or KeyError, TypeError) on anything but a session file."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a session file")
        items = []
        for d in data["items"]:
            path, series = d["path"], d.get("series")
            if not isinstance(path, str) or not (series is None or isinstance(series, str)):
                raise ValueError("bad item")
            items.append((path, series))
        current = data.get("current")
        if not (isinstance(current, int) and 0 <= current < len(items)):
            current = None
        return cls(tuple(items), current)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs. On Windows, where signal 0 is not a probe, only this
    process counts as alive."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class SessionStore:
    """The session file and the running marker in ``folder`` (default: the app's cache folder)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else cache_home()

    @property
    def session_path(self) -> Path:
        return self.folder / SESSION_FILE

    @property
    def marker_path(self) -> Path:
        return self.folder / MARKER_FILE

    def load(self) -> LastSession | None:
        """The last session saved; None when there is none or it cannot be read (logged)."""
        try:
            return LastSession.from_json(self.session_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("the last session file cannot be read (%s); ignored", type(exc).__name__)
            return None

    def save(self, session: LastSession) -> None:
        try:
            write_atomic(self.session_path, session.to_json())
        except OSError as exc:
            log.warning("the session list could not be saved (%s)", exc.strerror)

    def start(self) -> bool:
        """Mark this run as running; True when the previous run did not close cleanly (its
        marker is still there and its process is gone)."""
        unclean = False
        try:
            prev = json.loads(self.marker_path.read_text(encoding="utf-8"))
            pid = prev.get("pid") if isinstance(prev, dict) else None
            unclean = not (isinstance(pid, int) and _alive(pid))
        except FileNotFoundError:
            pass
        except (OSError, ValueError):  # a damaged marker is a marker
            unclean = True
        stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        try:
            write_atomic(self.marker_path, json.dumps({"pid": os.getpid(), "started": stamp}))
        except OSError as exc:
            log.warning("the running marker could not be written (%s)", exc.strerror)
        if unclean:
            log.info("the previous run of octviewer did not close normally")
        return unclean

    def close(self) -> None:
        """A clean close: remove the marker (when it is this process's)."""
        with contextlib.suppress(OSError, ValueError):
            prev = json.loads(self.marker_path.read_text(encoding="utf-8"))
            if isinstance(prev, dict) and prev.get("pid") == os.getpid():
                self.marker_path.unlink()
