"""The controller without a window, a QApplication or event-loop waits (ndv-style): it gets
Qt-free runners (:class:`octviewer.viewer.jobs.Jobs`) that run each job in the calling thread
with the threaded runner's delivery rules, so every assertion below holds as soon as the call
returns. A real tiny engine analyses."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers_models import make_tiny_bundle
from ui_helpers import KERMANY, kermany_volume

from octviewer.ui.controller import Controller
from octviewer.viewer.entry import EntryStatus
from octviewer.viewer.events import ResultArrived, ScanAdded, ScanChanged
from octviewer.viewer.jobs import Jobs


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> tuple[Any, Any]:
    """Two tiny engines with different weights (so different SHA-256)."""
    from octviewer.core.engine import Engine

    d = tmp_path_factory.mktemp("models")
    a = Engine(make_tiny_bundle(d / "a.safetensors", seed=0), device="cpu")
    b = Engine(make_tiny_bundle(d / "b.safetensors", seed=1), device="cpu")
    assert a.identity.sha256 != b.identity.sha256
    return a, b


@pytest.fixture
def controller():
    c = Controller(model_jobs=Jobs(), io_jobs=Jobs())  # injected: no thread pool, no Qt
    yield c
    c.shutdown()


def _bscan(i: int):
    from octviewer.core.io import load

    return load(KERMANY[i])


def _started(c: Controller) -> list[int]:
    """The uids in the order their analyses start."""
    order: list[int] = []

    def on_update(uid: int) -> None:
        e = c.entry(uid)
        if e is not None and e.status is EntryStatus.ANALYSING:
            order.append(uid)

    c.entry_updated.connect(on_update)
    return order


# --- the runner ----------------------------------------------------------------------------------
def test_sync_runner_delivers_in_place() -> None:
    r = Jobs()
    busy: list[bool] = []
    r.busy_changed.connect(busy.append)
    got: list[object] = []
    progress: list[tuple[int, int]] = []

    def job(ctx):
        ctx.progress(1, 2)
        return "done"

    r.submit("x", job, on_result=got.append, on_progress=lambda d, t: progress.append((d, t)))
    assert got == ["done"] and progress == [(1, 2)] and busy == [True, False]
    errors: list[tuple[BaseException, str]] = []
    r.submit("x", lambda ctx: 1 / 0, on_error=lambda e, tb: errors.append((e, tb)))
    assert isinstance(errors[0][0], ZeroDivisionError) and "ZeroDivisionError" in errors[0][1]
    assert not r.is_busy()


def test_sync_runner_drops_stale_results_and_skips_superseded_jobs() -> None:
    r = Jobs()
    got: list[str] = []

    def old(ctx):
        # a newer request while this one runs: it waits, as on the one-thread pool
        r.submit("cam", lambda ctx: "new", on_result=got.append)
        assert got == []
        return "old"

    first = r.submit("cam", old, on_result=got.append)
    assert got == ["new"] and r.dropped == [first]
    ran: list[int] = []
    with r.held():  # both submitted before either starts: the first is superseded
        r.submit("frame", lambda ctx: ran.append(1))
        r.submit("frame", lambda ctx: ran.append(2))
        assert ran == []
    assert ran == [2]


def test_sync_runner_cancel_is_seen_between_steps() -> None:
    r = Jobs()
    seen: list[object] = []

    def job(ctx):
        ctx.progress(1, 3)  # the handler cancels
        return "stopped" if ctx.cancelled() else "finished"

    r.submit(
        "analysis:1", job, on_result=seen.append, on_progress=lambda d, t: r.cancel("analysis")
    )
    assert seen == ["stopped"]


# --- the controller ------------------------------------------------------------------------------
def test_scans_wait_for_the_model_then_the_scan_on_screen_goes_first(controller, engines) -> None:
    c = controller
    uids = [c.add_scan(_bscan(i)) for i in range(3)]
    assert [c.entry(u).status for u in uids] == [EntryStatus.WAITING] * 3
    order = _started(c)
    ready: list[int] = []
    c.result_ready.connect(ready.append)
    c.set_priority(uids[2])
    c.set_engine(engines[0])
    # the one on screen first, then the queue's order
    assert order == [uids[2], uids[0], uids[1]] and sorted(ready) == sorted(uids)
    assert all(c.entry(u).status is EntryStatus.DONE for u in uids)
    assert not c.is_analysing() and not c.model_jobs.is_busy()


def test_open_paths_loads_and_analyses_without_waiting(controller, engines) -> None:
    c = controller
    c.set_engine(engines[0])
    bad = KERMANY[0].parent / "no-such-scan.dcm"
    errors: list[str] = []
    c.error.connect(lambda t, m, d: errors.append(t))
    good, missing = c.open_paths([KERMANY[1], bad])
    assert c.entry(good).status is EntryStatus.DONE
    assert c.entry(good).result.frames[0].cam is not None  # a B-scan: CAM in the same pass
    assert c.entry(missing).status is EntryStatus.FAILED
    assert errors == ["Could not open no-such-scan.dcm"]


def test_cancel_stops_the_analysis_and_it_can_run_again(controller, engines) -> None:
    c = controller
    c.set_engine(engines[0])
    c.analysis_progress.connect(lambda uid, done, total: c.cancel_analysis())
    failed: list[int] = []
    c.analysis_failed.connect(failed.append)
    uid = c.add_scan(kermany_volume(12))
    entry = c.entry(uid)
    assert entry.status is EntryStatus.CANCELLED and entry.result is None and failed == [uid]
    assert not c.is_analysing()
    c.analysis_progress.disconnect()  # every slot
    c.analyse(uid)
    assert entry.status is EntryStatus.DONE and len(entry.result.frames) == 12


def test_closing_a_scan_while_it_is_analysed_drops_its_result(controller, engines) -> None:
    c = controller
    c.set_engine(engines[0])
    c.analysis_progress.connect(lambda uid, done, total: c.remove(uid))
    ready: list[int] = []
    c.result_ready.connect(ready.append)
    uid = c.add_scan(kermany_volume(12))
    assert c.entry(uid) is None and ready == [] and not c.is_analysing()


def test_heatmap_on_request_and_a_stale_one_is_dropped(controller, engines) -> None:
    c = controller
    real = engines[0]
    c.set_engine(real)
    uid = c.add_scan(kermany_volume(6))
    entry = c.entry(uid)
    assert all(f.cam is None for f in entry.result.frames)  # a volume: CAMs on request
    ready: list[tuple[int, int, int]] = []
    c.cam_ready.connect(lambda *a: ready.append(a))
    cam = c.request_cam(uid, 2, 1)
    assert cam is not None and ready == [(uid, 2, 1)] and (2, 1) in entry.cams
    assert cam.nbytes <= 4096 and cam.full().shape == entry.scan.shape  # kept at the model's grid
    assert c.request_cam(uid, 2, 1) is cam and len(ready) == 1  # cached: no second job

    class MovesOn:
        """The user steps to frame 4 while frame 3's heatmap is computed."""

        def __init__(self) -> None:
            self.moved = False

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def heatmap(self, scan, frame, cls):
            if not self.moved:
                self.moved = True
                c.request_cam(uid, 4, cls)
            return real.heatmap(scan, frame, cls)

    c.session.engine = MovesOn()
    ready.clear()
    c.request_cam(uid, 3, 0)
    assert ready == [(uid, 4, 0)] and (3, 0) not in entry.cams and (4, 0) in entry.cams
    assert c.model_jobs.dropped  # frame 3's heatmap arrived after the newer request


