"""The window and the result cache (offscreen, synchronous jobs): a reopened scan shows its
result at once without the engine and says it came from the cache; "Analyse again" computes;
the cache can be turned off and cleared; after a run that did not close normally the window
offers to restore the last session, and restores its scans, with their results, from the cache.
Screenshots of the cached result and of the restore offer go to /tmp/cache-shots/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_models import make_tiny_bundle
from ui_helpers import KERMANY

pytestmark = pytest.mark.gui

from octviewer.ui.controller import Controller  # noqa: E402
from octviewer.ui.main_window import MainWindow  # noqa: E402
from octviewer.ui.settings import Settings  # noqa: E402
from octviewer.viewer.entry import EntryStatus  # noqa: E402
from octviewer.viewer.last_session import LastSession, SessionStore  # noqa: E402

SHOTS = Path("/tmp/cache-shots")


class CountingEngine:
    """A real engine that counts its ``analyze`` calls (what a cache hit must not make)."""

    def __init__(self, engine: Any) -> None:
        self._engine, self.calls = engine, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def analyze(self, scan: Any, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        return self._engine.analyze(scan, *args, **kw)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Any:
    from octviewer.core.engine import Engine

    d = tmp_path_factory.mktemp("model")
    return Engine(make_tiny_bundle(d / "tiny.safetensors"), device="cpu")


@pytest.fixture
def volume(tmp_path) -> Path:
    from test_result_cache import write_volume

    return write_volume(tmp_path / "volume.tif", n=7)


def _window(qtbot, tmp_path: Path, engine: Any) -> MainWindow:
    """A shown window whose jobs run in place, on ``engine``."""
    w = MainWindow(Settings.at(tmp_path / "settings.ini"), controller=Controller(sync=True))
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    w.controller.set_engine(engine)
    return w


def _dead_pid() -> int:
    """The id of a process that has exited."""
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return int(out.stdout)


def _crash(store: SessionStore) -> None:
    """What a crash leaves: the running marker of a process that is gone."""
    store.marker_path.write_text(json.dumps({"pid": _dead_pid(), "started": "2026-12-07"}))


def _shot(w: MainWindow, name: str) -> None:
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()  # let the layouts settle before the picture
    SHOTS.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(SHOTS / name))


def test_reopened_scan_comes_from_the_cache_at_once(qtbot, tmp_path, engine, volume) -> None:
    counting = CountingEngine(engine)
    w = _window(qtbot, tmp_path, counting)
    c = w.controller
    assert c.session.result_cache is not None and w.act["cache"].isChecked()
    (uid,) = c.open_paths([volume])
    assert counting.calls == 1 and "cached_at" not in c.entry(uid).result.extra
    c.remove(uid)
    (uid,) = c.open_paths([volume])
    entry = c.entry(uid)
    assert counting.calls == 1 and entry.status is EntryStatus.DONE
    assert "cached_at" in entry.result.extra
    # the result panel and the status bar say where the result came from
    assert "result from the cache, computed 20" in w.result_panel.confidence.text()
    assert "result from the cache, computed 20" in w.statusBar().currentMessage()
    _shot(w, "cached-result.png")
    # "Analyse again" runs the model
    w.reanalyse_current()
    assert counting.calls == 2 and "cached_at" not in c.entry(uid).result.extra
    assert "from the cache" not in w.result_panel.confidence.text()
    w.close()


def test_cache_off_and_clear(qtbot, tmp_path, engine) -> None:
    counting = CountingEngine(engine)
    w = _window(qtbot, tmp_path, counting)
    c = w.controller
    (uid,) = c.open_paths([KERMANY[0]])
    c.remove(uid)
    w.act["cache"].setChecked(False)  # Analysis > Reuse results from the result cache
    assert c.session.result_cache is None and not w.settings.result_cache
    c.open_paths([KERMANY[0]])
    assert counting.calls == 2
    w.act["cache"].setChecked(True)
    assert c.session.result_cache is not None and c.session.result_cache.usage()[0] == 1
    w.act["clear_cache"].trigger()  # Analysis > Clear result cache
    assert c.session.result_cache.usage() == (0, 0)
    message = w.statusBar().currentMessage()
    assert message.startswith("Result cache cleared: 1 result, ") and "freed" in message
    w.close()


def test_restore_after_an_unclean_exit(qtbot, tmp_path, engine, volume) -> None:
    counting = CountingEngine(engine)
    first = _window(qtbot, tmp_path / "a", counting)
    uids = first.controller.open_paths([KERMANY[0], volume, KERMANY[1]])
    first.show_entry(uids[1])
    assert counting.calls == 3
    store = SessionStore()
    # written within SAVE_DELAY_MS of the last change (once for the burst)
    qtbot.waitUntil(lambda: (store.load() or LastSession()).current == 1, timeout=3000)
    saved = store.load()
    assert saved is not None and saved.current == 1
    assert [Path(p) for p, _ in saved.items] == [KERMANY[0], volume, KERMANY[1]]
    _crash(store)  # the app died: no clean close
    first.controller.shutdown()

    w = _window(qtbot, tmp_path / "b", counting)
    r = w.restorer
    assert r.unclean and not r.restore_btn.isHidden()
    assert r.restore_btn.text() == "Restore last session (3 scans)"
    assert "did not close normally" in w.statusBar().currentMessage()
    _shot(w, "restore-offer.png")
    r.restore_btn.click()  # non-modal: the user clicks when ready
    assert r.restore_btn.isHidden()
    entries = w.controller.entries()
    assert [e.path for e in entries] == [KERMANY[0], volume, KERMANY[1]]
    assert all(e.status is EntryStatus.DONE for e in entries)
    assert counting.calls == 3  # every result from the cache
    assert w.current_entry().path == volume
    assert "result from the cache" in w.result_panel.confidence.text()
    _shot(w, "restored-session.png")
    w.close()
    # closed cleanly: the next start offers nothing, the menu still restores
    again = _window(qtbot, tmp_path / "c", counting)
    assert not again.restorer.unclean and again.restorer.restore_btn.isHidden()
    assert again.act["restore"].isEnabled()
    again.act["restore"].trigger()
    assert len(again.controller.entries()) == 3 and counting.calls == 3
    again.close()


def test_session_store_and_marker(tmp_path) -> None:
    store = SessionStore(tmp_path)
    assert store.load() is None and store.start() is False  # first run
    assert store.start() is False  # this process is alive: another window, not a crash
    store.close()
    assert not store.marker_path.exists()
    store.save(LastSession((("/scans/a.dcm", None), ("/scans/folder", "file:b.vol")), 1))
    assert store.load() == LastSession((("/scans/a.dcm", None), ("/scans/folder", "file:b.vol")), 1)
    store.session_path.write_text("{not json")
    assert store.load() is None  # ignored, not raised
    store.marker_path.write_text("garbage")
    assert store.start() is True
    _crash(store)
    assert store.start() is True
    store.close()


def test_the_session_list_stays_out_of_the_logs(qtbot, tmp_path, engine, caplog) -> None:
    import logging

    named = tmp_path / "Zyxwood_Quentin_PX99817.jpeg"
    named.write_bytes(KERMANY[0].read_bytes())
    with caplog.at_level(logging.DEBUG, logger="octviewer"):
        w = _window(qtbot, tmp_path, engine)
        w.controller.open_paths([named])
        w.restorer.save()
        w.close()
        again = _window(qtbot, tmp_path / "2", engine)
        again.act["restore"].trigger()
        again.close()
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.endswith(
        ("result_cache", "last_session", "session_keeper")))  # fmt: skip
    assert "Zyxwood" not in logged and "PX99817" not in logged
    assert "Zyxwood" in (Path(os.environ["OCTVIEWER_CACHE_DIR"]) / "last-session.json").read_text()
