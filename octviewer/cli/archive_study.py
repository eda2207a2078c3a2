"""One study of ``octviewer-cli archive analyze``: retrieve, analyse each OCT volume, write the
de-identified PNG and PDF reports, and with ``--send`` file the PDF and SR into the study."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octviewer.core.archive.service import Archive
    from octviewer.core.engine import Engine
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan


def _with_heatmap(engine: Engine, scan: Scan, result: ScanResult) -> tuple[ScanResult, int]:
    """The reported frame (the most suspicious) with its heatmap when it is assessed."""
    idx = result.most_suspicious_frame()
    fr = result.frame(idx)
    if fr.assessable and fr.heatmap is None:
        result = result.with_cam(
            idx, engine.heatmap(scan, idx, fr.predicted_index), fr.predicted_index
        )
    return result, idx


def analyse_study(
    archive: Archive, engine: Engine, study_uid: str, args: argparse.Namespace, k: int
) -> list[str]:
    """Console lines of one study (``k`` numbers it in this run; no identifiers in names)."""
    import octviewer
    from octviewer.core.archive.filing import objects_for
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.report import save_report
    from octviewer.core.report.pdf import PrintOptions, page_size, save_report_pdf
    from octviewer.core.summary import result_line

    series = getattr(args, "series", None)
    if series:
        retrieved = archive.retrieve_series(study_uid, series)
    else:
        retrieved = archive.retrieve(study_uid)
    lines = [f"study {k}: {len(retrieved.files)} instance(s) retrieved ({archive.node.retrieve})"]
    to_send = []
    for j, path in enumerate(retrieved.scan_files(), 1):
        scan = octviewer.load(path)
        result = engine.analyze(scan, AnalysisRequest(cam=not scan.is_volume))
        result, idx = _with_heatmap(engine, scan, result)
        stem = args.out / f"study{k:03d}_scan{j:02d}"
        options = PrintOptions(page=page_size(args.page), frame_index=idx)
        save_report(scan, result, stem.with_suffix(".png"), options)
        save_report_pdf(scan, result, stem.with_suffix(".pdf"), options)
        label = f"study {k} scan {j}"
        lines.append(result_line(label, result.frame(idx), scan.n_frames))
        if args.send:
            to_send.extend(objects_for(scan, result, page=page_size(args.page)).datasets)
    if args.send and to_send:
        sent = archive.send(to_send)
        lines.append(f"study {k}: {len(sent)} object(s) filed into the study (PDF + SR)")
    return lines
