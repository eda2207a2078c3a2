"""The scan list wraps its entries to its width: no clipped text, no horizontal scrollbar."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("PySide6")

from octviewer.ui.scan_list import ScanList
from octviewer.ui.style import STYLE_SHEET
from octviewer.viewer.entry import EntryStatus

pytestmark = pytest.mark.gui
NAMES = (
    "CNV-1016042-1.jpeg",
    "a-very-long-file-name-without-spaces-from-a-device-export_2024-03-05_OD.dcm",
    "opt-volume-with-localizer.dcm",
)


def _entry(uid: int, name: str) -> SimpleNamespace:
    return SimpleNamespace(
        uid=uid,
        name=name,
        status=EntryStatus.ANALYSING,
        progress=(3, 21),
        result=None,
        path=Path("/scans") / name,
        error="",
    )


def test_long_entries_wrap_inside_the_list_with_the_whole_name_in_the_tooltip(qtbot) -> None:
    lst = ScanList()
    lst.setStyleSheet(STYLE_SHEET)  # its item padding made items wider than the list before
    qtbot.addWidget(lst)
    for uid, name in enumerate(NAMES):
        lst.render(_entry(uid, name))
    for width in (230, 320, 205):
        lst.resize(width, 400)
        lst.show()
        qtbot.waitUntil(lambda w=width: lst.width() == w)
        lst.doItemsLayout()
        vp = lst.viewport().width()
        for i in range(lst.count()):
            assert lst.visualItemRect(lst.item(i)).width() <= vp, (width, i)
        bar = lst.horizontalScrollBar()
        assert not bar.isVisible() and bar.maximum() == 0, width
    long = lst.item(1)
    assert lst.visualItemRect(long).height() > lst.visualItemRect(lst.item(0)).height()  # wrapped
    assert NAMES[1] in long.toolTip() and "Analysing… 3/21" in long.toolTip()
    assert str(Path("/scans") / NAMES[1]) in long.toolTip()
