"""Entry point of the packaged (PyInstaller) octviewer executable.

``octviewer [FILES...] [--model B]``   the viewer (``octviewer.ui.app.main``)
``octviewer analyze|model-info ...``    the command line (``octviewer.cli``)
``octviewer --self-test [...]``         headless check of the packaged app (``octviewer.selftest``)

The same dispatch as ``python -m octviewer``, except that ``--self-test`` goes straight to the
self-test so that it never imports Qt and accepts all its own options (``--samples``, ``--json``),
and that ``--help`` lists the subcommands and the self-test next to the viewer's options.
"""

from __future__ import annotations

import sys


def help_text() -> str:
    """The viewer's ``--help`` with every subcommand of this executable (no Qt import)."""
    import argparse

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


def _run(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(help_text())
        return 0
    if "--self-test" in argv:
        from octviewer.selftest import main as selftest

        return selftest(argv)
    from octviewer.__main__ import main

    return int(main(argv) or 0)


if __name__ == "__main__":
    sys.exit(_run(sys.argv[1:]))