def test_a_new_model_analyses_every_scan_again(controller, engines) -> None:
    a, b = engines
    c = controller
    c.set_engine(a)
    uid = c.add_scan(_bscan(0))
    assert c.entry(uid).result.model.sha256 == a.identity.sha256
    c.set_engine(b)
    assert c.entry(uid).result.model.sha256 == b.identity.sha256
    # a model change during an analysis: its result (of the old model) is not kept
    c.set_engine(a)
    switched: list[bool] = []

    def switch(uid_: int, done: int, total: int) -> None:
        if not switched:
            switched.append(True)
            c.set_engine(b)

    c.analysis_progress.connect(switch)
    order = _started(c)
    vol = c.add_scan(kermany_volume(12))
    # the volume's first result (old model) is dropped: the B-scan, then the volume again
    assert order == [vol, uid, vol]
    assert c.entry(vol).result.model.sha256 == b.identity.sha256
    assert c.entry(uid).result.model.sha256 == b.identity.sha256
    assert c.entry(vol).status is EntryStatus.DONE


def test_export_all_names_clashing_files_apart(controller, engines, tmp_path: Path) -> None:
    c = controller
    c.set_engine(engines[0])
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(KERMANY[0], tmp_path / d / "scan.jpeg")
    c.open_paths([tmp_path / "a" / "scan.jpeg", tmp_path / "b" / "scan.jpeg"])
    written: list[list[Path]] = []
    c.export_finished.connect(written.append)
    out = tmp_path / "out"
    out.mkdir()
    uids = c.export_all(out)
    assert len(uids) == 2
    names = sorted(p.name for p in written[0])
    cls = c.entry(uids[0]).result.frames[0].presented_class or "not-assessed"
    assert names == sorted([f"scan_{cls}_report.png", f"scan_{cls}_report_.png"])
    assert all(p.is_file() for p in written[0])


def test_the_window_is_told_with_typed_events(controller, engines) -> None:
    """One stream of typed events carries every change, the entry with it."""
    c = controller
    seen: list[object] = []
    c.events.connect(seen.append)
    c.set_engine(engines[0])
    uid = c.add_scan(_bscan(0))
    entry = c.entry(uid)
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "ModelChanged" and isinstance(seen[1], ScanAdded)
    assert seen[1].entry is entry  # told, not asked: the event carries the entry
    arrived = [e for e in seen if isinstance(e, ResultArrived)]
    assert len(arrived) == 1 and arrived[0].entry is entry
    # the result's ScanChanged comes just before ResultArrived
    i = seen.index(arrived[0])
    assert isinstance(seen[i - 1], ScanChanged) and seen[i - 1].entry.status is EntryStatus.DONE


def test_the_controller_runs_without_qt(tmp_path) -> None:
    """With injected runners the controller imports no PySide6 at all (a subprocess)."""
    import subprocess
    import sys
    import textwrap

    code = f"""
        import sys
        from pathlib import Path
        from octviewer.ui.controller import Controller
        from octviewer.viewer.jobs import Jobs
        c = Controller(model_jobs=Jobs(), io_jobs=Jobs())
        errors = []
        c.error.connect(lambda t, m, d: errors.append(t))
        (uid,) = c.open_paths([Path({str(KERMANY[0])!r})])
        assert c.entry(uid).scan is not None, errors
        assert c.entry(uid).status.name == "WAITING"  # no model yet
        assert "PySide6" not in sys.modules, "Qt was imported"
    """
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
