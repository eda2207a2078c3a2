"""Render the viewer and a report on a frame that is *not assessed* (offscreen).

Writes ``not-assessed.png`` (the window on the Heidelberg infrared fundus sample, which is not
an OCT B-scan, after a Kermany B-scan was opened for comparison in the list),
``not-assessed-shown.png`` (the same after "Show model output anyway") and
``report-not-assessed.png`` (its PNG report) into ``--out``. ``--compare`` also writes
``not-assessed-bscan.png``, the window on the B-scan.

    python scripts/screenshots_not_assessed.py [--model BUNDLE] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import _wait as shared_wait  # noqa: E402 (the sibling script)
from screenshots import viewer  # noqa: E402

log = logging.getLogger("screenshots")


def _wait(app, cond, timeout: float = 180.0) -> None:
    shared_wait(app, cond, timeout, settle=10, pause=0.01)


def _open(app, win, path: Path):
    (uid,) = win.open_paths([path])
    c = win.controller
    _wait(app, lambda: c.entry(uid) is not None and c.entry(uid).result is not None)
    win.show_entry(uid)
    _wait(app, lambda: True)
    return c.entry(uid)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", help="model bundle (default: the bundled default model)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--size", default="1440x900", help="window size WxH")
    ap.add_argument("--compare", action="store_true", help="also shoot the B-scan")
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
        app, win = viewer(args.size, Path(td))
        model_commands.load_model(win, args.model or default_model_path())
        _wait(app, lambda: win.controller.model_state is ModelState.READY)
        samples = samples_dir()
        bscan = _open(app, win, samples / "CNV-1016042-1.jpeg")
        _wait(app, lambda: win.image_view.overlay_shown, timeout=60)
        if args.compare:
            win.grab().save(str(out / "not-assessed-bscan.png"))
        fundus = _open(app, win, samples / "heidelberg-ir-fundus-not-oct.dcm")
        win.grab().save(str(out / "not-assessed.png"))
        box = getattr(win.result_panel, "show_anyway", None)
        if box is not None:
            box.setChecked(True)
            _wait(app, lambda: win.image_view.overlay_shown, timeout=60)
            win.grab().save(str(out / "not-assessed-shown.png"))
        save_report(fundus.scan, fundus.result, out / "report-not-assessed.png")
        log.info("B-scan: %s; fundus: %s", entry_summary(bscan), entry_summary(fundus))
        win.close()
        win.controller.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
