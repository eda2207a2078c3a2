"""Shared pieces of ``octviewer-cli``: exit codes, the logger, console output, log set-up."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

log = logging.getLogger("octviewer.cli")

SUBCOMMANDS = ("analyze", "model-info", "archive")
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def say(msg: str = "", stream: TextIO | None = None) -> None:
    """CLI output (results and messages for the user); logging is for diagnostics."""
    (stream or sys.stdout).write(msg + "\n")


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    if not any(getattr(h, "_octviewer_cli", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._octviewer_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
