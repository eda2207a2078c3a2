"""The viewer's background work, without Qt: loading a model, analysing a scan, writing reports.

Each function here is the body of one job the controller submits (:mod:`octviewer.viewer.jobs`):
:func:`make_engine` (the model job), :func:`analyse_entry` (an analysis, through the result
cache), :class:`ReportJob` and :func:`write_reports` (one report or all of them, with
everything copied so a worker thread can write them while the entry changes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.viewer.jobs import JobContext
from octviewer.viewer.residency import read_scan

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.heatmap import Heatmap
    from octviewer.core.result_cache import ResultCache
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan
    from octviewer.viewer.entry import ScanEntry


def make_engine(bundle: Path, device: str, precision: str) -> Engine:
    """Load a model bundle (a model job; torch is imported here, not at start-up).
    ``precision``: "auto" (bf16 where native) or "fp32", with "+int8" for int8 arithmetic on
    the CPU (``Engine(quantize=True)``; a GPU ignores it and keeps the first part), "+noint8"
    for never int8, nothing for int8 when the bundle was validated in it (``quantize=None``)."""
    from octviewer.core.engine import Engine

    base, _, int8 = precision.partition("+")
    quantize = {"int8": True, "noint8": False}.get(int8)
    return Engine(bundle, device=device, precision=base, quantize=quantize)


def analyse(
    engine: Engine,
    scan: Scan,
    ctx: JobContext,
    cache: ResultCache | None = None,
    series: str | None = None,
    lookup: bool = True,
) -> ScanResult:
    """The viewer's analysis of a scan. B-scan: prediction and CAM in one pass. Volume:
    predictions for every frame (the mirrored view only where it can change the answer,
    core/volume_rule.py), then the CAM of the frame on screen on request (request_cam).
    ``ctx``: the job's progress and cancel flag. With a ``cache``: its result when it has
    one (``lookup``), else the engine's, stored."""
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.volume_rule import VolumeShortcut

    def compute() -> ScanResult:
        return engine.analyze(
            scan,
            AnalysisRequest(
                cam=not scan.is_volume, shortcut=VolumeShortcut() if scan.is_volume else None
            ),
            progress=ctx.progress,
            cancel=ctx.cancelled,
        )

    if cache is None:
        return compute()
    return cache.through(scan, engine, compute, series=series, lookup=lookup)


def analyse_entry(
    engine: Engine,
    scan: Scan | None,
    source: tuple[Path, str | None],
    ctx: JobContext,
    cache: ResultCache | None = None,
    lookup: bool = True,
) -> ScanResult:
    """The analysis job: a released scan (``scan`` None, e.g. analysed again by a new model)
    is read again from ``source`` (path, series) for the analysis and released after it.
    With a ``cache``: its result when it has one (``lookup``), else the engine's, stored."""
    if scan is None:
        scan, _header = read_scan(*source)
    return analyse(engine, scan, ctx, cache, source[1], lookup)


def default_report_name(entry: ScanEntry, frame: int) -> str:
    """``<file stem>[_frameN]_<class>_report.png``: from the file name, never the patient's name."""
    from octviewer.core.presentation import frame_file_part
    from octviewer.core.report.naming import safe_stem

    parts = [safe_stem(entry.path.stem if entry.path.suffix else entry.path.name, max_len=60)]
    if entry.is_volume:
        parts.append(frame_file_part(frame))
    if entry.result is not None:
        with contextlib.suppress(KeyError):
            parts.append(entry.result.frame(frame).presented_class or "not-assessed")
    return "_".join(parts) + "_report.png"


def export_plan(entries: Iterable[ScanEntry], directory: Path) -> list[tuple[ScanEntry, int, Path]]:
    """Export all: each analysed entry, the frame its report shows (the most suspicious one of
    a volume) and its file in ``directory`` (a clash gets ``_`` before ``.png``)."""
    from octviewer.core.report.naming import unique_name

    plan = []
    used: set[str] = set()
    for e in entries:
        if e.result is None or not e.opened:
            continue
        frame = (
            e.result.most_suspicious_frame()
            if len(e.result.frames) > 1
            else e.result.frames[0].frame_index
        )
        plan.append((e, frame, directory / unique_name(default_report_name(e, frame), used)))
    return plan


