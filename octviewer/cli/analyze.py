"""``octviewer-cli analyze``: check the options, load the model, run the batch, write the
summaries and print the outcome."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from octviewer.cli.batch import BatchOutcome, expand_inputs, resolve_cam_class, run_batch
from octviewer.cli.common import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, log, say
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
from octviewer.errors import OCTViewerError

if TYPE_CHECKING:
    from octviewer.core.engine import Engine


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options (the message printed), or None; sets
    ``args.contour_levels`` from ``--contours``."""
    if not 0.0 <= args.opacity <= 1.0:
        return "octviewer-cli: --opacity must be between 0 and 1."
    try:
        args.contour_levels = tuple(float(v) for v in args.contours.split(",") if v.strip())
    except ValueError:
        args.contour_levels = (-1.0,)
    if any(not 0.0 < v <= 1.0 for v in args.contour_levels):
        return "octviewer-cli: --contours takes levels between 0 and 1, e.g. 0.5,0.8."
    if args.batch_size < 1 or (args.threads is not None and args.threads < 1):
        return "octviewer-cli: --batch-size and --threads must be at least 1."
    if args.frame is not None and args.frame < 1:
        return "octviewer-cli: --frame must be 1 or more (1 = the first frame)."
    return None


def _load_engine(args: argparse.Namespace) -> tuple[Engine, int | None] | None:
    """The engine and the ``--cam-class`` index, or None after saying why the model is unusable."""
    import octviewer

    try:
        engine = octviewer.load_model(
            args.model,
            device=args.device,
            quantize=args.int8,
            threads=args.threads,
            precision=args.precision,
        )
        cam_class = resolve_cam_class(engine, args.cam_class)
    except OCTViewerError as e:
        say(f"octviewer-cli: cannot use the model: {e}", sys.stderr)
        return None
    except Exception:
        log.exception("Unexpected error while loading the model")
        say(
            "octviewer-cli: the model could not be loaded (unexpected error, see the log above).",
            sys.stderr,
        )
        return None
    log.info("Model %s on %s (%s)", engine.identity, engine.device, engine.compute_dtype)
    return engine, cam_class


def _write_summaries(engine: Engine, outcome: BatchOutcome, args: argparse.Namespace) -> list[Path]:
    """The summary files ``--summary`` asks for; raises OCTViewerError when one cannot be written."""
    from octviewer.core.summary import write_csv, write_json

    classes = list(engine.config.class_names)
    summaries: list[Path] = []
    if args.summary in ("csv", "both"):
        summaries.append(write_csv(outcome.rows, args.out / "summary.csv", classes))
    if args.summary in ("json", "both"):
        summaries.append(
            write_json(
                outcome.rows,
                args.out / "summary.json",
                model=engine.identity,
                class_names=classes,
            )
        )
    return summaries


def _print_outcome(
    engine: Engine,
    outcome: BatchOutcome,
    args: argparse.Namespace,
    n_inputs: int,
    summaries: list[Path],
    seconds: float,
) -> None:
    n_ok = n_inputs - len(outcome.failures)
    for line in outcome.lines:
        say(line)
    say(
        f"Analysed {n_ok} of {n_inputs} input(s) in {seconds:.1f} s "
        f"with {engine.identity} on {engine.device}."
    )
    from octviewer.core.summary import imageability_line

    imageability = imageability_line(outcome.rows)
    if imageability:
        say(imageability)
    say(f"Reports: {len(outcome.reports)} in {args.out}")
    for s in summaries:
        say(f"Summary: {s}")
    if outcome.failures:
        say(f"\n{len(outcome.failures)} input(s) could not be analysed:", sys.stderr)
        for p, msg in outcome.failures:
            say(f"  {p}: {msg}", sys.stderr)
    say(DISCLAIMER + ".")


def cmd_analyze(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem is not None:
        say(problem, sys.stderr)
        return EXIT_USAGE
    if getattr(args, "page_png", False):
        say(
            "octviewer-cli: --page-png is deprecated and does nothing: the PNG report is the "
            "printable page now (its size follows --page).",
            sys.stderr,
        )
    t0 = time.perf_counter()
    loaded = _load_engine(args)
    if loaded is None:
        return EXIT_USAGE
    engine, cam_class = loaded

    inputs = expand_inputs(args.paths, args.recursive)
    if not inputs:
        say("octviewer-cli: the given folders hold no files.", sys.stderr)
        return EXIT_SOME_FAILED
    from octviewer.core.result_cache import ResultCache

    cache = None if args.no_cache else ResultCache.default()
    outcome = run_batch(engine, inputs, args, cam_class, cache)
    try:
        summaries = _write_summaries(engine, outcome, args)
    except OCTViewerError as e:
        say(f"octviewer-cli: {e}", sys.stderr)
        return EXIT_SOME_FAILED
    _print_outcome(engine, outcome, args, len(inputs), summaries, time.perf_counter() - t0)
    return EXIT_SOME_FAILED if outcome.failures else EXIT_OK
