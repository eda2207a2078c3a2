"""``octviewer --self-test``: prove that an installed or frozen octviewer really works.

Needs no display. It loads the bundled model (or ``--model``), opens every sample scan in
``resources/samples`` (or ``--samples``), analyses each one with the Grad-CAM, renders a report
into a temporary folder and checks the results. It also writes a JPEG-lossless, a JPEG 2000
and an RLE DICOM file from real sample pixels and opens them, so a packaged app that lost its
pylibjpeg decoders fails here instead of in a clinic. The last line on stdout is::

    self-test: OK 5 scans, 5 reports, device=cpu, model=<name> <sha12>, 3.2 s

and the exit status is 0 (all checks passed) or 1 (anything failed; each failure is logged).

Optional ``expected.json`` in the samples folder says what a sample should do, by file name::

    {"raw_data.dcm": {"error": "NoPixelDataError"}, "fundus.dcm": {"not_oct": true}}

Without an entry a sample must load and be analysed; whatever its modality, ``NOT_OCT`` must be
flagged exactly when the reader says the scan is not an OCT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.core.device import prepare_environment
from octviewer.errors import OCTViewerError
from octviewer.resources import NOT_SCANS, sample_scans
from octviewer.selftest.checks import (
    REPORT_CHUNKS,
    analyse_case,
    check_int8,
    check_protocol_gate,
    torch_info,
)
from octviewer.selftest.dicoms import (
    DECODED_LABELS,
    JPEG_LOSSLESS_SV1,
    OPHTHALMIC_PHOTOGRAPHY_8BIT,
    OPHTHALMIC_TOMOGRAPHY,
    check_decoders,
    small_copy,
    synthetic_bscan,
    write_test_dicoms,
)
from octviewer.selftest.jpeg_lossless import encode_jpeg_lossless
from octviewer.selftest.outcome import CaseOutcome, SelfTestRun

__all__ = [
    "DECODED_LABELS",
    "EXPECTED_FILE",
    "JPEG_LOSSLESS_SV1",
    "MODEL_ENV",
    "NOT_SCANS",
    "OPHTHALMIC_PHOTOGRAPHY_8BIT",
    "OPHTHALMIC_TOMOGRAPHY",
    "REPORT_CHUNKS",
    "CaseOutcome",
    "SelfTestRun",
    "analyse_case",
    "check_decoders",
    "encode_jpeg_lossless",
    "find_samples",
    "main",
    "run_selftest",
    "synthetic_bscan",
    "torch_info",
    "write_test_dicoms",
]

log = logging.getLogger(__name__)

MODEL_ENV = "OCTVIEWER_MODEL"
EXPECTED_FILE = "expected.json"


# --- driver ----------------------------------------------------------------------------------
def find_samples(folder: Path) -> tuple[list[Path], dict[str, dict[str, Any]]]:
    """The sample scans in ``folder`` (files and sub-folders) and its ``expected.json``."""
    expected: dict[str, dict[str, Any]] = {}
    manifest = folder / EXPECTED_FILE
    if manifest.is_file():
        expected = json.loads(manifest.read_text(encoding="utf-8"))
    samples = sample_scans(folder)
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_file() and not p.name.startswith(".") and p not in samples:
            log.info("self-test: %s is documentation, not a scan: not analysed", p.name)
    return samples, expected


def _model_path(arg: str | None) -> Path:
    from octviewer.resources import default_model_path

    if arg:
        return Path(arg)
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    return default_model_path()


def run_selftest(
    model: Path, samples_dir: Path, out_dir: Path, *, device: str = "auto", decoders: bool = True
) -> SelfTestRun:
    """Run every check; never raises for an expected failure (it is recorded in the run)."""
    run = SelfTestRun()
    if not model.is_file():
        run.fail(
            f"no bundled model: {model} does not exist. Rebuild the app with a model in "
            f"resources/models/, or pass --model BUNDLE (or set {MODEL_ENV})."
        )
        return run
    from octviewer.core.engine import Engine

    try:
        engine = Engine(model, device=device)
    except OCTViewerError as exc:
        run.fail(f"the model {model.name} could not be loaded: {exc}")
        return run
    except Exception as exc:
        log.exception("self-test: unexpected error loading the model")
        run.fail(f"unexpected error loading the model {model.name}: {type(exc).__name__}: {exc}")
        return run
    run.device = engine.device
    run.torch_info = torch_info()
    run.model = f"{engine.identity.name} {engine.identity.short_sha}"
    log.info("self-test: model %s on %s", engine.identity, engine.device)
    from octviewer.resources import default_model_path

    if engine.ood is None and model.resolve() == default_model_path().resolve():
        run.fail("the bundled default model carries no out-of-distribution statistics")

    samples, expected = find_samples(samples_dir)
    if not samples:
        run.fail(f"no sample scans found in {samples_dir}")
    source: np.ndarray | None = None
    first_oct = None
    for path in samples:
        case = CaseOutcome(path.name)
        run.cases.append(case)
        scan = analyse_case(path, engine, out_dir, case, expected.get(path.name, {}))
        if source is None and scan is not None and scan.is_oct:
            source, first_oct = small_copy(scan.frame_as_uint8(0)), scan
    check_int8(model, engine, first_oct, run)
    check_protocol_gate(engine, run)
    if decoders:
        if source is None:
            log.warning("self-test: no OCT sample loaded; generated DICOMs use a test pattern")
            source = synthetic_bscan()
        run.decoders_checked = True
        from octviewer.selftest_readers import ReaderOutcome

        for path, is_oct in check_decoders(source, out_dir / "dicom", run):
            case = CaseOutcome(path.name)
            run.cases.append(case)
            analyse_case(path, engine, out_dir, case, {} if is_oct else {"not_oct": True})
            label = DECODED_LABELS.get(path.stem, path.stem)
            run.readers.append(ReaderOutcome(label, case.loaded, "; ".join(case.failures)))
    else:
        log.warning("self-test: compressed-DICOM decoder check NOT run (--skip-decoders)")
    from octviewer.selftest_readers import check_readers

    checked = check_readers(source, out_dir / "readers")
    run.readers = checked + run.readers  # + the compressed DICOMs decoded above
    for r in checked:
        if r.ok:
            log.info("self-test: reader %s: %s", r.label, r.detail)
        else:
            run.fail(f"reader {r.label}: {r.detail}")
    if not any(c.not_oct_flagged for c in run.cases):
        run.fail("no non-OCT scan was analysed and flagged NOT_OCT: that check did not run")
    from octviewer.core.archive.credentials import keyring_backend

    _usable, run.keyring = keyring_backend()  # reported, never a failure: none is allowed
    log.info("self-test: keyring %s", run.keyring)
    return run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="octviewer --self-test",
        description="Check that this octviewer installation works: load the model, analyse "
        "the sample scans, render reports, decode compressed DICOM. No display needed.",
    )
    p.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=f"model bundle (default: ${MODEL_ENV} or the bundled model)")
    p.add_argument("--samples", help="folder of scans to analyse (default: the bundled samples)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--keep", metavar="DIR", help="write the reports here instead of a temp folder")
    p.add_argument("--json", metavar="FILE", help="also write the detailed results as JSON")
    p.add_argument(
        "--skip-decoders",
        action="store_true",
        help="do not check the JPEG-lossless / JPEG 2000 / RLE DICOM decoders (says so)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every step")
    return p


def _emit(line: str) -> None:
    stream = sys.stdout or sys.stderr  # a windowed Windows app has neither
    if stream is not None:
        stream.write(line + "\n")
        stream.flush()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``octviewer --self-test``: returns 0 when every check passed, else 1."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help or a usage error
        return int(exc.code or 0)
    if not logging.getLogger().handlers and sys.stderr is not None:
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
    from octviewer.resources import samples_dir

    prepare_environment()  # also done by the dispatcher; here for direct callers (tests, scripts)
    t0 = time.perf_counter()
    samples = Path(args.samples) if args.samples else samples_dir()
    try:
        with tempfile.TemporaryDirectory(prefix="octviewer-selftest-") as tmp:
            out = Path(args.keep) if args.keep else Path(tmp)
            out.mkdir(parents=True, exist_ok=True)
            run = run_selftest(
                _model_path(args.model),
                samples,
                out,
                device=args.device,
                decoders=not args.skip_decoders,
            )
    except Exception as exc:  # a self-test must report, never crash
        log.exception("self-test: unexpected error")
        run = SelfTestRun()
        run.fail(f"unexpected error: {type(exc).__name__}: {exc}")
    run.elapsed_s = time.perf_counter() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(run.to_json(), indent=1), encoding="utf-8")
    if run.readers:
        _emit(run.readers_line())
    if run.keyring:
        _emit(f"self-test: keyring {run.keyring}")
    _emit(run.summary())
    return 0 if run.ok else 1