def write_reports(
    jobs: list[ReportJob], cancelled: Callable[[], bool], progress: Callable[[int, int], None]
) -> list[Path]:
    """Write ``jobs`` in order until ``cancelled()``; return the files written."""
    written = []
    for i, job in enumerate(jobs):
        if cancelled():
            break
        written.append(job.run())
        progress(i + 1, len(jobs))
    return written


@dataclass(frozen=True)
class ReportOptions:
    """How a report is drawn: the heatmap of ``class_index`` (None: the predicted class),
    the patient's identifiers or not, a not-assessed frame's output drawn anyway
    (``show_unreliable``), and ``look``: the heatmap as the window shows it (colormap,
    opacity, contours: ViewState.overlay_look)."""

    class_index: int | None = None
    include_identity: bool = False
    show_unreliable: bool = False
    look: dict[str, Any] | None = None


DEFAULT_REPORT = ReportOptions()


@dataclass(frozen=True)
class ReportJob:
    """One PNG report, with the scan, result, engine and cached heatmaps taken when it was
    asked for (the entry may change or close while a worker writes it). A released scan
    (``scan`` None) is read again from ``source`` (path, series, checksum) by the worker."""

    scan: Scan | None
    result: ScanResult
    engine: Engine | None
    cams: dict[tuple[int, int], Heatmap]
    frame: int
    path: Path
    options: ReportOptions = DEFAULT_REPORT
    source: tuple[Path, str | None, int] | None = None

    @classmethod
    def of(
        cls,
        entry: ScanEntry,
        engine: Engine | None,
        frame: int,
        path: Path,
        options: ReportOptions = DEFAULT_REPORT,
    ) -> ReportJob:
        """The report of ``entry``'s ``frame``, drawn as ``options`` say."""
        assert entry.opened and entry.result is not None
        h = entry.header
        source = None if h is None else (entry.path, entry.series, h.checksum)
        return cls(entry.scan, entry.result, engine, dict(entry.cams), frame, path, options, source)

    def _read(self) -> Scan:
        """The scan: as taken, or read again (refused when the file changed since)."""
        if self.scan is not None:
            return self.scan
        from octviewer.errors import ReportError

        assert self.source is not None
        path, series, checksum = self.source
        scan, header = read_scan(path, series)
        if header.checksum != checksum:
            raise ReportError(
                f"{path.name} changed since it was analysed, so its result no longer describes "
                "it. Show it to analyse it again, then write its report."
            )
        return scan

    def run(self) -> Path:
        """Write the report (computing the frame's heatmap when none is cached)."""
        from octviewer.core.report import save_report

        scan = self._read()
        fr = self.result.frame(self.frame)
        opts = self.options
        cls = fr.predicted_index if opts.class_index is None else opts.class_index
        cam = self.cams.get((self.frame, cls))
        drawn = fr.assessable or opts.show_unreliable  # no heatmap for a frame not assessed
        if cam is None and self.engine is not None and drawn:
            cam = self.engine.heatmap(scan, self.frame, cls)
        look = dict(opts.look or {})
        page = str(look.pop("page", "A4"))  # the report page's size (PDF and PNG)
        result = self.result.with_cam(self.frame, cam, cls)
        from octviewer.core.report.pdf import PrintOptions, page_size, save_report_pdf

        options = PrintOptions(
            page=page_size(page),
            frame_index=self.frame,
            include_identity=opts.include_identity,
            show_unreliable=opts.show_unreliable,
            **look,
        )
        if self.path.suffix.lower() == ".pdf":
            return save_report_pdf(scan, result, self.path, options)
        return save_report(scan, result, self.path, options)
