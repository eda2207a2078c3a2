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
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer._version import __version__
from octviewer.errors import OCTViewerError

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.scan import Scan

log = logging.getLogger(__name__)

MODEL_ENV = "OCTVIEWER_MODEL"
EXPECTED_FILE = "expected.json"
NOT_SCANS = {".md", ".txt", ".json", ".csv", ".rst", ".license", ".html"}
REPORT_CHUNKS = (
    "octviewer:version",
    "octviewer:model",
    "octviewer:model_sha256",
    "octviewer:result",
    "octviewer:disclaimer",
)
# DICOM transfer syntaxes whose decoders the packaged app must carry (pydicom plugin names).
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
OPHTHALMIC_PHOTOGRAPHY_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
OPHTHALMIC_TOMOGRAPHY = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
DECODED_LABELS = {
    "generated_jpeg_lossless_photo": "DICOM JPEG lossless",
    "generated_jpeg2000_oct": "DICOM JPEG 2000 lossless",
    "generated_rle_oct": "DICOM RLE lossless",
}


@dataclass
class CaseOutcome:
    """What happened to one scan (a sample or a generated DICOM)."""

    name: str
    loaded: bool = False
    analysed: bool = False
    report: Path | None = None
    not_oct_flagged: bool = False  # a non-OCT scan that the engine flagged NOT_OCT
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        log.error("self-test: %s: %s", self.name, message)


