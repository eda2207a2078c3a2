"""``octviewer-cli analyze``'s batch: which scans the PATHs hold, and analysing and reporting
each one (a bad input is recorded as a failure and the batch goes on)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from octviewer.cli.common import log
from octviewer.errors import AmbiguousSeriesError, OCTViewerError

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.report.pdf import PrintOptions
    from octviewer.core.result_cache import ResultCache
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan
    from octviewer.core.summary import SummaryRow


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
    from octviewer.core.report.naming import unique_name

    return unique_name(stem, used, ignore_case=True, numbered=True)


def _safe_stem(name: str, is_dir: bool) -> str:
    """A file-system-safe report name from an input name (suffix dropped for files)."""
    from octviewer.core.report.naming import safe_stem

    return safe_stem(name if is_dir else Path(name).stem, strip=True)


@dataclass
class BatchOutcome:
    rows: list[SummaryRow] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # one console line per analysed input


def resolve_cam_class(engine: Engine, name: str | None) -> int | None:
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
    if fr.heatmap is not None:
        return result
    cls = fr.predicted_index if cam_class is None else cam_class
    return result.with_cam(frame, engine.heatmap(scan, frame, cls), cls)


def _console_lines(
    label: str, result: ScanResult, to_report: list[int], n_frames: int
) -> list[str]:
    """The console line of one analysed input (and where its result came from)."""
    from octviewer.core.result_cache import cached_at_text
    from octviewer.core.summary import result_line

    lines = [result_line(label, result.frame(i), n_frames) for i in to_report[:1]]
    if result.scan_reason and len(to_report) == 1:  # the volume as a whole has no class
        lines = [f"{label}: not assessed: {result.scan_reason.removeprefix('Not assessed: ')}"]
    if len(to_report) > 1:
        skipped = len(to_report) - sum(result.frame(i).assessable for i in to_report)
        lines = [f"{label}: {len(to_report)} frames reported, {skipped} not assessed"]
    cached = cached_at_text(result)
    if cached:
        lines = [f"{line} ({cached})" for line in lines]
    return lines


@dataclass(frozen=True)
class BatchRun:
    """What every input of one batch shares: the engine, the command line, the class whose CAM
    is drawn (None: the predicted one), the result cache, and the report names taken so far
    (filled as the batch goes, so that no two reports get the same name)."""

    engine: Engine
    args: argparse.Namespace
    cam_class: int | None = None
    cache: ResultCache | None = None
    used: set[str] = field(default_factory=set)


def analyze_one(
    run: BatchRun, path: Path, series: str | None = None
) -> tuple[list[SummaryRow], list[Path], list[str]]:
    """Load, analyse (or read from ``run.cache``) and report one input: its summary rows,
    reports and console line. Raises OCTViewerError for a bad input."""
    import octviewer
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.presentation import frame_file_part, frame_index
    from octviewer.core.report import redact, save_report, save_report_and_pdf
    from octviewer.core.summary import rows_for_result

    engine, args, cam_class, cache = run.engine, run.args, run.cam_class, run.cache
    scan = octviewer.load(path, series=series)
    chosen = None if args.frame is None else frame_index(args.frame)  # --frame is 1-based
    if chosen is not None and not 0 <= chosen < scan.n_frames:
        raise OCTViewerError(
            f"Frame {args.frame} does not exist: this scan has {scan.n_frames} frame(s) "
            f"(1 to {scan.n_frames}).",
            path=path,
        )
    frames = [chosen] if chosen is not None else None
    is_file_item = series is not None and series.startswith("file:")
    source = series[5:] if is_file_item else path.name
    shown_name = source if args.include_identity else redact(source, scan.identity)
    stem = _unique_stem(_safe_stem(shown_name, path.is_dir() and not is_file_item), run.used)
    # CAMs for every analysed frame only when each gets a report (or there is only one frame).
    cam_all = args.per_frame or chosen is not None or not scan.is_volume

    def compute() -> ScanResult:
        return engine.analyze(
            scan,
            AnalysisRequest(
                frames=frames, cam=cam_all, cam_class=cam_class, batch_size=args.batch_size
            ),
        )

    if cache is None:
        result = compute()
    else:
        result = cache.through(scan, engine, compute, series=series, frames=frames)
    to_report = (
        [f.frame_index for f in result.frames]
        if args.per_frame
        else [chosen if chosen is not None else result.most_suspicious_frame()]
    )
    written: dict[int, str] = {}
    out_paths: list[Path] = []
    for idx in to_report:
        if result.frame(idx).assessable or args.show_unreliable:  # no heatmap drawn otherwise
            result = _with_cam(engine, scan, result, idx, cam_class)
        name = f"{stem}_{frame_file_part(idx)}.png" if scan.is_volume else f"{stem}.png"
        options = _print_options(args, idx)
        if getattr(args, "pdf", False):  # the PDF and its PNG from one rendering of the page
            out, pdf = save_report_and_pdf(scan, result, args.out / name, options)
            out_paths += [out, pdf]
        else:
            out = save_report(scan, result, args.out / name, options)
            out_paths.append(out)
        written[idx] = out.name
    label = str(path) if args.include_identity else redact(str(path), scan.identity)
    lines = _console_lines(label, result, to_report, scan.n_frames)
    protocol = scan.metadata.protocol
    rows = rows_for_result(
        label,
        result,
        scan.n_frames,
        written,
        show_unreliable=args.show_unreliable,
        protocol=protocol.description if protocol.is_stated else "",
    )
    return rows, out_paths, lines


def run_batch(
    engine: Engine,
    inputs: Sequence[Path | tuple[Path, str]],
    args: argparse.Namespace,
    cam_class: int | None,
    cache: ResultCache | None = None,
) -> BatchOutcome:
    from tqdm import tqdm

    from octviewer.core.summary import failed_row

    outcome = BatchOutcome()
    run = BatchRun(engine, args, cam_class, cache)
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
            rows, reports, lines = analyze_one(run, path, series=series)
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


def _print_options(args: argparse.Namespace, idx: int) -> PrintOptions:
    """The report page of frame ``idx`` as the command line asks for it (PNG and ``--pdf``)."""
    from octviewer.core.report.pdf import PrintOptions, page_size

    return PrintOptions(
        page=page_size(getattr(args, "page", "A4")),
        frame_index=idx,
        include_identity=args.include_identity,
        show_unreliable=args.show_unreliable,
        colormap=args.colormap,
        opacity=args.opacity,
        contours=args.contour_levels,
    )
