"""Command line of the training package: ``octviewer-train`` / ``python -m training``.

Every option can also come from ``--config FILE`` (JSON or TOML whose keys are the option names,
with dashes or underscores); options given on the command line win over the file.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from octviewer.errors import OCTViewerError, TrainingError
from training.config import TrainConfig, read_config_file
from training.train_parser import build_parser

log = logging.getLogger(__name__)

#: ``octviewer-train NAME ...``: the module whose ``main(argv)`` runs the command NAME; without
#: a NAME the arguments are those of a training run (:mod:`training.train_parser`).
COMMANDS = {
    "ensemble": "training.ensemble.command",
    "ood": "training.rewrite.add_ood",
    "int8": "training.rewrite.add_int8",
    "source-eval": "training.rewrite.source_eval",
    "sources": "training.data.sources",
    "validate": "training.rewrite.validate",
}


def parse_config(argv: list[str]) -> TrainConfig:
    parser = build_parser()
    ns = parser.parse_args(argv)
    values: dict[str, Any] = {}
    if ns.config:
        values.update(read_config_file(ns.config))
    cli = {k: v for k, v in vars(ns).items() if v is not None and k not in ("config", "verbose")}
    values.update(cli)
    for required in ("data", "run_dir"):
        if not values.get(required):
            parser.error(
                f"--{required.replace('_', '-')} is required (on the command line or in --config)"
            )
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise TrainingError(f"Invalid options: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] and args[0] in COMMANDS:
        return int(importlib.import_module(COMMANDS[args[0]]).main(args[1:]))
    verbose = "-v" in args or "--verbose" in args
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = parse_config(args)
    except OCTViewerError as exc:
        sys.stderr.write(f"octviewer-train: error: {exc}\n")
        return 2
    from training.run import main_entry

    return main_entry(cfg, ["octviewer-train", *args])
