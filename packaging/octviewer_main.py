"""Entry point of the packaged (PyInstaller) octviewer executable.

``octviewer``                      the viewer (``octviewer.ui.app.main``)
``octviewer FILES... [--model B]``  the viewer with files opened
``octviewer --self-test [...]``     headless check of the packaged app (``octviewer.selftest``)
``octviewer analyze|model-info ...`` the command line (``octviewer.cli.main``)

The same dispatch as ``python -m octviewer``; kept here so the frozen app does not depend on
how ``__main__`` is written, and so ``--self-test`` never imports Qt.
"""

from __future__ import annotations

import sys

CLI_COMMANDS = {"analyze", "model-info"}


def _run(argv: list[str]) -> int:
    if "--self-test" in argv:
        from octviewer.selftest import main as selftest

        return selftest(argv)
    if argv and argv[0] in CLI_COMMANDS:
        from octviewer.cli import main as cli

        return int(cli(argv) or 0)
    if sys.platform == "win32":
        # torch after PySide6 fails on Windows (WinError 1114 loading c10.dll): load it first.
        import torch  # noqa: F401

    from octviewer.ui.app import main as gui

    return int(gui(argv) or 0)


if __name__ == "__main__":
    sys.exit(_run(sys.argv[1:]))
