"""Helpers for the viewer tests (pytest-qt): a tiny real engine, real Kermany B-scans, volumes."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.ui.compat import guard_refcounts

# PySide6 6.12 on Python 3.11 loses a reference to True per signal: pin it (see compat.py) or a
# long test session aborts.
guard_refcounts()

DATA = Path(__file__).resolve().parent / "data"
KERMANY = sorted((DATA / "kermany").glob("*.jpeg"))


def kermany_volume(n_frames: int = 49, *, with_localizer: bool = False):
    """A volume of ``n_frames`` real Kermany B-scans (cycled, cropped to a common size), with
    an en-face localizer image and one horizontal B-scan line per frame when asked."""
    from octviewer.core.io import load
    from octviewer.core.scan import Localizer, Modality, PixelSpacing, Scan, ScanMetadata

    frames = [load(p).frames[0] for p in KERMANY]
    rows = min(f.shape[0] for f in frames)
    cols = min(f.shape[1] for f in frames)
    stack = np.stack([frames[i % len(frames)][:rows, :cols] for i in range(n_frames)])
    loc = None
    if with_localizer:
        side = 256
        yy, xx = np.mgrid[0:side, 0:side]
        image = (90 + 60 * np.exp(-((xx - 128) ** 2 + (yy - 128) ** 2) / 3000.0)).astype(np.uint8)
        ys = np.linspace(40, 216, n_frames)
        positions = np.stack([np.full(n_frames, 30.0), ys, np.full(n_frames, 226.0), ys], axis=1)
        loc = Localizer(image=image, positions=positions)
    md = ScanMetadata(
        source_paths=(Path("kermany-volume.tif"),),
        format="TIFF",
        modality=Modality.OCT_VOLUME,
        spacing=PixelSpacing(row=0.0039, col=0.0117, frame=0.12),
    )
    return Scan(frames=stack, metadata=md, localizer=loc)


class GatedEngine:
    """A real engine whose ``analyze`` stops after its first batch until ``release`` is set, so
    tests can cancel or supersede at a known point. Everything else goes to the real engine."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def analyze(
        self, scan: Any, request: Any = None, *, progress: Any = None, cancel: Any = None
    ) -> Any:
        from octviewer.core.inference import AnalysisRequest

        self.calls += 1

        def gate(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total)
            if not self.started.is_set():
                self.started.set()
                self.release.wait(30)

        request = dataclasses.replace(request or AnalysisRequest(), batch_size=4)
        return self._engine.analyze(scan, request, progress=gate, cancel=cancel)


def tiny_engine(tmp_path_factory: Any) -> Any:
    """A real engine on a tiny bundle written for the test module."""
    from helpers_models import make_tiny_bundle

    from octviewer.core.engine import Engine

    return Engine(
        make_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.safetensors"), device="cpu"
    )


def shown_window(qtbot: Any, tmp_path: Path, size: tuple[int, int] | None = None) -> Any:
    """A main window with its own settings file, registered with qtbot and shown."""
    from octviewer.ui.main_window import MainWindow
    from octviewer.ui.settings import Settings

    w = MainWindow(Settings.at(tmp_path / "settings.ini"))
    qtbot.addWidget(w)
    if size is not None:
        w.resize(*size)
    w.show()
    return w
