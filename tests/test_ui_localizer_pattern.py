"""The localizer draws each B-scan as the device shows it: a line, or the circle of a circle scan."""

from __future__ import annotations

import io_factory as fac
import numpy as np
import pytest

pytest.importorskip("PySide6")

from octviewer.core.io import load
from octviewer.ui.localizer_view import CURRENT, LocalizerView

pytestmark = pytest.mark.gui


def _is_current(image, x: float, y: float) -> bool:
    """A pixel near (x, y) has the colour of the current B-scan's line (opaque, outlined)."""
    want = np.array(CURRENT.getRgb()[:3])
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            c = image.pixelColor(round(x) + dx, round(y) + dy)
            if np.abs(np.array(c.getRgb()[:3]) - want).max() < 30:
                return True
    return False


def _grab(qtbot, path):
    scan = load(path)
    view = LocalizerView()
    qtbot.addWidget(view)
    view.resize(384, 384)  # the 768 px SLO at scale 0.5
    loc = scan.localizer
    view.set_localizer(loc.image, loc.positions, loc.pattern)
    view.set_current(0)
    return view, loc, view.grab().toImage()


def test_circle_scan_is_drawn_as_a_circle_around_its_centre(qtbot) -> None:
    view, loc, image = _grab(qtbot, fac.IO_DATA / "vendor" / "circular-valid.vol")
    xs, ys, cx, cy = (float(v) * 0.5 for v in loc.positions[0])
    r = float(np.hypot(xs - cx, ys - cy))
    for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False):
        assert _is_current(image, cx + r * np.cos(angle), cy + r * np.sin(angle)), angle
    assert not _is_current(image, cx, cy)  # no line to the centre, as the old drawing made
    assert not _is_current(image, (xs + cx) / 2, ys)
    # clicking on the circle picks that B-scan
    assert view.frame_at(cx, cy - r) == 0


def test_line_scan_is_drawn_as_its_line(qtbot) -> None:
    _view, loc, image = _grab(qtbot, fac.IO_DATA / "vendor" / "Willis_B_716_0.vol")
    y = float(loc.positions[0][1]) * 0.5
    for x in (20, 150, 300):
        assert _is_current(image, x, y)
    assert not _is_current(image, 150, y + 60)


def test_window_shows_the_circle_of_a_vol_opened_from_disk(qtbot, tmp_path) -> None:
    from octviewer.ui.main_window import MainWindow
    from octviewer.ui.settings import Settings

    w = MainWindow(Settings.at(tmp_path / "settings.ini"))
    qtbot.addWidget(w)
    w.show()
    w.controller.open_paths([fac.IO_DATA / "vendor" / "circular-valid.vol"])
    # the entry is shown while it opens; its localizer must appear once the scan has loaded
    qtbot.waitUntil(lambda: w.localizer._pixmap is not None, timeout=60_000)
    assert w.localizer.isVisible() and w.localizer._pattern == "circle"
    w.close()
