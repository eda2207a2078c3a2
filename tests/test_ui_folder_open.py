"""The window opens a folder by the core's folder rules: independent scans become one entry each."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
from PIL import Image

from octviewer.ui.controller import Controller

pytestmark = pytest.mark.gui
DATA = Path(__file__).parent / "data" / "io"


@pytest.fixture
def controller(qtbot):
    c = Controller()
    yield c
    c.shutdown()


def test_folder_of_vendor_files_becomes_one_entry_per_scan(qtbot, controller, tmp_path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("Willis_B_716_0.vol", "circular-valid.vol", "fda_minimized.fda"):
        shutil.copy(DATA / "vendor" / name, folder / name)
    asked = []
    controller.series_needed.connect(lambda uid, series: asked.append(series))
    controller.open_paths([folder])
    qtbot.waitUntil(
        lambda: (
            len(controller.entries()) == 3 and all(e.scan is not None for e in controller.entries())
        ),
        timeout=60_000,
    )
    formats = sorted(e.scan.metadata.format for e in controller.entries())
    assert formats == ["Heidelberg VOL", "Heidelberg VOL", "Topcon FDA"]
    assert not asked


def test_unclear_folder_asks(qtbot, controller, tmp_path) -> None:
    folder = tmp_path / "unclear"
    folder.mkdir()
    bscan = DATA / "kermany" / "NORMAL-2633503-1.jpeg"
    for k in range(2):
        shutil.copy(bscan, folder / f"oct_{k + 1}.jpeg")
    for name, side in (("slo.png", 300), ("fundus.png", 400)):
        Image.new("L", (side, side), 90).save(folder / name)
    asked = []
    controller.series_needed.connect(lambda uid, series: asked.append(series))
    controller.open_paths([folder])
    qtbot.waitUntil(lambda: bool(asked), timeout=60_000)
    assert "images" in asked[0] and len(controller.entries()) == 1
