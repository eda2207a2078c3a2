"""The argument parser of ``octviewer-cli`` (declarative: every option and its help)."""

from __future__ import annotations

import argparse
from pathlib import Path

from octviewer._version import __version__
from octviewer.core.overlay import COLORMAPS, DEFAULT_COLORMAP, DEFAULT_OPACITY
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER


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

    add_analyze_parser(sub)
    add_model_info_parser(sub)
    from octviewer.cli.archive_parser import add_archive_parser

    add_archive_parser(sub, _model_arg)
    return p


def add_analyze_parser(sub: argparse._SubParsersAction) -> None:
    """``octviewer-cli analyze``: its options, in four groups."""
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
    add_analyze_input_arguments(a)
    add_compute_arguments(a)
    add_report_look_arguments(a)
    add_printing_arguments(a)


def add_model_info_parser(sub: argparse._SubParsersAction) -> None:
    """``octviewer-cli model-info``."""
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


def add_analyze_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``analyze``: what to read and which frames to report."""
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="scan files or folders")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    _model_arg(parser)
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("octviewer-reports"),
        help="output folder (default: ./octviewer-reports)",
    )
    parser.add_argument(
        "--per-frame",
        action="store_true",
        help="one report per frame of a volume (each with its heatmap)",
    )
    parser.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="analyse and report only frame N of each scan (1 = the first frame, as the viewer "
        "and the reports count; the summary's frame_index is N - 1)",
    )
    parser.add_argument(
        "--cam-class",
        metavar="NAME",
        help="class whose heatmap is drawn (default: the predicted class of each frame)",
    )


def add_compute_arguments(parser: argparse.ArgumentParser) -> None:
    """``analyze``: where and how the model computes."""
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="compute device (default: auto = CUDA, then Apple MPS, then CPU)",
    )
    parser.add_argument(
        "--int8",
        action="store_const",
        const=True,
        default=None,
        help="CPU fast path: int8 convolutions for CNN ensembles whose bundle has an int8 "
        "calibration (octviewer-train int8), else dynamic int8 Linear layers. Default: int8 "
        "when the bundle was validated in int8 for this CPU (octviewer-train validate)",
    )
    parser.add_argument(
        "--no-int8",
        dest="int8",
        action="store_const",
        const=False,
        help="never int8, even for a bundle validated in it (bf16 or fp32 as --precision says)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32"),
        default="auto",
        help="auto (default): bf16 arithmetic on GPUs and on CPUs with native bf16 "
        "(AVX512-BF16/AMX); fp32: full precision everywhere",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for inference (default: engine's choice)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        metavar="N",
        help="frames per forward pass (default: 8)",
    )


def add_report_look_arguments(parser: argparse.ArgumentParser) -> None:
    """``analyze``: what the reports and the summary show."""
    parser.add_argument(
        "--include-identity",
        action="store_true",
        help="print patient name/ID/birth date/sex in the reports (left out by default)",
    )
    parser.add_argument(
        "--summary",
        choices=("csv", "json", "both", "none"),
        default="both",
        help="summary file(s) written to the output folder (default: both)",
    )
    parser.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="treat every file inside given folders (and their subfolders) as its own scan",
    )
    parser.add_argument(
        "--colormap",
        choices=COLORMAPS,
        default=DEFAULT_COLORMAP,
        help=f"heatmap colours (default: {DEFAULT_COLORMAP})",
    )
    parser.add_argument(
        "--opacity",
        type=float,
        default=DEFAULT_OPACITY,
        help=f"heatmap opacity, 0..1 (default: {DEFAULT_OPACITY})",
    )
    parser.add_argument(
        "--show-unreliable",
        action="store_true",
        help="in reports of frames that are not assessed, draw the model's probabilities and "
        "heatmap anyway, marked unreliable (left out by default)",
    )


def add_printing_arguments(parser: argparse.ArgumentParser) -> None:
    """``analyze``: the printable page, the result cache and the progress bar."""
    parser.add_argument(
        "--pdf",
        action="store_true",
        help="also write each report as a printable one-page PDF (vector, fonts embedded) "
        "next to its PNG",
    )
    parser.add_argument(
        "--page-png",
        action="store_true",
        help="deprecated, does nothing: the PNG report is the printable page (200 dpi)",
    )
    parser.add_argument(
        "--page",
        choices=("a4", "letter"),
        default="a4",
        type=str.lower,
        help="page size of the report, PNG and --pdf (default: a4 portrait)",
    )
    parser.add_argument(
        "--contours",
        default="",
        metavar="LEVELS",
        help="heatmap contour lines at these attention levels, e.g. 0.5,0.8 (default: none)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="analyse anew instead of reading results computed before from the result cache "
        "(and do not store them); the cache: docs/CACHE.md",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m",
        "--model",
        type=Path,
        metavar="BUNDLE",
        help="model bundle (.safetensors); default: the bundled default model",
    )
