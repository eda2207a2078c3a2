"""Log file in the app data folder, and an excepthook that never lets the app die silently."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QStandardPaths

log = logging.getLogger(__name__)

_handler: logging.Handler | None = None


def log_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".octviewer") / "logs"


def setup_logging(level: int = logging.INFO, directory: Path | None = None) -> Path | None:
    """Log to ``<AppData>/logs/octviewer.log`` (rotated, 1 MB x 3) and stderr. Returns the file."""
    global _handler
    root = logging.getLogger()
    root.setLevel(min(root.level or level, level))
    path: Path | None = None
    if _handler is None:
        d = directory or log_dir()
        try:
            d.mkdir(parents=True, exist_ok=True)
            path = d / "octviewer.log"
            _handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
            )
        except OSError as exc:  # read-only home: keep running with stderr only
            logging.basicConfig(level=level)
            log.warning("cannot write the log file in %s: %s", d, exc)
            return None
        _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(_handler)
        if not any(
            isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            for h in root.handlers
        ):
            err = logging.StreamHandler()
            err.setLevel(logging.WARNING)
            root.addHandler(err)
    elif isinstance(_handler, logging.FileHandler):
        path = Path(_handler.baseFilename)
    return path


def install_excepthook(show: Callable[[str, str, str], None]) -> None:
    """Unexpected exceptions (GUI thread or any other) are logged with their traceback and shown
    through ``show(title, message, details)``; the app keeps running."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("unexpected error:\n%s", details)
        try:
            show(
                "Unexpected error",
                f"Something went wrong ({exc_type.__name__}: {exc}). The app keeps running; the "
                "details were written to the log file (Help > Show log folder).",
                details,
            )
        except Exception:
            log.exception("could not show the error dialog")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            log.error(
                "unexpected error in thread %s:\n%s",
                getattr(args.thread, "name", "?"),
                "".join(
                    traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
                ),
            )

    sys.excepthook = hook
    threading.excepthook = thread_hook
