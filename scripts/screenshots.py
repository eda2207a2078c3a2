"""Render the viewer's main states to docs/screenshots/*.png (offscreen, QWidget.grab()).

States: ``empty`` (first launch), ``bscan`` (a real B-scan with its heatmap), ``volume`` (the
sample OCT volume with the per-frame strip), ``error`` (the dialog for a damaged file), and
when ``../shared/data`` is present ``vol`` (a Spectralis .vol line scan with its SLO) and
``topcon`` (the Topcon OPT B-scan); ``map`` (a DICOM OPT volume built from the sample volume's
B-scans with the sample Heidelberg IR image as its localizer, showing the disease map);
``contours`` (the B-scan with contour lines at 50 and 80 % attention) and ``map-attention``
(the disease map with each frame's attention along its line, after visiting every frame).

    python scripts/screenshots.py [--model BUNDLE] [--out docs/screenshots] [--suffix=-after]
        [--only bscan,map]

``--suffix`` is appended to every file name (``bscan-before.png``); run it once with
``PYTHONPATH`` pointing at an older checkout to make the "before" pictures.

Without ``--model`` the bundled default model is used when installed, else a tiny randomly
initialised test model (its heatmaps are meaningless, and often empty — say so if you publish).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("screenshots")


def _wait(app, cond, timeout: float = 120.0, settle: int = 5, pause: float = 0.0) -> None:
    """Run the event loop until ``cond()``, then ``settle`` more rounds (``pause`` s apart)."""
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the viewer did not reach the expected state")
    for _ in range(settle):
        app.processEvents()
        if pause:
            time.sleep(pause)


def viewer(size: str, settings_dir: Path):
    """The QApplication and a shown main window of ``size`` ("WxH") with its own settings."""
    from PySide6.QtWidgets import QApplication

    from octviewer.ui.main_window import MainWindow
    from octviewer.ui.settings import Settings

    # results, the session list and the unclean-exit marker of this run stay in its own folder:
    # never the user's cache (nor a restore offer left by another run in the pictures)
    os.environ["OCTVIEWER_CACHE_DIR"] = str(settings_dir / "cache")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    w, h = (int(v) for v in size.lower().split("x"))
    win = MainWindow(Settings.at(settings_dir / "settings.ini"))
    win.resize(w, h)
    win.show()
    return app, win


def _model(arg: str | None, tmp: Path) -> Path:
    from octviewer.resources import default_model_path

    if arg:
        return Path(arg)
    if default_model_path().is_file():
        return default_model_path()
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers_models import make_tiny_bundle

    log.warning("no default model installed: using a tiny random test model (heatmaps meaningless)")
    return make_tiny_bundle(tmp / "tiny.safetensors")


class Shots:
    """The shown viewer, the states asked for, and where their pictures go."""

    def __init__(self, app, win, out: Path, suffix: str, only: set[str]) -> None:
        self.app, self.win, self.out, self.suffix, self.only = app, win, out, suffix, only

    def wanted(self, name: str) -> bool:
        return not self.only or name in self.only

    def shot(self, name: str) -> None:
        path = self.out / f"{name}{self.suffix}.png"
        self.win.grab().save(str(path))
        log.info("wrote %s", path)

    def show(self, path: Path, name: str, volume: bool = False) -> int:
        """Open ``path``, wait for its result (and heatmap), picture it as ``name``."""
        app, win, c = self.app, self.win, self.win.controller
        (uid,) = win.open_paths([path])
        _wait(app, lambda: c.entry(uid).scan is not None)
        win.show_entry(uid)
        _wait(app, lambda: c.entry(uid).result is not None)
        if volume:
            win.go_most_suspicious()
        fr = c.entry(uid).result.frame(win.current_frame)
        if getattr(fr, "assessable", True):  # a frame not assessed shows no heatmap
            _wait(app, lambda: win.image_view.overlay_shown)
        self.shot(name)
        return uid


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", help="model bundle to use")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--size", default="1440x900", help="window size WxH")
    ap.add_argument("--suffix", default="", help="appended to each file name, e.g. -before")
    ap.add_argument("--only", default="", help="comma-separated states (default: all)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from octviewer.ui import model_commands

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        app, win = viewer(args.size, tmp)
        _wait(app, lambda: True)
        shots = Shots(app, win, out, args.suffix, {x for x in args.only.split(",") if x})
        c = win.controller
        model_commands.load_model(win, _model(args.model, tmp))
        _wait(app, lambda: c.engine is not None)
        _scan_states(shots, tmp)
        if shots.wanted("error"):
            _error_state(shots, tmp)
        win.close()
    return 0


def _scan_states(shots: Shots, tmp: Path) -> None:
    """Every state but the error dialog: the empty window, then the scans."""
    from octviewer.resources import samples_dir

    app, win, wanted, show = shots.app, shots.win, shots.wanted, shots.show
    if wanted("empty"):
        shots.shot("empty")  # first launch as a user sees it a moment later: the model is loaded
    samples = samples_dir()
    bscans = sorted(samples.glob("*.jpeg")) or sorted(samples.glob("*.png"))
    if wanted("bscan") or wanted("contours"):
        buid = show(bscans[0], "bscan")
        if wanted("contours") and hasattr(win, "contour_actions"):
            win.contour_actions[(0.5, 0.8)].trigger()
            _wait(app, lambda: win.image_view.overlay_shown)
            shots.shot("contours")
            win.contour_actions[()].trigger()
            win.show_entry(buid)
    vols = [p for p in samples.glob("*.dcm") if "volume" in p.name]
    if vols and wanted("volume"):
        show(vols[0], "volume", volume=True)
    shared = ROOT.parent / "shared" / "data"
    if not shared.is_dir():
        shared = Path("/work/shared/data")
    for name, rel in (
        ("vol", "vendor/Willis_B_716_0.vol"),
        ("topcon", "dicom/topcon_bscan_opt.dcm"),
    ):
        if (shared / rel).is_file() and wanted(name):
            show(shared / rel, name)
    if vols and (wanted("map") or wanted("attention")):
        show(_map_volume(vols[0], samples, tmp), "map", volume=True)
        if wanted("attention") and "map_attention" in getattr(win, "act", {}):
            _map_attention(shots)


def _map_attention(shots: Shots) -> None:
    """The disease map with the attention of every frame whose heatmap is computed: visit each
    frame, then go back to the most suspicious one."""
    app, win = shots.app, shots.win
    win.act["map_attention"].setChecked(True)
    entry = win.controller.entry(win.view.uid)
    for f in range(entry.scan.n_frames):
        win.set_frame(f)
        if getattr(entry.result.frame(f), "assessable", True):
            _wait(app, lambda: win.image_view.overlay_shown)
    win.go_most_suspicious()
    _wait(app, lambda: True)
    shots.shot("map-attention")
    win.act["map_attention"].setChecked(False)


def _error_state(shots: Shots, tmp: Path) -> None:
    """The dialog for a damaged file, over the dimmed window."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QPainter
    from PySide6.QtWidgets import QMessageBox

    app, win, out, suffix = shots.app, shots.win, shots.out, shots.suffix
    bad = tmp / "damaged-scan.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00" * 16)
    n_errors = len(win.errors)
    win.open_paths([bad])
    _wait(app, lambda: len(win.errors) > n_errors)
    box = [b for b in win.findChildren(QMessageBox) if b.isVisible()][-1]
    _wait(app, lambda: True)
    canvas = win.grab()
    dlg = box.grab()
    p = QPainter(canvas)
    p.fillRect(canvas.rect(), QColor_dim())
    p.drawPixmap(
        QPoint((canvas.width() - dlg.width()) // 2, (canvas.height() - dlg.height()) // 3), dlg
    )
    p.end()
    canvas.save(str(out / f"error{suffix}.png"))
    log.info("wrote %s", out / f"error{suffix}.png")


def _map_volume(sample_volume: Path, samples: Path, tmp: Path) -> Path:
    """A DICOM OPT volume (the sample volume's B-scans, cycled to 21 frames) that references
    the sample Heidelberg IR image as its localizer, with evenly spaced horizontal lines."""
    import shutil

    sys.path.insert(0, str(ROOT / "tests"))
    import io_factory as fac
    import pydicom

    from octviewer.core.io import load

    frames = load(sample_volume).frames
    stack = np.stack([frames[i % len(frames)] for i in range(21)]).astype(np.uint8)
    folder = tmp / "map-volume"
    folder.mkdir()
    ir = samples / "heidelberg-ir-fundus-not-oct.dcm"
    shutil.copy(ir, folder / "localizer.dcm")
    uid = str(pydicom.dcmread(ir, stop_before_pixels=True).SOPInstanceUID)
    ds = fac.opt_dataset(stack, localizer_uid=uid, positions=fac.localizer_positions(len(stack)))
    return fac.write(ds, folder / "opt-volume-with-localizer.dcm")


def QColor_dim():
    from PySide6.QtGui import QColor

    return QColor(0, 0, 0, 90)


if __name__ == "__main__":
    sys.exit(main())
