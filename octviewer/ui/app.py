"""``octviewer [FILES...] [--model BUNDLE] [--device auto|cpu|cuda|mps] [--self-test]``.

The window is shown first; torch is imported only when the model loads, on a worker thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

_T0 = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="octviewer",
        description="View retinal OCT scans, classify them with a local model and see where it looked. "
        "Research use only — not for diagnosis.",
    )
    p.add_argument(
        "files",
        nargs="*",
        help="scan files or folders to open (DICOM, PNG, JPEG, TIFF, BMP, Heidelberg .vol)",
    )
    p.add_argument(
        "--model",
        metavar="BUNDLE",
        help="model bundle (.safetensors) to use instead of the default",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        help="where the model runs (default: remembered, else auto)",
    )
    p.add_argument(
        "--self-test", action="store_true", help="check the installation without a display and exit"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in argv:  # the self-test has options of its own (--json, --keep, ...)
        from octviewer import selftest

        return int(selftest.main([a for a in argv if a != "--self-test"]) or 0)
    args = build_parser().parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # do not spin cores the GUI needs
    if sys.platform == "win32":  # torch after Qt can fail to load c10.dll on Windows (PITFALLS.md)
        import torch  # noqa: F401

    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from octviewer import __version__
    from octviewer.resources import icon_path
    from octviewer.ui.logging_setup import install_excepthook, setup_logging

    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "octviewer"])
    app.setApplicationName("octviewer")
    app.setOrganizationName("octviewer")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(QIcon(str(icon_path())))
    logfile = setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    from octviewer.ui.compat import guard_refcounts

    guard_refcounts()

    from octviewer.ui.main_window import MainWindow

    window = MainWindow()
    install_excepthook(lambda t, m, d: window.show_error(t, m, d))
    window.show()
    log.info(
        "octviewer %s: window shown %.2f s after start (log: %s)",
        __version__,
        time.perf_counter() - _T0,
        logfile,
    )
    QTimer.singleShot(0, lambda: window.start(args.files, args.model, args.device))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
