"""Render the viewer and reports on scans the examination withholds (offscreen).

Writes into ``--out``:

- ``examination-circle.png``: the real Spectralis peripapillary circle scan (``.vol``, MIT, in
  ``resources/selftest``): not assessed for its protocol; the Scan panel shows the protocol and
  the device's quality index;
- ``report-examination-circle.png``: its PNG report;
- ``examination-low-quality.png``: a sample B-scan with a third of its A-scans lost to a
  generated blink: not assessed for image quality;
- ``examination-volume.png``: a generated 6-frame volume, two frames of which are blinked: the
  volume is assessed, the caption counts the frames below quality.

    python scripts/screenshots_examination.py [--model BUNDLE] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from screenshots import _wait as shared_wait  # noqa: E402 (the sibling script)
from screenshots import viewer  # noqa: E402

log = logging.getLogger("screenshots")


def _wait(app, cond, timeout: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    shared_wait(app, cond, timeout, settle=10, pause=0.01)


def _open(app, win, path: Path):  # type: ignore[no-untyped-def]
    (uid,) = win.open_paths([path])
    c = win.controller
    _wait(app, lambda: c.entry(uid) is not None and c.entry(uid).result is not None)
    win.show_entry(uid)
    _wait(app, lambda: True)
    return c.entry(uid)


def _blinked_files(folder: Path) -> tuple[Path, Path]:
    """A blinked copy of a sample B-scan, and a 6-page TIFF volume with two blinked frames."""
    from PIL import Image

    from octviewer.resources import samples_dir
    from training.data.degrade import degrade

    clean = np.asarray(Image.open(samples_dir() / "DRUSEN-8086850-1.jpeg").convert("L"))

    def blinked(strength: float, seed: int) -> np.ndarray:
        return np.clip(degrade(clean, "blink", strength, seed=seed), 0, 255).astype(np.uint8)

    single = folder / "blinked-bscan.png"
    Image.fromarray(blinked(0.35, 3)).save(single)
    pages = [blinked(0.4, s) if s in (1, 4) else clean for s in range(6)]
    volume = folder / "volume-two-blinks.tif"
    Image.fromarray(pages[0]).save(
        volume, save_all=True, append_images=[Image.fromarray(p) for p in pages[1:]]
    )
    return single, volume


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", help="model bundle (default: the bundled default model)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--size", default="1440x900", help="window size WxH")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from octviewer.core.report import save_report
    from octviewer.resources import default_model_path, samples_dir
    from octviewer.ui import model_commands
    from octviewer.viewer.presenters import entry_summary
    from octviewer.viewer.session import ModelState

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        single, volume = _blinked_files(Path(td))
        app, win = viewer(args.size, Path(td))
        model_commands.load_model(win, args.model or default_model_path())
        _wait(app, lambda: win.controller.model_state is ModelState.READY)
        circle = _open(app, win, samples_dir().parent / "selftest" / "circular-valid.vol")
        win.grab().save(str(out / "examination-circle.png"))
        save_report(circle.scan, circle.result, out / "report-examination-circle.png")
        low = _open(app, win, single)
        win.grab().save(str(out / "examination-low-quality.png"))
        vol = _open(app, win, volume)
        win.grab().save(str(out / "examination-volume.png"))
        for entry in (circle, low, vol):
            log.info("%s: %s", entry.scan.metadata.display_name, entry_summary(entry))
        win.close()
        win.controller.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
