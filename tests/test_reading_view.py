"""The reading view (offscreen): aspect and scale bar, localizer split and clicks, disease map."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from report_text import mean_difference, page_region, placed_pictures
from ui_helpers import KERMANY, kermany_volume, shown_window, tiny_engine

pytestmark = pytest.mark.gui

from PySide6.QtCore import QPoint, Qt  # noqa: E402

from octviewer.core import disease_map as dm  # noqa: E402
from octviewer.core import presentation  # noqa: E402
from octviewer.core.scan import PixelSpacing  # noqa: E402
from octviewer.ui import file_commands  # noqa: E402
from octviewer.ui.image_view import scale_bar_um  # noqa: E402
from octviewer.ui.main_window import MainWindow  # noqa: E402
from octviewer.ui.settings import Settings  # noqa: E402

TIMEOUT = 60000


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return tiny_engine(tmp_path_factory)


@pytest.fixture
def window(qtbot, tmp_path):
    w = shown_window(qtbot, tmp_path, (1360, 860))
    yield w
    w.close()


def _open(qtbot, window, engine, scan) -> int:
    c = window.controller
    c.set_engine(engine)
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        uid = c.add_scan(scan)
    window.show_entry(uid)
    return uid


def _bscan_with_spacing():
    from octviewer.core.io import load

    scan = load(KERMANY[0])
    md = dataclasses.replace(scan.metadata, spacing=PixelSpacing(row=0.0039, col=0.0117))
    return dataclasses.replace(scan, metadata=md)


def test_bscans_open_on_the_pixel_grid_and_physical_aspect_is_one_key_away(
    qtbot, window, engine, tmp_path
) -> None:
    scan = _bscan_with_spacing()
    _open(qtbot, window, engine, scan)
    view = window.image_view
    rows, cols = scan.shape
    rect = view._item.sceneBoundingRect()
    assert not window.act["aspect"].isChecked()
    assert (rect.width(), rect.height()) == (cols, rows)  # the device's pixel grid
    assert window.act["aspect"].shortcut().toString() == "A"
    window.act["aspect"].trigger()
    rect = view._item.sceneBoundingRect()
    assert rect.height() == pytest.approx(rows * 0.0039 / 0.0117)  # physical proportions
    # remembered
    w2 = MainWindow(Settings.at(tmp_path / "settings.ini"))
    qtbot.addWidget(w2)
    assert w2.act["aspect"].isChecked()
    w2.close()
    window.act["aspect"].trigger()
    assert view._item.sceneBoundingRect().height() == rows


def test_scale_bar_in_both_modes_only_when_the_spacing_is_known(qtbot, window, engine) -> None:
    scan = _bscan_with_spacing()
    _open(qtbot, window, engine, scan)
    view = window.image_view
    (hu, hpx), (vu, vpx) = view.scale_bars()
    z = view.zoom_factor()
    assert hpx == pytest.approx(hu / 11.7 * z) and vpx == pytest.approx(vu / 3.9 * z)
    window.act["aspect"].trigger()  # physical: the axial bar is drawn with the stretched rows
    (hu2, hpx2), (vu2, vpx2) = view.scale_bars()
    z2 = view.zoom_factor()
    assert vpx2 == pytest.approx(vu2 / 3.9 * z2 * (3.9 / 11.7))
    assert hpx2 / hu2 == pytest.approx(vpx2 / vu2)  # one µm is as long both ways
    window.act["aspect"].trigger()
    # the same pixels without a spacing: no bar
    plain = dataclasses.replace(
        scan, metadata=dataclasses.replace(scan.metadata, spacing=None, source_paths=(Path("p"),))
    )
    _open(qtbot, window, engine, plain)
    assert view.scale_bars() is None
    assert scale_bar_um(11.7) == (1000, 1000 / 11.7)
    assert scale_bar_um(0.0) is None and scale_bar_um(float("nan")) is None


def test_disease_map_click_to_frame_and_current_line(qtbot, window, engine) -> None:
    scan = kermany_volume(9, with_localizer=True)
    uid = _open(qtbot, window, engine, scan)
    lv = window.localizer
    assert lv.isVisible() and window.act["map"].isChecked()
    m = lv.map
    res = window.controller.entry(uid).result
    assert m is not None and len(m.lines) == 9
    for line, fr, pos in zip(m.lines, res.frames, scan.localizer.positions, strict=True):
        assert line.start == pytest.approx(tuple(pos[:2]))
        assert line.color == presentation.class_rgb(fr.predicted_index, fr.class_names)
        assert line.strength == pytest.approx(fr.confidence)
    assert not window.screen.map_note.isVisible()
    # click next to line 6 (not on it): the nearest B-scan is shown and highlighted
    x0, y0, x1, _ = scan.localizer.positions[6]
    target, s = lv._target()
    click = QPoint(round(target.left() + (x0 + x1) / 2 * s), round(target.top() + (y0 + 3) * s))
    qtbot.mouseClick(lv, Qt.MouseButton.LeftButton, pos=click)
    assert window.current_frame == 6 and lv._current == 6
    before = lv.grab().toImage()
    window.act["map"].trigger()  # off: lines only, remembered
    assert not lv.map_visible and not window.settings.disease_map
    after = lv.grab().toImage()
    assert before != after
    # the current line keeps its class colour on the map, outlined (black inside white); off
    # the map it is the plain line colour, opaque, with the same outline
    cx = round(target.left() + (x0 + x1) / 2 * s)
    cy = round(target.top() + y0 * s)
    cls = presentation.class_rgb(res.frame(6).predicted_index, res.class_names)
    assert before.pixelColor(cx, cy).getRgb()[:3] == cls
    edge = [before.pixelColor(cx, cy + k).lightness() for k in range(1, 9)]
    assert min(edge) < 60 and max(edge) > 200, edge  # the black rim, then the white one
    assert after.pixelColor(cx, cy).getRgb()[:3] == (120, 200, 255)


def test_localizer_split_is_remembered(qtbot, window, engine, tmp_path) -> None:
    _open(qtbot, window, engine, kermany_volume(4, with_localizer=True))
    split = window.screen.view_split
    total = sum(split.sizes())
    split.moveSplitter(round(total * 0.55), 1)
    wanted = split.sizes()
    assert wanted[0] > total * 0.5
    window.close()
    w2 = MainWindow(Settings.at(tmp_path / "settings.ini"))
    qtbot.addWidget(w2)
    w2.resize(window.size())
    w2.show()
    _open(qtbot, w2, engine, kermany_volume(4, with_localizer=True))
    assert w2.screen.view_split.sizes()[0] > total * 0.45
    w2.close()


def test_volume_without_positions_keeps_the_strip_and_says_why(qtbot, window, engine) -> None:
    _open(qtbot, window, engine, kermany_volume(4))
    assert window.screen.volume_box.isVisible() and not window.localizer.isVisible()
    assert (
        window.screen.map_note.isVisible()
        and "without a localizer" in window.screen.map_note.text()
    )


def test_attention_along_lines_uses_the_computed_heatmaps(qtbot, window, engine) -> None:
    scan = kermany_volume(5, with_localizer=True)
    uid = _open(qtbot, window, engine, scan)
    qtbot.waitUntil(lambda: window.image_view.overlay_shown, timeout=TIMEOUT)
    window.act["map_attention"].trigger()
    m = window.localizer.map
    shown = window.current_frame
    entry = window.controller.entry(uid)
    cam = entry.cams[(shown, entry.result.frame(shown).predicted_index)]
    np.testing.assert_allclose(m.line(shown).attention, dm.attention_profile(cam))
    assert all(m.line(i).attention is None for i in range(5) if i != shown)


def test_window_overlay_is_the_core_blend_with_the_chosen_contours(qtbot, window, engine) -> None:
    from octviewer.core import overlay

    scan = _bscan_with_spacing()
    uid = _open(qtbot, window, engine, scan)
    qtbot.waitUntil(lambda: window.image_view.overlay_shown, timeout=TIMEOUT)
    fr = window.controller.entry(uid).result.frames[0]
    cam = window.controller.entry(uid).cams[(0, fr.predicted_index)]
    rp = window.result_panel
    frame = scan.frame_as_uint8(0)
    args = (rp.colormap.currentText(), rp.opacity.value() / 100.0)
    np.testing.assert_array_equal(window.image_view.rendered, overlay.blend(frame, cam, *args))
    window.contour_actions[(0.5, 0.8)].trigger()
    assert window.settings.overlay_contours == (0.5, 0.8)
    np.testing.assert_array_equal(
        window.image_view.rendered, overlay.blend(frame, cam, *args, contours=(0.5, 0.8))
    )


def test_window_map_colours_are_the_strip_colours() -> None:
    from PySide6.QtGui import QColor

    from octviewer.ui.style import class_color

    for names in (("CNV", "DME", "DRUSEN", "NORMAL"), ("NORMAL", "AMD"), tuple("ABCDEFGHI")):
        for k in range(len(names)):
            assert QColor(*presentation.class_rgb(k, names)) == class_color(k, names), (names, k)


def test_exported_report_draws_the_heatmap_as_the_window_shows_it(
    qtbot, window, engine, tmp_path, monkeypatch
):
    from PIL import Image

    from octviewer.core import overlay

    base = _bscan_with_spacing()
    wide = np.pad(base.frames, ((0, 0), (0, 0), (0, 768 - base.shape[1])))  # no upscaling
    scan = dataclasses.replace(base, frames=wide)
    uid = _open(qtbot, window, engine, scan)
    qtbot.waitUntil(lambda: window.image_view.overlay_shown, timeout=TIMEOUT)
    window.result_panel.opacity.setValue(80)
    window.contour_actions[(0.5,)].trigger()
    window.result_panel.colormap.setCurrentText("viridis")
    placed = placed_pictures(monkeypatch)
    with qtbot.waitSignal(window.controller.export_finished, timeout=TIMEOUT):
        assert file_commands.export_current(window, tmp_path / "r.png")
    entry = window.controller.entry(uid)
    cam = entry.cams[(0, entry.result.frames[0].predicted_index)]
    assert cam.full().max() > 0.5  # a real heatmap, so opacity, colours and contours show
    shown = window.image_view.rendered
    assert np.array_equal(shown, overlay.blend(scan.frames[0], cam, "viridis", 0.8, (0.5,)))
    # the window's rendering is the report's heatmap panel, unchanged, and the page shows it
    (_, b_box), (heatmap, h_box) = placed[:2]
    assert np.array_equal(np.asarray(heatmap), shown), "the report's heatmap differs"
    page = Image.open(tmp_path / "r.png").convert("RGB")
    assert mean_difference(page_region(page, h_box), heatmap) < 3
    assert mean_difference(page_region(page, b_box), heatmap) > 5  # the B-scan is not it


def test_not_assessed_frames_are_dashed_and_pending_frames_thin(qtbot) -> None:
    from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult
    from octviewer.ui.localizer_view import LocalizerView

    scan = kermany_volume(4, with_localizer=True)
    names = ("CNV", "DME", "DRUSEN", "NORMAL")
    p = np.array([0.7, 0.1, 0.1, 0.1], np.float32)
    frames = (
        FrameResult(0, names, p, np.log(p)),
        FrameResult(1, names, p, np.log(p), flags=frozenset({ResultFlag.NOT_OCT})),
        FrameResult(2, names, p[::-1].copy(), np.log(p[::-1])),
    )
    res = ScanResult(frames, ModelIdentity("m", "1", "0" * 64, "t"), "cpu")
    lv = LocalizerView()
    qtbot.addWidget(lv)
    lv.set_localizer(scan.localizer.image, scan.localizer.positions)
    lv.show_map(scan, res)
    solid, dashed, thin = lv._map_pen(0, 6.0), lv._map_pen(1, 6.0), lv._map_pen(3, 6.0)
    assert solid.style() == Qt.PenStyle.SolidLine and solid.widthF() == 6.0
    assert solid.color().alpha() == round(255 * (0.25 + 0.75 * 0.7))
    assert dashed.style() == Qt.PenStyle.DashLine
    assert thin.widthF() == 1.0 and lv.map.line(3).status == "pending"
    assert lv._map_pen(2, 6.0).color().getRgb()[:3] == presentation.NORMAL_RGB


def test_localizer_of_the_first_file_opened_is_drawn(qtbot, window, engine, tmp_path) -> None:
    """The first file is selected while it still loads; its localizer must appear once the
    scan arrives (it stayed black before)."""
    import shutil

    import io_factory as fac
    import pydicom

    fundus = fac.IO_DATA / "dicom" / "example-dcms__fundus.dcm"
    shutil.copy(fundus, tmp_path / "localizer.dcm")
    uid = str(pydicom.dcmread(fundus, stop_before_pixels=True).SOPInstanceUID)
    stack = fac.kermany_stack()
    ds = fac.opt_dataset(stack, localizer_uid=uid, positions=fac.localizer_positions(3))
    path = fac.write(ds, tmp_path / "vol.dcm")
    window.controller.set_engine(engine)
    with qtbot.waitSignal(window.controller.result_ready, timeout=TIMEOUT):
        window.open_paths([path])
    lv = window.localizer
    assert lv.isVisible() and lv._pixmap is not None and lv.has_positions
    assert lv.map is not None and len(lv.map.lines) == 3
