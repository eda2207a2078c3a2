"""The desktop viewer: ``octviewer [FILES...] [--samples] [--model BUNDLE] [--device ...]`` (reached
through the one dispatcher, :mod:`octviewer.__main__`, which also routes ``--self-test``).

The window is shown first; torch is imported only when the model loads, on a worker thread.
When Qt cannot start (no display, missing X11 libraries, a fatal Qt error while the window is
built) the cause is logged, written to stderr and, where a display exists, shown in a dialog;
the exit status is then 3.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octviewer.ui.controller import Controller

log = logging.getLogger(__name__)

_T0 = time.perf_counter()
EXIT_QT_FAILED = 3


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
        "--samples",
        action="store_true",
        help="also open the bundled sample scans (resources/samples)",
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
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def sample_files() -> list[Path]:
    """The bundled sample scans (``resources/samples``), documentation files left out."""
    from octviewer.resources import sample_scans

    return sample_scans()


def qt_start_problem() -> str | None:
    """Why Qt cannot open a window here, found before Qt would abort the process; else None.

    Linux only (elsewhere the platform plugin ships with Qt): no ``DISPLAY`` for the xcb
    plugin, or system libraries the plugin needs that are missing (``qt_syslibs``).
    """
    if not sys.platform.startswith("linux"):
        return None
    wanted = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if wanted and wanted != "xcb":
        return None  # offscreen, wayland, vnc...: Qt reports those itself (message handler)
    if not wanted and os.environ.get("WAYLAND_DISPLAY"):
        return None  # Qt tries Wayland first
    if not os.environ.get("DISPLAY"):
        return (
            "octviewer cannot open its window: there is no display (DISPLAY is not set). "
            "Start it from a desktop session or over `ssh -X`; without a display use "
            "`octviewer-cli analyze FILES --out DIR` (or `octviewer analyze` in the packaged app)."
        )
    from octviewer.ui import qt_syslibs

    result = qt_syslibs.check()
    return result.message() if result.plugin is not None and result.missing else None


def report_start_failure(message: str, details: str = "", *, dialog: bool = True) -> None:
    """Log and stderr always; a dialog where a display exists (Qt itself may not be usable)."""
    log.critical("%s%s", message, f"\n{details}" if details else "")
    if not any(  # a handler that already writes to stderr (setup_logging adds one)
        getattr(h, "stream", None) in (sys.stderr, sys.__stderr__)
        for h in logging.getLogger().handlers
    ):
        sys.stderr.write(f"octviewer: {message}\n")
    text = f"octviewer could not start.\n\n{message}"
    if dialog and sys.platform == "win32":  # the windowed .exe has no console to read stderr in
        import ctypes

        ctypes.windll.user32.MessageBoxW(None, text, "octviewer", 0x10)  # MB_ICONERROR
        return
    if dialog and sys.platform == "darwin":
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        cmds = [["osascript", "-e", f'display alert "octviewer" message "{escaped}" as critical']]
    elif dialog and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        cmds = _linux_dialogs(text)
    else:
        return
    for cmd in cmds:
        try:  # not waited for: the dialog stays up after this process has exited
            subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL)
            return
        except OSError:
            continue


def _linux_dialogs(text: str) -> list[list[str]]:
    return [
        ["zenity", "--error", "--title=octviewer", "--no-markup", f"--text={text}"],
        ["kdialog", "--title", "octviewer", "--error", text],
        ["xmessage", "-center", text],
    ]


def _fatal_qt_handler(msg_type: object, _context: object, message: str) -> None:
    """Qt message handler while the app starts: a fatal Qt error is reported, not a core dump."""
    from PySide6.QtCore import QtMsgType

    if msg_type == QtMsgType.QtFatalMsg:
        report_start_failure(f"Qt could not start: {message}")
        logging.shutdown()
        os._exit(EXIT_QT_FAILED)
    level = logging.DEBUG if msg_type == QtMsgType.QtDebugMsg else logging.WARNING
    log.log(level, "Qt: %s", message)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    files = [*args.files, *(sample_files() if args.samples else [])]

    if sys.platform == "win32":  # torch after Qt can fail to load c10.dll on Windows (PITFALLS.md)
        import torch  # noqa: F401

    from PySide6.QtCore import QCoreApplication, Qt, QTimer, qInstallMessageHandler
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from octviewer import __version__
    from octviewer.resources import icon_path
    from octviewer.ui.logging_setup import install_excepthook, setup_logging

    QCoreApplication.setApplicationName("octviewer")  # before the log folder is looked up
    QCoreApplication.setOrganizationName("octviewer")
    logfile = setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    problem = qt_start_problem()
    if problem:
        report_start_failure(problem)
        return EXIT_QT_FAILED

    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    qInstallMessageHandler(_fatal_qt_handler)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "octviewer"])
    app.setApplicationVersion(__version__)
    app.setWindowIcon(QIcon(str(icon_path())))
    from octviewer.ui.compat import guard_refcounts

    guard_refcounts()

    from octviewer.ui.main_window import MainWindow

    try:
        window = MainWindow()
    except Exception as exc:
        import traceback

        from PySide6.QtWidgets import QMessageBox

        msg = f"The main window could not be built ({type(exc).__name__}: {exc})."
        report_start_failure(msg, traceback.format_exc(), dialog=False)
        QMessageBox.critical(None, "octviewer could not start", f"{msg}\nLog: {logfile}")
        return EXIT_QT_FAILED
    finally:
        qInstallMessageHandler(None)
    install_excepthook(lambda t, m, d: window.show_error(t, m, d))
    freeze_heap_when_model_ready(window.controller)
    favour_the_gui_thread()
    window.show()
    log.info(
        "octviewer %s: window shown %.2f s after start (log: %s)",
        __version__,
        time.perf_counter() - _T0,
        logfile,
    )
    log_first_result(window.controller)
    QTimer.singleShot(0, lambda: window.start(files, args.model, args.device))
    return int(app.exec())


def log_first_result(controller: Controller) -> None:
    """Log ``first result shown N s after start`` once, when the first result has been drawn
    (the launch benchmark, ``benchmarks/bench_launch.py``, reads it)."""
    from PySide6.QtCore import QTimer

    done: list[bool] = []

    def shown(uid: int) -> None:
        if done:
            return
        done.append(True)
        # after the slots that draw the result have run (queued behind them)
        QTimer.singleShot(
            0,
            lambda: log.info(
                "first result shown %.2f s after start (scan %d)", time.perf_counter() - _T0, uid
            ),
        )

    controller.result_ready.connect(shown)


#: how long a Python thread may hold the GIL while another waits for it (CPython: 5 ms)
GUI_SWITCH_INTERVAL_S = 0.001


def favour_the_gui_thread() -> None:
    """Let the GUI thread get the GIL back within 1 ms instead of 5 ms.

    PySide6 releases the GIL in its calls into Qt, so each call the GUI thread makes while a
    job thread runs Python (preprocessing, Grad-CAM, the examination) waits up to the
    interpreter's switch interval to continue: a status-bar update of a few Qt calls took up
    to 38 ms (p99 15 ms) during a 1,000-frame volume's analysis, 4 ms (p99 0.9 ms) at 1 ms
    (``benchmarks/bench_soak.py``). The cost is more GIL hand-overs between job threads."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)


def freeze_heap_when_model_ready(controller: Controller) -> None:
    """Each time a model is ready, keep what exists then out of the garbage collector's full
    passes (:func:`octviewer.core.device.freeze_heap`: a 370 ms GUI stall otherwise)."""
    from octviewer.core.device import freeze_heap
    from octviewer.viewer.session import ModelState

    def on_model(state: str, _text: str) -> None:
        if state == ModelState.READY.value:
            freeze_heap()

    controller.model_changed.connect(on_model)


if __name__ == "__main__":
    sys.exit(main())
