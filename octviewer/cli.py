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

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from octviewer._version import __version__
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
from octviewer.errors import AmbiguousSeriesError, OCTViewerError

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan
    from octviewer.core.summary import SummaryRow

log = logging.getLogger("octviewer.cli")

SUBCOMMANDS = ("analyze", "model-info")
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def _say(msg: str = "", stream: TextIO | None = None) -> None:
    """CLI output (results and messages for the user); logging is for diagnostics."""
    (stream or sys.stdout).write(msg + "\n")


# --- arguments ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="octviewer-cli",
        description="Classify retinal OCT scans with a MIRAGE model, write PNG reports with "
        f"Grad-CAM heatmaps and a CSV/JSON summary. {DISCLAIMER}.",
        epilog="Exit status: 0 all inputs analysed, 1 some inputs failed, 2 usage or model error.",
    )
    p.add_argument("--version", action="version", version=f"octviewer {__version__}")
    p.add_argument(
        "-v",
        "--verbose",
        dest="verbose_global",
        action="count",
        default=0,
        help="more log output (-v info, -vv debug)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    a = sub.add_parser(
        "analyze",
        aliases=["analyse"],
        help="analyse scans and write reports + a summary",
        description="Analyse OCT scans: one PNG report per scan (the most suspicious frame of a "
        "volume unless --frame or --per-frame) and one summary with a row per analysed frame. "
        "A folder is ONE scan when its files are one (a DICOM series, numbered B-scans of one "
        "size, with their SLO), else each scan in it on its own (vendor files, several series, "
        "unrelated images); use --recursive to analyse every file in folders (and sub-folders) "
        "separately. Bad files are skipped and "
        "listed at the end (exit status 1).",
    )
    a.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="scan files or folders")
    a.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    _model_arg(a)
    a.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("octviewer-reports"),
        help="output folder (default: ./octviewer-reports)",
    )
    a.add_argument(
        "--per-frame",
        action="store_true",
        help="one report per frame of a volume (each with its heatmap)",
    )
    a.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="analyse and report only frame N (0-based index, as in the summary) of each scan",
    )
    a.add_argument(
        "--cam-class",
        metavar="NAME",
        help="class whose heatmap is drawn (default: the predicted class of each frame)",
    )
    a.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="compute device (default: auto = CUDA, then Apple MPS, then CPU)",
    )
    a.add_argument(
        "--int8",
        action="store_true",
        help="CPU fast path: dynamic int8 quantisation of Linear layers",
    )
    a.add_argument(
        "--precision",
        choices=("auto", "fp32"),
        default="auto",
        help="auto (default): bf16 arithmetic on GPUs and on CPUs with native bf16 "
        "(AVX512-BF16/AMX); fp32: full precision everywhere",
    )
    a.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for inference (default: engine's choice)",
    )
    a.add_argument(
        "--batch-size",
        type=int,
        default=8,
        metavar="N",
        help="frames per forward pass (default: 8)",
    )
    a.add_argument(
        "--include-identity",
        action="store_true",
        help="print patient name/ID/birth date/sex in the reports (left out by default)",
    )
    a.add_argument(
        "--summary",
        choices=("csv", "json", "both", "none"),
        default="both",
        help="summary file(s) written to the output folder (default: both)",
    )
    a.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="treat every file inside given folders (and their subfolders) as its own scan",
    )
    a.add_argument(
        "--colormap",
        choices=("inferno", "jet", "viridis"),
        default="inferno",
        help="heatmap colours (default: inferno)",
    )
    a.add_argument(
        "--opacity", type=float, default=0.45, help="heatmap opacity, 0..1 (default: 0.45)"
    )
    a.add_argument(
        "--show-unreliable",
        action="store_true",
        help="in reports of frames that are not assessed, draw the model's probabilities and "
        "heatmap anyway, marked unreliable (left out by default)",
    )
    a.add_argument(
        "--contours",
        default="",
        metavar="LEVELS",
        help="heatmap contour lines at these attention levels, e.g. 0.5,0.8 (default: none)",
    )
    a.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    m = sub.add_parser(
        "model-info",
        help="print a model bundle's card (name, version, classes, metrics, licence, sha256)",
        description="Print the facts of a model bundle without loading its weights.",
    )
    m.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    _model_arg(m)
    m.add_argument("--json", action="store_true", help="print the full configuration as JSON")
    return p


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m",
        "--model",
        type=Path,
        metavar="BUNDLE",
        help="model bundle (.safetensors); default: the bundled default model",
    )


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    if not any(getattr(h, "_octviewer_cli", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._octviewer_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


# --- inputs ---------------------------------------------------------------------------------
def expand_inputs(paths: Sequence[Path], recursive: bool) -> list[Path | tuple[Path, str]]:
    """The scans to open: files as given; folders by the viewer's folder rules (one scan, or
    ``(folder, key)`` per independent scan), or (recursive) every file inside them in natural
    order, skipping hidden files. Missing paths stay in the list so that they
    are reported as failures."""
    from natsort import os_sorted

    out: list[Path | tuple[Path, str]] = []
    for p in paths:
        if not recursive and p.is_dir():
            out.extend(_folder_inputs(p))
        elif recursive and p.is_dir():
            files = [
                f
                for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            ]
            out.extend(os_sorted(files))
        else:
            out.append(p)
    return out


def _folder_inputs(folder: Path) -> list[Path | tuple[Path, str]]:
    """A folder as the viewer opens it: itself when it is one scan (or unclear: its error
    names the flag), else (folder, key) for each of its independent scans."""
    from octviewer.core.io import plan_folder

    try:
        plan = plan_folder(folder)
    except OCTViewerError:
        return [folder]  # loading it reports the reason
    if plan.decision != "several":
        return [folder]
    # a one-file scan is given as its file (its report and console line carry its name)
    return [item.paths[0] if len(item.paths) == 1 else (folder, item.key) for item in plan.items]


def _unique_stem(stem: str, used: set[str]) -> str:
    candidate, k = stem, 2
    while candidate.lower() in used:
        candidate, k = f"{stem}_{k}", k + 1
    used.add(candidate.lower())
    return candidate


def _safe_stem(name: str, is_dir: bool) -> str:
    """A file-system-safe report name from an input name (suffix dropped for files)."""
    name = name if is_dir else Path(name).stem
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return cleaned or "scan"


# --- analysis -------------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    rows: list[SummaryRow] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # one console line per analysed input


def _resolve_cam_class(engine: Engine, name: str | None) -> int | None:
    if name is None:
        return None
    names = list(engine.config.class_names)
    lowered = [n.lower() for n in names]
    if name.lower() not in lowered:
        raise OCTViewerError(
            f"--cam-class {name!r} is not a class of this model. Its classes are: {', '.join(names)}."
        )
    return lowered.index(name.lower())


def _with_cam(
    engine: Engine, scan: Scan, result: ScanResult, frame: int, cam_class: int | None
) -> ScanResult:
    """``result`` with the CAM of ``frame`` filled in (volumes are analysed without CAMs)."""
    fr = result.frame(frame)
    if fr.cam is not None:
        return result
    cls = fr.predicted_index if cam_class is None else cam_class
    cam = engine.cam(scan, frame, cls)
    new = dataclasses.replace(fr, cam=cam, cam_class=cls)
    frames = tuple(new if f.frame_index == frame else f for f in result.frames)
    return dataclasses.replace(result, frames=frames)


def analyze_one(
    engine: Engine,
    path: Path,
    args: argparse.Namespace,
    cam_class: int | None,
    used: set[str],
    series: str | None = None,
) -> tuple[list[SummaryRow], list[Path], list[str]]:
    """Load, analyse and report one input: its summary rows, reports and console line.
    Raises OCTViewerError for a bad input."""
    import octviewer
    from octviewer.core.report import redact, save_report
    from octviewer.core.summary import result_line, rows_for_result

    scan = octviewer.load(path, series=series)
    if args.frame is not None and not 0 <= args.frame < scan.n_frames:
        raise OCTViewerError(
            f"Frame {args.frame} does not exist: this scan has {scan.n_frames} frame(s) "
            f"(indices 0 to {scan.n_frames - 1}).",
            path=path,
        )
    frames = [args.frame] if args.frame is not None else None
    is_file_item = series is not None and series.startswith("file:")
    source = series[5:] if is_file_item else path.name
    shown_name = source if args.include_identity else redact(source, scan.identity)
    stem = _unique_stem(_safe_stem(shown_name, path.is_dir() and not is_file_item), used)
    # CAMs for every analysed frame only when each gets a report (or there is only one frame).
    cam_all = args.per_frame or args.frame is not None or not scan.is_volume
    result = engine.analyze(
        scan, frames=frames, cam=cam_all, cam_class=cam_class, batch_size=args.batch_size
    )
    to_report = (
        [f.frame_index for f in result.frames]
        if args.per_frame
        else [args.frame if args.frame is not None else result.most_suspicious_frame()]
    )
    written: dict[int, str] = {}
    out_paths: list[Path] = []
    for idx in to_report:
        if result.frame(idx).assessable or args.show_unreliable:  # no heatmap drawn otherwise
            result = _with_cam(engine, scan, result, idx, cam_class)
        name = f"{stem}_frame{idx:03d}.png" if scan.is_volume else f"{stem}.png"
        out = save_report(
            scan,
            result,
            args.out / name,
            frame_index=idx,
            include_identity=args.include_identity,
            colormap=args.colormap,
            opacity=args.opacity,
            contours=args.contour_levels,
            show_unreliable=args.show_unreliable,
        )
        written[idx] = out.name
        out_paths.append(out)
    label = str(path) if args.include_identity else redact(str(path), scan.identity)
    lines = [result_line(label, result.frame(i), scan.n_frames) for i in to_report[:1]]
    if len(to_report) > 1:
        skipped = len(to_report) - sum(result.frame(i).assessable for i in to_report)
        lines = [f"{label}: {len(to_report)} frames reported, {skipped} not assessed"]
    return rows_for_result(label, result, scan.n_frames, written), out_paths, lines


def run_batch(
    engine: Engine,
    inputs: Sequence[Path | tuple[Path, str]],
    args: argparse.Namespace,
    cam_class: int | None,
) -> BatchOutcome:
    from tqdm import tqdm

    from octviewer.core.summary import failed_row

    outcome = BatchOutcome()
    used: set[str] = set()
    bar = tqdm(
        inputs,
        desc="Analysing",
        unit="scan",
        file=sys.stderr,
        disable=True if args.no_progress else None,
    )
    for item in bar:
        path, series = item if isinstance(item, tuple) else (item, None)
        shown = str(path) if series is None else f"{path} [{series}]"
        try:
            rows, reports, lines = analyze_one(engine, path, args, cam_class, used, series=series)
        except OCTViewerError as e:
            log.info("Skipped %s: %s", path.name, e)
            msg = str(e)
            if isinstance(e, AmbiguousSeriesError) and path.is_dir():
                msg += " With octviewer-cli, add --recursive to analyse each file of the folder as its own scan."
            outcome.failures.append((shown, msg))
            outcome.rows.append(failed_row(shown, msg, engine.identity.sha256))
            continue
        except Exception as e:  # a bug or an environment problem: keep the batch going
            log.exception("Unexpected error while analysing %s", path.name)
            msg = f"unexpected error ({type(e).__name__}: {e}); the traceback is in the log"
            outcome.failures.append((shown, msg))
            outcome.rows.append(failed_row(shown, msg, engine.identity.sha256))
            continue
        finally:
            engine.clear_cache()  # the graph kept for CAMs of this scan
        outcome.rows.extend(rows)
        outcome.reports.extend(reports)
        outcome.lines.extend(lines)
    bar.close()
    return outcome


def _cmd_analyze(args: argparse.Namespace) -> int:
    import octviewer
    from octviewer.core.summary import write_csv, write_json

    if not 0.0 <= args.opacity <= 1.0:
        _say("octviewer-cli: --opacity must be between 0 and 1.", sys.stderr)
        return EXIT_USAGE
    try:
        args.contour_levels = tuple(float(v) for v in args.contours.split(",") if v.strip())
    except ValueError:
        args.contour_levels = (-1.0,)
    if any(not 0.0 < v <= 1.0 for v in args.contour_levels):
        _say("octviewer-cli: --contours takes levels between 0 and 1, e.g. 0.5,0.8.", sys.stderr)
        return EXIT_USAGE
    if args.batch_size < 1 or (args.threads is not None and args.threads < 1):
        _say("octviewer-cli: --batch-size and --threads must be at least 1.", sys.stderr)
        return EXIT_USAGE
    if args.frame is not None and args.frame < 0:
        _say("octviewer-cli: --frame must be 0 or more (0 = first frame).", sys.stderr)
        return EXIT_USAGE
    t0 = time.perf_counter()
    try:
        engine = octviewer.load_model(
            args.model,
            device=args.device,
            quantize=args.int8,
            threads=args.threads,
            precision=args.precision,
        )
        cam_class = _resolve_cam_class(engine, args.cam_class)
    except OCTViewerError as e:
        _say(f"octviewer-cli: cannot use the model: {e}", sys.stderr)
        return EXIT_USAGE
    except Exception:
        log.exception("Unexpected error while loading the model")
        _say(
            "octviewer-cli: the model could not be loaded (unexpected error, see the log above).",
            sys.stderr,
        )
        return EXIT_USAGE
    log.info("Model %s on %s (%s)", engine.identity, engine.device, engine.compute_dtype)

    inputs = expand_inputs(args.paths, args.recursive)
    if not inputs:
        _say("octviewer-cli: the given folders hold no files.", sys.stderr)
        return EXIT_SOME_FAILED
    outcome = run_batch(engine, inputs, args, cam_class)

    classes = list(engine.config.class_names)
    summaries: list[Path] = []
    try:
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
    except OCTViewerError as e:
        _say(f"octviewer-cli: {e}", sys.stderr)
        return EXIT_SOME_FAILED

    n_ok = len(inputs) - len(outcome.failures)
    for line in outcome.lines:
        _say(line)
    _say(
        f"Analysed {n_ok} of {len(inputs)} input(s) in {time.perf_counter() - t0:.1f} s "
        f"with {engine.identity} on {engine.device}."
    )
    _say(f"Reports: {len(outcome.reports)} in {args.out}")
    for s in summaries:
        _say(f"Summary: {s}")
    if outcome.failures:
        _say(f"\n{len(outcome.failures)} input(s) could not be analysed:", sys.stderr)
        for p, msg in outcome.failures:
            _say(f"  {p}: {msg}", sys.stderr)
    _say(DISCLAIMER + ".")
    return EXIT_SOME_FAILED if outcome.failures else EXIT_OK


def _cmd_model_info(args: argparse.Namespace) -> int:
    from octviewer.core.model.bundle import file_sha256, read_bundle_config
    from octviewer.resources import default_model_path

    path = args.model or default_model_path()
    if not path.is_file():
        which = "The default model" if args.model is None else "The model file"
        _say(
            f"octviewer-cli: {which} was not found at {path}. Give a bundle with --model.",
            sys.stderr,
        )
        return EXIT_USAGE
    try:
        cfg = read_bundle_config(path)
        sha = file_sha256(path)
    except OCTViewerError as e:
        _say(f"octviewer-cli: {e}", sys.stderr)
        return EXIT_USAGE
    if args.json:
        d = cfg.to_dict()
        d["sha256"] = sha
        d["file"] = str(path)
        _say(json.dumps(d, indent=1, sort_keys=True, default=str))
        return EXIT_OK
    size = cfg.preprocess.size
    rows = [
        ("File", str(path)),
        ("Name", cfg.name),
        ("Version", cfg.version),
        ("Architecture", cfg.architecture + (f" {cfg.arch_kwargs}" if cfg.arch_kwargs else "")),
        ("Classes", ", ".join(cfg.class_names)),
        (
            "Input",
            f"{size[0]} x {size[1]}, {cfg.preprocess.interpolation}, {cfg.preprocess.normalization}",
        ),
        ("Temperature", f"{cfg.temperature:g}"),
        ("Confidence threshold", f"{cfg.confidence_threshold:g}"),
        ("Weights", cfg.weights_dtype),
        ("Licence", cfg.licence or "not stated"),
        ("SHA-256", sha),
    ]
    if cfg.description:
        rows.append(("Description", cfg.description))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        _say(f"{k + ':':<{width + 2}}{v}")
    for title, d in (("Metrics", cfg.metrics), ("Provenance", cfg.provenance)):
        _say(f"{title}:" + ("" if d else " none recorded"))
        for k, v in d.items():
            _say(f"  {k}: {json.dumps(v, default=str) if isinstance(v, dict | list) else v}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``octviewer-cli``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help, --version, or a usage error (argparse printed it)
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    _configure_logging(args.verbose_global + args.verbose)
    if args.command in ("analyze", "analyse"):
        return _cmd_analyze(args)
    return _cmd_model_info(args)


if __name__ == "__main__":
    sys.exit(main())
