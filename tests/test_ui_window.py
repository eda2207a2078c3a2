"""The viewer end to end (offscreen): open, drop, analyse, overlay, classes, export, errors, cancel."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers_models import make_tiny_bundle
from ui_helpers import KERMANY, GatedEngine, kermany_volume, shown_window

pytestmark = pytest.mark.gui

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from octviewer.ui import file_commands, model_commands  # noqa: E402
from octviewer.ui.main_window import MainWindow  # noqa: E402
from octviewer.ui.settings import Settings  # noqa: E402
from octviewer.viewer.entry import EntryStatus  # noqa: E402
from octviewer.viewer.session import ModelState  # noqa: E402

TIMEOUT = 60000


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def engine(bundle):
    from octviewer.core.engine import Engine

    return Engine(bundle, device="cpu")


@pytest.fixture
def window(qtbot, tmp_path):
    w = shown_window(qtbot, tmp_path)
    yield w
    w.close()
    # no job threads left running once the window is closed
    assert w.controller.model_jobs._pool.activeThreadCount() == 0
    assert w.controller.io_jobs._pool.activeThreadCount() == 0


def _drop(window: MainWindow, paths: list[Path]) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(
        pos.toPoint(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, drop)
    return enter.isAccepted()


def test_starts_without_a_model_and_says_so(window, monkeypatch, tmp_path) -> None:
    import octviewer.resources as res

    monkeypatch.setattr(res, "default_model_path", lambda: tmp_path / "missing.safetensors")
    window.start([])
    assert window.controller.model_state is ModelState.NONE
    assert "No model loaded — File > Load model…" in window.status.model_label.text()
    assert window.banner.isVisible() and "Research use only" in window.banner.text()


def test_scan_opened_before_the_model_is_analysed_when_it_loads(qtbot, window, bundle) -> None:
    c = window.controller
    (uid,) = window.open_paths([KERMANY[0]])
    qtbot.waitUntil(lambda: c.entry(uid).scan is not None, timeout=TIMEOUT)
    assert c.entry(uid).status is EntryStatus.WAITING
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        model_commands.load_model(window, bundle)  # background load, then the waiting scan runs
    assert "tiny-test-model" in window.status.model_label.text()
    # the device and, when not float32, the arithmetic, as the report footer states them
    arithmetic = c.engine.compute_dtype
    where = "cpu" if arithmetic == "float32" else f"cpu, {arithmetic}"
    assert window.status.device_label.text() == f"Device: {where}"
    assert c.entry(uid).status is EntryStatus.DONE
    assert c.entry(uid).result.computed_on == where


def test_drop_files_shows_class_probabilities_and_heatmap(qtbot, window, engine) -> None:
    c = window.controller
    c.set_engine(engine)
    with qtbot.waitSignals([c.result_ready, c.result_ready], timeout=TIMEOUT):
        assert _drop(window, KERMANY[:2])
    assert window.scan_list.count() == 2
    entry = window.current_entry()
    fr = entry.result.frames[0]
    # the panel shows the model's answer
    assert window.result_panel.prediction.text() == fr.predicted_class
    assert window.result_panel.bars._probs == pytest.approx(fr.probabilities)
    assert f"{fr.confidence * 100:.1f} %" in window.result_panel.confidence.text()
    assert np.isclose(fr.probabilities.sum(), 1.0, atol=1e-4)
    # heatmap on: the rendered image is coloured; H toggles it off and back on
    assert window.image_view.overlay_shown
    rgb = window.image_view.rendered
    assert rgb.ndim == 3
    window.act["overlay"].trigger()
    assert not window.image_view.overlay_shown and window.image_view.rendered.ndim == 2
    assert not window.result_panel.overlay_box.isChecked()
    window.result_panel.overlay_box.setChecked(True)
    assert window.act["overlay"].isChecked() and window.image_view.overlay_shown
    # the scan list says what each scan is
    assert fr.predicted_class in window.scan_list.item(0).text()


def test_class_selector_asks_the_engine_for_that_class(qtbot, window, engine) -> None:
    c = window.controller
    c.set_engine(engine)
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        window.open_paths([KERMANY[1]])
    entry = window.current_entry()
    fr = entry.result.frames[0]
    other = (fr.predicted_index + 1) % len(fr.class_names)
    combo = window.result_panel.cam_class
    with qtbot.waitSignal(c.cam_ready, timeout=TIMEOUT) as blocker:
        combo.setCurrentIndex(combo.findData(other))
    assert blocker.args == [entry.uid, 0, other]
    expected = engine.cam(entry.scan, 0, other)
    assert np.allclose(entry.cams[(0, other)].full(), expected, atol=1e-5)
    assert window.image_view._cam is entry.cams[(0, other)]


def test_bad_file_gives_an_error_dialog_and_the_next_file_is_analysed(
    qtbot, window, engine, tmp_path
) -> None:
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00garbage" * 20)
    c = window.controller
    c.set_engine(engine)
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT) as blocker:
        uids = window.open_paths([bad, KERMANY[2]])
    assert blocker.args == [uids[1]]
    qtbot.waitUntil(lambda: c.entry(uids[0]).status is EntryStatus.FAILED, timeout=TIMEOUT)
    assert window.errors and window.errors[0][0] == "Could not open broken.dcm"
    boxes = [w for w in window.findChildren(QMessageBox) if w.isVisible()]
    assert boxes and c.entry(uids[0]).error in boxes[0].informativeText()
    assert c.entry(uids[1]).status is EntryStatus.DONE
    assert window.isVisible()


def test_export_writes_png_with_the_shown_result(qtbot, window, engine, tmp_path) -> None:
    from PIL import Image

    c = window.controller
    c.set_engine(engine)
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        window.open_paths([KERMANY[3]])
    entry = window.current_entry()
    out = tmp_path / "report.png"
    with qtbot.waitSignal(c.export_finished, timeout=TIMEOUT) as blocker:
        assert file_commands.export_current(window, out)
    assert blocker.args[0] == [out]
    img = Image.open(out)
    chunks = img.text
    summary = json.loads(chunks["octviewer:result"])
    text = json.dumps(summary)
    assert entry.result.frames[0].predicted_class in text
    assert entry.result.model.sha256 in chunks["octviewer:model_sha256"]
    assert "Research use only" in chunks["octviewer:disclaimer"]
    assert not window.act["identity"].isChecked()
    from octviewer.viewer.work import default_report_name

    name = default_report_name(entry, 0)
    assert name.startswith(KERMANY[3].stem) and name.endswith("_report.png")


def test_export_all_writes_one_report_per_scan(qtbot, window, engine, tmp_path) -> None:
    c = window.controller
    c.set_engine(engine)
    with qtbot.waitSignals([c.result_ready] * 2, timeout=TIMEOUT):
        window.open_paths(KERMANY[:2])
    window.act["page_letter"].trigger()  # File > Report page size > US Letter
    with qtbot.waitSignal(c.export_finished, timeout=TIMEOUT) as blocker:
        assert file_commands.export_all(window, tmp_path)
    written = blocker.args[0]
    assert len(written) == 2 and all(Path(p).is_file() for p in written)
    from PIL import Image

    for p in written:  # the reports are on the page chosen in the menu
        with Image.open(p) as img:
            assert img.size == (1700, 2200) and img.text["octviewer:page"] == "Letter"


def test_volume_strip_localizer_and_most_suspicious_frame(qtbot, window, engine) -> None:
    c = window.controller
    c.set_engine(engine)
    scan = kermany_volume(12, with_localizer=True)
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        uid = c.add_scan(scan)
    assert window.screen.volume_box.isVisible() and window.localizer.isVisible()
    res = c.entry(uid).result
    assert len(res.frames) == 12 and all(f.cam is None for f in res.frames)
    assert window.strip._probs.shape == (12, 4)
    # the shown frame's heatmap is computed on request
    qtbot.waitUntil(lambda: window.image_view.overlay_shown, timeout=TIMEOUT)
    # click on the strip -> frame
    r = window.strip._plot_rect()
    window.strip.frame_clicked.emit(window.strip.frame_at(r.right()))
    assert window.current_frame == 11 and window.screen.slider.value() == 11
    # keyboard stepping and the localizer pick
    window.act["prev"].trigger()
    assert window.current_frame == 10
    from PySide6.QtCore import QPoint

    x0, y0, x1, _ = scan.localizer.positions[3]
    target, s = window.localizer._target()
    click = QPoint(round(target.left() + (x0 + x1) / 2 * s), round(target.top() + y0 * s))
    qtbot.mouseClick(window.localizer, Qt.MouseButton.LeftButton, pos=click)
    assert window.current_frame == 3 and window.localizer._current == 3
    window.go_most_suspicious()
    assert window.current_frame == res.most_suspicious_frame()
    assert str(window.current_frame + 1) in window.result_panel.confidence.text()


def test_cancel_during_a_volume(qtbot, window, engine) -> None:
    c = window.controller
    gated = GatedEngine(engine)
    c.set_engine(gated)
    with qtbot.waitSignal(c.analysis_failed, timeout=TIMEOUT):
        uid = c.add_scan(kermany_volume(49))
        assert gated.started.wait(30)  # first batch of 4 done, the worker waits at the gate
        assert window.status.cancel_btn.isVisible()
        window.status.cancel_btn.click()
        gated.release.set()
    entry = c.entry(uid)
    assert entry.status is EntryStatus.CANCELLED and entry.result is None
    assert not c.is_analysing()
    qtbot.waitUntil(lambda: not window.status.cancel_btn.isVisible(), timeout=TIMEOUT)
    # analysing again works
    gated.started.clear()
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        window.reanalyse_current()
    assert len(c.entry(uid).result.frames) == 49


def test_closing_a_scan_while_it_is_analysed_drops_its_result(qtbot, window, engine) -> None:
    c = window.controller
    gated = GatedEngine(engine)
    c.set_engine(gated)
    uid = c.add_scan(kermany_volume(8))
    assert gated.started.wait(30)
    c.remove(uid)
    gated.release.set()
    qtbot.waitUntil(lambda: not c.model_jobs.is_busy(), timeout=TIMEOUT)
    assert c.entry(uid) is None and window.scan_list.count() == 0
    assert c.model_jobs.dropped  # the finished analysis of the closed scan was not delivered


def test_unexpected_exception_is_logged_and_shown(window, caplog) -> None:
    import sys

    from octviewer.ui.logging_setup import install_excepthook

    old = sys.excepthook
    try:
        install_excepthook(lambda t, m, d: window.show_error(t, m, d))
        try:
            raise ValueError("boom")
        except ValueError:
            sys.excepthook(*sys.exc_info())
    finally:
        sys.excepthook = old
    assert window.errors[-1][0] == "Unexpected error" and "boom" in window.errors[-1][1]
    assert "Traceback" in caplog.text


def test_settings_are_remembered(qtbot, tmp_path) -> None:
    ini = tmp_path / "s.ini"
    w = MainWindow(Settings.at(ini))
    qtbot.addWidget(w)
    w.result_panel.opacity.setValue(70)
    w.result_panel.colormap.setCurrentText("viridis")
    w.act["overlay"].setChecked(False)
    w.settings.add_recent(KERMANY[0])
    w.close()
    w2 = MainWindow(Settings.at(ini))
    qtbot.addWidget(w2)
    assert w2.result_panel.opacity.value() == 70
    assert w2.result_panel.colormap.currentText() == "viridis"
    assert not w2.act["overlay"].isChecked()
    assert w2.settings.recent_files[0] == str(KERMANY[0])
    assert not w2.act["identity"].isChecked()
    w2.close()


def test_no_threads_leak(qtbot, tmp_path, engine) -> None:
    before = threading.active_count()
    w = MainWindow(Settings.at(tmp_path / "s.ini"))
    qtbot.addWidget(w)
    w.controller.set_engine(engine)
    with qtbot.waitSignal(w.controller.result_ready, timeout=TIMEOUT):
        w.open_paths([KERMANY[0]])
    w.close()
    assert not w.controller.model_jobs.is_busy() and not w.controller.io_jobs.is_busy()
    # a finished worker may still be unwinding: a leak is a thread that never ends
    try:
        qtbot.waitUntil(lambda: threading.active_count() <= before, timeout=10_000)
    except AssertionError:
        pytest.fail(f"threads left running: {[t.name for t in threading.enumerate()]}")


def test_one_result_redraws_the_window_once(qtbot, tmp_path, engine, monkeypatch) -> None:
    from octviewer.core.io import load
    from octviewer.ui.controller import Controller

    c = Controller(sync=True)  # no waits: every job is done when its call returns
    w = MainWindow(Settings.at(tmp_path / "s.ini"), controller=c)
    qtbot.addWidget(w)
    c.set_engine(engine)
    drawn: list[EntryStatus | None] = []
    real = w.redraw

    def counting(new_scan: bool = False) -> None:
        entry = w.current_entry()
        drawn.append(None if entry is None else entry.status)
        real(new_scan)

    monkeypatch.setattr(w, "redraw", counting)
    ready: list[int] = []
    c.result_ready.connect(ready.append)  # still emitted, for tests and scripts
    uid = c.add_scan(load(KERMANY[0]))
    assert ready == [uid]
    assert drawn.count(EntryStatus.DONE) == 1  # was 2: result_ready and entry_updated
    assert w.result_panel.prediction.text() == c.entry(uid).result.frames[0].predicted_class
    assert w.image_view.overlay_shown
    w.close()


def test_int8_choice_reloads_the_model_and_results_say_int8(qtbot, window, bundle) -> None:
    c = window.controller
    with qtbot.waitSignal(
        c.model_changed, timeout=TIMEOUT, check_params_cb=lambda s, t: s == "ready"
    ):
        model_commands.load_model(window, bundle)
    assert not window.act["int8"].isChecked() and not c.engine.quantized
    with qtbot.waitSignal(
        c.model_changed, timeout=TIMEOUT, check_params_cb=lambda s, t: s == "ready"
    ):
        window.act["int8"].trigger()
    assert window.settings.int8 and c.engine.quantized
    assert window.status.device_label.text() == "Device: cpu, int8"
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        (uid,) = window.open_paths([KERMANY[0]])
    assert c.entry(uid).result.arithmetic == "int8"
    with qtbot.waitSignal(
        c.model_changed, timeout=TIMEOUT, check_params_cb=lambda s, t: s == "ready"
    ):
        window.act["int8"].trigger()
    assert not window.settings.int8 and not c.engine.quantized