@dataclass
class SelfTestRun:
    """Everything the self-test found; ``ok`` when nothing failed."""

    cases: list[CaseOutcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    device: str = "?"
    model: str = "none"
    elapsed_s: float = 0.0
    decoders_checked: bool = False
    torch_info: dict[str, Any] = field(default_factory=dict)
    readers: list[Any] = field(default_factory=list)  # selftest_readers.ReaderOutcome

    def readers_line(self) -> str:
        """One line naming every reader checked (the summary line stays as it was)."""
        good = [r.label for r in self.readers if r.ok]
        bad = [r.label for r in self.readers if not r.ok]
        return (
            f"self-test: readers {len(good)}/{len(self.readers)} open: "
            + ", ".join(good)
            + (f"; FAILED: {', '.join(bad)}" if bad else "")
        )

    @property
    def ok(self) -> bool:
        return not self.failures and all(not c.failures for c in self.cases)

    @property
    def n_scans(self) -> int:
        return sum(c.analysed for c in self.cases)

    @property
    def n_reports(self) -> int:
        return sum(c.report is not None for c in self.cases)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        log.error("self-test: %s", message)

    def summary(self) -> str:
        status = "OK" if self.ok else "FAILED"
        n_fail = len(self.failures) + sum(len(c.failures) for c in self.cases)
        tail = "" if self.ok else f", {n_fail} failure(s)"
        if not self.decoders_checked:
            tail += ", compressed-DICOM decoders NOT checked"
        return (
            f"self-test: {status} {self.n_scans} scans, {self.n_reports} reports, "
            f"device={self.device}, model={self.model}, {self.elapsed_s:.1f} s{tail}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "version": __version__,
            "device": self.device,
            "model": self.model,
            "elapsed_s": round(self.elapsed_s, 3),
            "torch": self.torch_info,
            "failures": self.failures,
            "readers": [dataclasses.asdict(r) for r in self.readers],
            "cases": [
                {
                    "name": c.name,
                    "loaded": c.loaded,
                    "analysed": c.analysed,
                    "report": str(c.report) if c.report else None,
                    "failures": c.failures,
                    "notes": c.notes,
                }
                for c in self.cases
            ],
        }


# --- generated DICOM files: prove the pylibjpeg decoders are in the (frozen) app -------------
def encode_jpeg_lossless(image: np.ndarray) -> bytes:
    """A baseline-free JPEG Lossless (process 14, first-order predictor 1) codestream.

    Pure Python/NumPy, so the self-test can make a JPEG-lossless DICOM without any encoder
    package (none of pydicom's encoders writes this syntax). 8-bit grayscale only.
    """
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError("encode_jpeg_lossless expects a 2-D uint8 image")
    rows, cols = image.shape
    x = image.astype(np.int32)
    pred = np.empty_like(x)
    pred[0, 0] = 128  # 2 ** (precision - 1)
    pred[0, 1:] = x[0, :-1]  # first line: the sample to the left
    pred[1:, 0] = x[:-1, 0]  # first column: the sample above
    pred[1:, 1:] = x[1:, :-1]  # predictor 1 (Ra) everywhere else
    diff = (x - pred).ravel()
    ssss = np.where(diff == 0, 0, np.floor(np.log2(np.abs(diff) + 0.5)).astype(np.int32) + 1)
    extra = np.where(diff >= 0, diff, diff + (1 << ssss) - 1)
    # Huffman table: categories 0..8, each a 4-bit code equal to the category (canonical order).
    acc = 0
    nbits = 0
    out = bytearray()
    for cat, bits in zip(ssss.tolist(), extra.tolist(), strict=True):
        acc = (acc << (4 + cat)) | (cat << cat) | (bits & ((1 << cat) - 1))
        nbits += 4 + cat
        while nbits >= 8:
            nbits -= 8
            byte = (acc >> nbits) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0x00)  # byte stuffing
        acc &= (1 << nbits) - 1
    if nbits:
        byte = ((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xFF  # pad with 1 bits
        out.append(byte)
        if byte == 0xFF:
            out.append(0x00)
    n_symbols = 9
    counts = [0] * 16
    counts[3] = n_symbols  # nine codes of length 4
    sof = bytes([0xFF, 0xC3, 0, 11, 8]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big")
    sof += bytes([1, 1, 0x11, 0])
    dht = bytes([0xFF, 0xC4]) + (3 + 16 + n_symbols).to_bytes(2, "big") + bytes([0x00])
    dht += bytes(counts) + bytes(range(n_symbols))
    sos = bytes([0xFF, 0xDA, 0, 8, 1, 1, 0x00, 1, 0, 0])  # Ss=1 predictor, Se=0, Ah/Al=0
    return b"\xff\xd8" + sof + dht + sos + bytes(out) + b"\xff\xd9"


def _base_dataset(pixels: np.ndarray, sop_class: str, transfer_syntax: str) -> Any:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OPT" if sop_class == OPHTHALMIC_TOMOGRAPHY else "OP"
    ds.PatientName = "SELFTEST^GENERATED"
    ds.PatientID = "SELFTEST"
    ds.Manufacturer = "octviewer self-test"
    ds.ImageLaterality = "R"
    ds.Rows, ds.Columns = (int(v) for v in pixels.shape)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if sop_class == OPHTHALMIC_TOMOGRAPHY:
        ds.NumberOfFrames = 1
    return ds


def write_test_dicoms(pixels: np.ndarray, folder: Path) -> dict[str, tuple[Path, str, bool]]:
    """Write compressed DICOM files of ``pixels`` (uint8 2-D) into ``folder``.

    Returns ``{label: (path, pydicom decoding plugin that must decode it, is_oct)}``: a JPEG
    Lossless Ophthalmic Photography file (not an OCT: the engine must flag it), a JPEG 2000
    Lossless and an RLE Lossless Ophthalmic Tomography file.
    """
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, RLELossless

    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, tuple[Path, str, bool]] = {}

    ds = _base_dataset(pixels, OPHTHALMIC_PHOTOGRAPHY_8BIT, JPEG_LOSSLESS_SV1)
    ds.PixelData = encapsulate([encode_jpeg_lossless(pixels)])
    ds["PixelData"].VR = "OB"
    path = folder / "generated_jpeg_lossless_photo.dcm"
    ds.save_as(path, enforce_file_format=True)
    made["jpeg-lossless"] = (path, "pylibjpeg", False)

    for label, syntax in (("jpeg2000", JPEG2000Lossless), ("rle", RLELossless)):
        ds = _base_dataset(pixels, OPHTHALMIC_TOMOGRAPHY, "1.2.840.10008.1.2.1")
        ds.compress(syntax, pixels, encoding_plugin="pylibjpeg" if label == "jpeg2000" else "")
        path = folder / f"generated_{label}_oct.dcm"
        ds.save_as(path, enforce_file_format=True)
        made[label] = (path, "pylibjpeg", True)
    return made


def check_decoders(pixels: np.ndarray, folder: Path, run: SelfTestRun) -> list[tuple[Path, bool]]:
    """Decode each generated file with the pylibjpeg plugin; return the files that decoded."""
    from pydicom.pixels import pixel_array

    try:
        made = write_test_dicoms(pixels, folder)
    except Exception as exc:  # an encoder missing from the bundle is a packaging failure
        log.exception("self-test: could not write the test DICOM files")
        run.fail(f"could not write the generated DICOM files: {exc}")
        return []
    good: list[tuple[Path, bool]] = []
    for label, (path, plugin, is_oct) in made.items():
        try:
            arr = pixel_array(path, decoding_plugin=plugin)
        except Exception as exc:
            log.exception("self-test: decoding %s failed", label)
            run.fail(f"{label} DICOM: the {plugin} decoder failed or is missing ({exc})")
            continue
        if arr.shape != pixels.shape or not np.array_equal(arr, pixels):
            run.fail(f"{label} DICOM: lossless decode differs from the original pixels")
            continue
        log.info("self-test: %s DICOM decoded exactly by %s", label, plugin)
        good.append((path, is_oct))
    return good


def synthetic_bscan(rows: int = 128, cols: int = 192) -> np.ndarray:
    """Layered test pattern, used only when no sample scan could be loaded."""
    rng = np.random.default_rng(0)
    depth = np.linspace(0, 1, rows)[:, None]
    layers = 120 * np.exp(-(((depth - 0.45) / 0.05) ** 2)) + 80 * np.exp(
        -(((depth - 0.6) / 0.03) ** 2)
    )
    img = layers + 20 * rng.random((rows, cols))
    return np.clip(img, 0, 255).astype(np.uint8)


def _small_copy(frame_u8: np.ndarray, max_side: int = 256) -> np.ndarray:
    step = max(1, int(np.ceil(max(frame_u8.shape) / max_side)))
    return np.ascontiguousarray(frame_u8[::step, ::step])


# --- the checks on one scan ------------------------------------------------------------------
def torch_info() -> dict[str, Any]:
    """Which torch the app carries and whether it sees a GPU (for the JSON report)."""
    import torch

    info: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        info["cudnn"] = torch.backends.cudnn.version() if torch.version.cuda else None
    except Exception as exc:  # a GPU build whose cuDNN did not load: worth seeing, not fatal
        info["cudnn"] = f"error: {exc}"
    if info["cuda_available"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _check_result(scan: Scan, result: Any, engine: Engine, case: CaseOutcome) -> None:
    from octviewer.core.results import ResultFlag

    n_classes = engine.config.num_classes
    if len(result.frames) != scan.n_frames:
        case.fail(f"{len(result.frames)} frame results for {scan.n_frames} frames")
    for fr in result.frames:
        p = np.asarray(fr.probabilities, dtype=np.float64)
        if p.shape != (n_classes,) or not np.all(np.isfinite(p)):
            case.fail(
                f"frame {fr.frame_index}: probabilities {p!r} are not {n_classes} finite numbers"
            )
        elif abs(p.sum() - 1.0) > 1e-3 or p.min() < 0 or p.max() > 1:
            case.fail(f"frame {fr.frame_index}: probabilities sum to {p.sum():.6f}, not 1")
        flagged = ResultFlag.NOT_OCT in fr.flags
        case.not_oct_flagged |= flagged and not scan.is_oct
        if flagged != (not scan.is_oct):
            case.fail(
                f"frame {fr.frame_index}: NOT_OCT flag is {flagged} but the scan's modality is "
                f"{scan.metadata.modality.value}"
            )
        if flagged and (fr.assessable or fr.presented_class is not None):
            case.fail(f"frame {fr.frame_index}: flagged NOT_OCT but presented as a class")
        if engine.ood is not None and not (fr.ood_score is not None and np.isfinite(fr.ood_score)):
            case.fail(f"frame {fr.frame_index}: no out-of-distribution score ({fr.ood_score!r})")


def _check_cam(cam: Any, scan: Scan, case: CaseOutcome, frame: int) -> None:
    if cam is None:
        case.fail(f"frame {frame}: no CAM although one was requested")
        return
    cam = np.asarray(cam)
    if cam.shape != scan.shape:
        case.fail(f"frame {frame}: CAM shape {cam.shape} is not the frame grid {scan.shape}")
    elif not np.issubdtype(cam.dtype, np.floating) or not np.all(np.isfinite(cam)):
        case.fail(f"frame {frame}: CAM is not finite floating point ({cam.dtype})")
    elif cam.min() < 0 or cam.max() > 1 + 1e-6:
        case.fail(f"frame {frame}: CAM outside [0, 1] ({cam.min():.3g}..{cam.max():.3g})")


def _check_report(path: Path, engine: Engine, case: CaseOutcome) -> None:
    from PIL import Image

    if not path.is_file() or path.stat().st_size == 0:
        case.fail(f"report {path.name} was not written")
        return
    with Image.open(path) as im:
        im.load()
        chunks = dict(getattr(im, "text", {}) or {})
        if im.format != "PNG":
            case.fail(f"report {path.name} is {im.format}, not PNG")
    missing = [k for k in REPORT_CHUNKS if not chunks.get(k)]
    if missing:
        case.fail(f"report {path.name} lacks text chunks {missing}")
        return
    if chunks["octviewer:model_sha256"] != engine.identity.sha256:
        case.fail(f"report {path.name} names model sha256 {chunks['octviewer:model_sha256'][:12]}")
    if chunks["octviewer:version"] != __version__:
        case.fail(f"report {path.name} names version {chunks['octviewer:version']}")
    try:
        record = json.loads(chunks["octviewer:result"])
    except ValueError:
        case.fail(f"report {path.name}: octviewer:result is not JSON")
        return
    if "NOT_OCT" in record.get("flags", ()) and (
        record.get("assessable") is not False or record.get("class") is not None
    ):
        case.fail(f"report {path.name}: a non-OCT frame is reported with a class")


def analyse_case(
    path: Path, engine: Engine, out_dir: Path, case: CaseOutcome, expect: dict[str, Any]
) -> Scan | None:
    """Load, analyse (with CAM), check and report one scan. Returns the scan when it loaded."""
    from octviewer.core.io import load
    from octviewer.core.report import save_report

    want_error = expect.get("error")
    try:
        scan = load(path)
    except OCTViewerError as exc:
        names = {c.__name__ for c in type(exc).__mro__}
        if want_error and want_error in names:
            case.notes.append(f"failed as expected: {type(exc).__name__}: {exc}")
            log.info("self-test: %s failed as expected (%s)", case.name, type(exc).__name__)
        else:
            case.fail(f"could not be opened: {type(exc).__name__}: {exc}")
        return None
    except Exception as exc:  # a reader bug: record it, go on with the other samples
        log.exception("self-test: unexpected error opening %s", case.name)
        case.fail(f"unexpected error while opening: {type(exc).__name__}: {exc}")
        return None
    case.loaded = True
    if want_error:
        case.fail(f"opened although {want_error} was expected")
    if expect.get("not_oct") and scan.is_oct:
        case.fail("is a non-OCT sample but was read as an OCT")
    try:
        if scan.is_volume:  # the viewer's way: predictions for all, the CAM for the shown frame
            result = engine.analyze(scan, cam=False)
            k = result.most_suspicious_frame()
            fr = result.frame(k)
            cam = engine.cam(scan, k, fr.predicted_index)
            frames = tuple(
                dataclasses.replace(f, cam=cam, cam_class=fr.predicted_index) if f is fr else f
                for f in result.frames
            )
            result = dataclasses.replace(result, frames=frames)
        else:
            result = engine.analyze(scan, cam=True)
            k = result.frames[0].frame_index
        case.analysed = True
        _check_result(scan, result, engine, case)
        _check_cam(result.frame(k).cam, scan, case, k)
        report = out_dir / f"{len(list(out_dir.glob('*.png'))):02d}_{path.stem}.png"
        save_report(scan, result, report, frame_index=k)
        case.report = report
        _check_report(report, engine, case)
        top = result.frame(k)
        answer = f"{top.predicted_class} {top.confidence:.2f}" if top.assessable else "not assessed"
        case.notes.append(f"frame {k}: {answer}")
    except OCTViewerError as exc:
        case.fail(f"analysis or report failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # an engine/report bug: record it, go on with the other samples
        log.exception("self-test: unexpected error analysing %s", case.name)
        case.fail(f"unexpected error in analysis or report: {type(exc).__name__}: {exc}")
    return scan


# --- driver ----------------------------------------------------------------------------------
def find_samples(folder: Path) -> tuple[list[Path], dict[str, dict[str, Any]]]:
    """The sample scans in ``folder`` (files and sub-folders) and its ``expected.json``."""
    expected: dict[str, dict[str, Any]] = {}
    manifest = folder / EXPECTED_FILE
    if manifest.is_file():
        expected = json.loads(manifest.read_text(encoding="utf-8"))
    samples: list[Path] = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.name.startswith("."):
            continue
        if p.is_file() and (
            p.suffix.lower() in NOT_SCANS or p.stem.upper() in {"LICENSE", "README"}
        ):
            log.info("self-test: %s is documentation, not a scan: not analysed", p.name)
            continue
        samples.append(p)
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
    for path in samples:
        case = CaseOutcome(path.name)
        run.cases.append(case)
        scan = analyse_case(path, engine, out_dir, case, expected.get(path.name, {}))
        if source is None and scan is not None and scan.is_oct:
            source = _small_copy(scan.frame_as_uint8(0))
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

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
    _emit(run.summary())
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
