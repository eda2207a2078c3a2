"""``octviewer-cli``: analyse OCT scans without a window, and describe a model bundle.

Subcommands (``octviewer-cli SUBCOMMAND --help`` explains each option):

- ``analyze PATHS...`` loads every scan, classifies it, writes one PNG report per scan (per
  frame with ``--per-frame``) and one summary (CSV and/or JSON) into ``--out``. Bad inputs do
  not stop the batch: they are listed at the end with the reason.
- ``model-info`` prints the model card facts of a bundle (no torch needed).

A folder given as a PATH is opened by the same rules as in the viewer
(``octviewer.core.io.plan_folder``): ONE scan when its files are one (a DICOM series, numbered
B-scans of one size, with their SLO when there is exactly one), and each scan on its own when
they are independent (vendor files, several series, unrelated or mixed-size images). When the
folder is unclear, the error names ``--recursive`` (every file inside as its own scan).

Each analysed input gets one console line: its reported frame's class and probability, or
"not assessed: <reason>" for a frame the model must not classify (not an OCT B-scan, unlike
the training data); such frames have no class in the summary either, and their reports leave
the probabilities and heatmap out unless ``--show-unreliable``.

Exit status: 0 all inputs analysed, 1 some inputs failed, 2 usage or model error.
Patient identifiers never appear in log lines; reports include them only with
``--include-identity``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from octviewer.cli.analyze import cmd_analyze
from octviewer.cli.batch import (
    BatchOutcome,
    BatchRun,
    analyze_one,
    expand_inputs,
    run_batch,
)
from octviewer.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    SUBCOMMANDS,
    configure_logging,
    log,
)
from octviewer.cli.model_info import cmd_model_info
from octviewer.cli.parser import DISCLAIMER, build_parser

__all__ = [
    "DISCLAIMER",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "SUBCOMMANDS",
    "BatchOutcome",
    "BatchRun",
    "analyze_one",
    "build_parser",
    "expand_inputs",
    "log",
    "main",
    "run_batch",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``octviewer-cli``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help, --version, or a usage error (argparse printed it)
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    configure_logging(args.verbose_global + getattr(args, "verbose", 0))
    if args.command in ("analyze", "analyse"):
        return cmd_analyze(args)
    if args.command == "archive":
        from octviewer.cli.archive import cmd_archive

        return cmd_archive(args)
    return cmd_model_info(args)
