"""One home for what every face shows (core/presentation.py): the window and the PNG report
draw each class in the same colour, and frame numbers read 1-based."""

from __future__ import annotations

import numpy as np
import pytest

from octviewer.core import presentation as pr
from octviewer.core.report import pdf_draw as pd
from octviewer.core.report.pdf import pdf_to_png

KERMANY = ("CNV", "DME", "DRUSEN", "NORMAL")
NAME_SETS = (KERMANY, ("NORMAL", "AMD"), ("normal", "CNV", "DME"), tuple("ABCDEFGH"))


def _report_bar_colours(names: tuple[str, ...]) -> list[tuple[int, int, int]]:
    """The colour of each class's probability bar on the report page (every bar full)."""
    pdf = pd.new_document((120, 10 + 6 * len(names)))
    pd.probability_bars(pdf, pd.Box(0, 0, 120, 0), names, np.ones(len(names)), 0)
    dpi = 144
    px = np.asarray(pdf_to_png(bytes(pdf.output()), dpi)[0])
    pitch, bar_h = pd.line_mm(9.0) * 1.25, pd.line_mm(9.0) * 0.8

    def at(x_mm: float, y_mm: float) -> tuple[int, int, int]:
        return tuple(int(v) for v in px[round(y_mm * dpi / 25.4), round(x_mm * dpi / 25.4)])

    return [at(60, i * pitch + 0.3 + bar_h / 2) for i in range(len(names))]


@pytest.mark.gui
def test_window_and_report_draw_each_class_in_the_same_colour(qtbot) -> None:
    from octviewer.ui.result_panel import ProbabilityBars

    for names in NAME_SETS:
        bars = ProbabilityBars()
        qtbot.addWidget(bars)
        bars.resize(400, 200)
        bars.set_probabilities(names, np.ones(len(names)))
        shot = bars.grab().toImage()
        window = [shot.pixelColor(250, 2 + i * 26 + 11).getRgb()[:3] for i in range(len(names))]
        report = _report_bar_colours(names)
        want = [pr.class_rgb(i, names) for i in range(len(names))]
        assert window == report == want, names


def test_palette_keeps_normal_green_and_the_classes_apart() -> None:
    assert pr.class_rgb(3, KERMANY) == pr.NORMAL_RGB == pr.class_rgb(0, ("normal", "AMD"))
    kermany = [pr.class_rgb(i, KERMANY) for i in range(4)]
    assert len(set(kermany)) == 4
    assert kermany[:3] == [(213, 94, 0), (0, 114, 178), (204, 121, 167)]  # vermilion, blue, purple
    assert pr.NORMAL_RGB not in pr.PALETTE and (150, 150, 150) not in pr.PALETTE  # map's grey
    assert pr.class_hex(1, KERMANY) == "#0072B2"


def test_frame_numbers_read_one_based() -> None:
    assert pr.frame_number(0) == 1 and pr.frame_index(1) == 0
    assert pr.frame_text(2, 21) == "frame 3 of 21" and pr.frame_text(0, word="Frame") == "Frame 1"
    assert pr.frame_numbers([0, 4]) == "1, 5" and pr.frame_file_part(2) == "frame003"
    assert pr.normal_index(("CNV", "Normal")) == 1 and pr.normal_index(("A", "B")) is None


def test_normal_is_found_by_one_rule_for_colour_and_most_suspicious_frame() -> None:
    from octviewer.core.results import FrameResult, ModelIdentity, ScanResult
    from octviewer.core.volume_rule import VolumeShortcut

    names = ("CNV", "Normal")  # a bundle that spells it in title case
    p = [np.array([0.2, 0.8], np.float32), np.array([0.7, 0.3], np.float32)]
    frames = tuple(FrameResult(i, names, q, np.log(q)) for i, q in enumerate(p))
    res = ScanResult(frames, ModelIdentity("m", "1", "0" * 64, "t"), "cpu")
    assert pr.class_rgb(1, names) == pr.NORMAL_RGB
    assert res.most_suspicious_frame() == 1  # the lowest probability of Normal
    assert VolumeShortcut(margin=0, confidence_margin=0, suspicious=1).frames_to_refine(
        frames, 0.0
    ) == [1]


@pytest.mark.gui
def test_window_and_report_write_disease_not_excluded_in_the_same_amber(qtbot) -> None:
    from PySide6.QtGui import QColor

    from octviewer.ui import result_panel

    window = QColor(result_panel.NOT_EXCLUDED_COLOR).getRgb()[:3]
    assert window == pr.NOT_EXCLUDED_RGB not in (*pr.PALETTE, pr.NORMAL_RGB)
