"""``python -m octviewer``: the command line when the first argument is one of its
subcommands (``analyze``, ``model-info``), otherwise the desktop viewer."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from octviewer.cli import SUBCOMMANDS

    if args and args[0] in (*SUBCOMMANDS, "analyse"):
        from octviewer.cli import main as cli_main

        return cli_main(args)
    from octviewer.ui.app import main as gui_main  # Qt only when the window is wanted

    return int(gui_main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
