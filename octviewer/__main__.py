"""The one entry dispatcher: ``octviewer`` (the installed launcher), ``python -m octviewer`` and
the packaged executable (``packaging/octviewer_main.py``) all come here.

``octviewer [FILES...] [--model B]``   the viewer (``octviewer.ui.app.main``)
``octviewer analyze|model-info ...``    the command line (``octviewer.cli``)
``octviewer --self-test [...]``         headless check of an installation (``octviewer.selftest``)
``octviewer --help``                    the viewer's options and every subcommand

``--self-test`` goes straight to the self-test, so that it never imports Qt and accepts all its
own options (``--samples``, ``--json``). The process-wide settings that must precede ``import
torch`` (:func:`octviewer.core.device.prepare_environment`) are made here, once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def help_text() -> str:
    """The viewer's ``--help`` with every subcommand of this executable (no Qt import)."""
    from octviewer.cli import build_parser as cli_parser
    from octviewer.ui.app import build_parser

    p = build_parser()
    sub = next(a for a in cli_parser()._actions if isinstance(a, argparse._SubParsersAction))
    lines = ["subcommands (octviewer COMMAND --help for their options):"]
    for choice in sub._choices_actions:
        lines.append(f"  {choice.dest:<12} {choice.help}")
    lines.append(
        f"  {'--self-test':<12} headless check of this installation: every bundled sample\n"
        f"  {'':<12} opened, analysed and reported (--json FILE, --samples DIR, --model B)"
    )
    p.epilog = "\n".join(lines)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    return p.format_help()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from octviewer.core.device import prepare_environment

    prepare_environment()
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(help_text())
        return 0
    if "--self-test" in args:  # the self-test has options of its own (--json, --keep, ...)
        from octviewer.selftest import main as selftest_main

        return int(selftest_main([a for a in args if a != "--self-test"]) or 0)
    from octviewer.cli import SUBCOMMANDS

    if args and args[0] in (*SUBCOMMANDS, "analyse"):
        from octviewer.cli import main as cli_main

        return cli_main(args)
    from octviewer.ui.app import main as gui_main  # Qt only when the window is wanted

    return int(gui_main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
