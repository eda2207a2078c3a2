"""The window on frames that are not assessed (offscreen, pytest-qt): no class word in the
headline or the scan list, the output only behind "Show model output anyway", the strip marks
such frames and "most suspicious frame" skips them.

The fundus sample runs through the real engine (tiny bundle), which flags it NOT_OCT; volume
frames are flagged OUT_OF_DISTRIBUTION by a wrapper around the real engine.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import KERMANY, kermany_volume, shown_window, tiny_engine

pytestmark = pytest.mark.gui

from PIL import Image  # noqa: E402

from octviewer.core.inference import AnalysisRequest  # noqa: E402
from octviewer.core.results import ResultFlag  # noqa: E402
from octviewer.resources import samples_dir  # noqa: E402
from octviewer.ui import file_commands  # noqa: E402
from octviewer.ui.result_panel import UNRELIABLE  # noqa: E402
from octviewer.viewer.presenters import NONE_ASSESSABLE  # noqa: E402

TIMEOUT = 60000
CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
FUNDUS = samples_dir() / "heidelberg-ir-fundus-not-oct.dcm"


def _has_class_word(s: str) -> bool:
    return any(c in s.upper() for c in CLASSES)


class FlaggingEngine:
    """The real engine, with ``flag`` (default ``OUT_OF_DISTRIBUTION``) added to the frames in
    ``flagged`` (all frames when ``flagged`` is None)."""

    def __init__(
        self,
        engine: Any,
        flagged: set[int] | None,
        flag: ResultFlag = ResultFlag.OUT_OF_DISTRIBUTION,
    ) -> None:
        self._engine, self.flagged, self.flag = engine, flagged, flag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _score(self) -> dict[str, float]:
        if self.flag is ResultFlag.OUT_OF_DISTRIBUTION:
            return {"ood_score": 9.5, "ood_threshold": 5.0}
        return {}

    def analyze(self, scan: Any, *args: Any, **kwargs: Any) -> Any:
        res = self._engine.analyze(scan, *args, **kwargs)
        frames = tuple(
            dataclasses.replace(f, flags=f.flags | {self.flag}, **self._score())
            if self.flagged is None or f.frame_index in self.flagged
            else f
            for f in res.frames
        )
        return dataclasses.replace(res, frames=frames)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return tiny_engine(tmp_path_factory)


@pytest.fixture
def window(qtbot, tmp_path):
    w = shown_window(qtbot, tmp_path)
    yield w
    w.close()


def _open(qtbot, window, path: Path) -> Any:
    c = window.controller
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        (uid,) = window.open_paths([path])
    window.show_entry(uid)
    return c.entry(uid)


def test_fundus_is_not_assessed_and_output_is_shown_only_on_request(
    qtbot, window, engine, tmp_path
) -> None:
    window.controller.set_engine(engine)
    entry = _open(qtbot, window, FUNDUS)
    fr = entry.result.frames[0]
    assert ResultFlag.NOT_OCT in fr.flags and not fr.assessable
    rp = window.result_panel
    # the headline and the reason, no class word anywhere in the result text or the list
    assert rp.prediction.text() == "Not assessed"
    assert rp.confidence.text().startswith("This image is not an OCT B-scan")
    for text in (rp.prediction.text(), rp.confidence.text(), rp.warning.text()):
        assert not _has_class_word(text), text
    item = window.scan_list.item(window.scan_list.currentRow()).text()
    assert "not assessed" in item and not _has_class_word(item)
    assert rp.cam_class.itemText(0) == "Predicted"
    # probabilities and heatmap hidden
    assert rp.show_anyway.isVisible() and not rp.show_anyway.isChecked()
    assert not rp.bars.isVisible() and rp.bars._probs is None
    assert not rp.unreliable.isVisible()
    assert not window.image_view.overlay_shown
    # export without the tick: no probabilities in the report either
    out = tmp_path / "hidden.png"
    with qtbot.waitSignal(window.controller.export_finished, timeout=TIMEOUT):
        assert file_commands.export_current(window, out)
    with Image.open(out) as im:
        rec = json.loads(im.text["octviewer:result"])
    assert rec["class"] is None and rec["probabilities"] is None
    # "Show model output anyway": the probabilities, marked unreliable, and the heatmap
    rp.show_anyway.setChecked(True)
    assert rp.bars.isVisible() and rp.bars._probs == pytest.approx(fr.probabilities)
    assert rp.unreliable.isVisible() and rp.unreliable.text() == UNRELIABLE
    assert rp.prediction.text() == "Not assessed"  # still no class as the headline
    qtbot.waitUntil(lambda: window.image_view.overlay_shown, timeout=TIMEOUT)
    out = tmp_path / "shown.png"
    with qtbot.waitSignal(window.controller.export_finished, timeout=TIMEOUT):
        assert file_commands.export_current(window, out)
    with Image.open(out) as im:
        rec = json.loads(im.text["octviewer:result"])
    assert rec["class"] is None and rec["unreliable_output_shown"] is True
    assert set(rec["probabilities"]) == set(CLASSES)
    # another scan, then back: the tick is cleared and the output hidden again
    bscan = _open(qtbot, window, KERMANY[0])
    assert bscan.result.frames[0].assessable
    assert not rp.show_anyway.isVisible() and rp.bars.isVisible()
    assert rp.prediction.text() == bscan.result.frames[0].predicted_class
    window.show_entry(entry.uid)
    assert not rp.show_anyway.isChecked() and not rp.bars.isVisible()
    assert not window.image_view.overlay_shown


def test_volume_strip_marks_and_most_suspicious_skips_flagged_frames(qtbot, window, engine) -> None:
    c = window.controller
    scan = kermany_volume(8)
    plain = engine.analyze(scan, AnalysisRequest(cam=False))
    worst = plain.most_suspicious_frame()
    flagged = {worst, (worst + 3) % 8}
    c.set_engine(FlaggingEngine(engine, flagged))
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        uid = c.add_scan(scan)
    window.show_entry(uid)
    res = c.entry(uid).result
    assert sorted(window.strip.not_assessed_frames()) == sorted(flagged)
    window.go_most_suspicious()
    assert window.current_frame == res.most_suspicious_frame()
    assert window.current_frame not in flagged and res.frame(window.current_frame).assessable
    assert "not assessed" in window.scan_list.item(window.scan_list.currentRow()).text()
    # stepping onto a flagged frame: not assessed, and the tick resets between frames
    rp = window.result_panel
    window.set_frame(worst)
    assert rp.prediction.text() == "Not assessed" and not rp.bars.isVisible()
    assert "trusted. Out-of-distribution score 9.5, threshold 5." in rp.confidence.text()
    rp.show_anyway.setChecked(True)
    assert rp.bars.isVisible()
    other = next(iter(flagged - {worst}))
    window.set_frame(other)
    assert not rp.show_anyway.isChecked() and not rp.bars.isVisible()
    assert not _has_class_word(rp.prediction.text())
    assert "most suspicious: frame" in rp.confidence.text()


def test_volume_with_no_assessable_frame_says_so(qtbot, window, engine) -> None:
    c = window.controller
    c.set_engine(FlaggingEngine(engine, None))
    with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
        uid = c.add_scan(kermany_volume(5))
    window.show_entry(uid)
    window.set_frame(2)
    window.go_most_suspicious()
    assert window.current_frame == 2  # nowhere to go
    assert window.statusBar().currentMessage() == NONE_ASSESSABLE
    assert NONE_ASSESSABLE in window.result_panel.confidence.text()
    item = window.scan_list.item(window.scan_list.currentRow()).text()
    assert "not assessed" in item and not _has_class_word(item.split("\n", 1)[1])
    assert len(window.strip.not_assessed_frames()) == 5


@pytest.mark.parametrize("flag", [ResultFlag.OTHER_DEVICE, ResultFlag.OOD_CHECK_UNAVAILABLE])
def test_cautions_keep_the_class_and_are_visible(qtbot, window, engine, flag) -> None:
    window.controller.set_engine(FlaggingEngine(engine, None, flag))
    entry = _open(qtbot, window, KERMANY[1])
    fr = entry.result.frames[0]
    rp = window.result_panel
    assert fr.assessable and rp.prediction.text() == fr.predicted_class
    assert rp.warning.isVisible() and flag.warning in rp.warning.text()
    assert rp.bars.isVisible() and not rp.show_anyway.isVisible()
    assert fr.predicted_class in window.scan_list.item(window.scan_list.currentRow()).text()
