"""The self-test's reader checks: every format the app claims opens, in the frozen app too.

Real vendor files (MIT / Apache-2.0, see ``resources/selftest/README.md``) are opened from
``resources/selftest``; a DICOMDIR and uncompressed / JPEG baseline / JPEG-LS DICOM files are
generated from a real B-scan (the JPEG lossless, JPEG 2000 and RLE files of
:func:`octviewer.selftest.check_decoders` complete the transfer syntaxes). Each check opens the
file through :func:`octviewer.core.io.load`, exactly as the window does, and checks what came
out, so a bundle that lost a reader (eyepy's scikit-image stubs, oct-converter, a pylibjpeg
plugin) fails here.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.io.dicom.header import OPT_SOP as OPHTHALMIC_TOMOGRAPHY
from octviewer.errors import OCTViewerError

if TYPE_CHECKING:
    from pydicom import Dataset

    from octviewer.core.scan import Scan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReaderCheck:
    """A bundled file that must open as ``fmt`` (with ``pattern`` on its localizer)."""

    label: str
    file: str
    fmt: str
    frames: int
    pattern: str | None = None
    protocol: str = ""  # the stated protocol's description it must report ("" = not stated)
    device_quality: str | None = None  # the name of the device's quality index it must read


READER_CHECKS = (
    ReaderCheck(
        "Heidelberg .vol line scan", "Willis_B_716_0.vol", "Heidelberg VOL", 1, "line",
        "line scan", "Spectralis Q",
    ),
    ReaderCheck(
        "Heidelberg .vol circle scan", "circular-valid.vol", "Heidelberg VOL", 1, "circle",
        "peripapillary circle scan", "Spectralis Q",
    ),
    ReaderCheck("Topcon .fda", "fda_minimized.fda", "Topcon FDA", 1, None, "macular volume scan"),
    ReaderCheck("Topcon .fds", "fds_minimized.fds", "Topcon FDS", 4, None, "macular volume scan"),
)  # fmt: skip


@dataclass
class ReaderOutcome:
    label: str
    ok: bool
    detail: str


def selftest_dir() -> Path:
    from octviewer.resources import samples_dir

    return samples_dir().parent / "selftest"


def _open(path: Path, label: str, check: Callable[[object], str | None]) -> ReaderOutcome:
    from octviewer.core.io import load

    try:
        scan = load(path)
    except OCTViewerError as exc:
        return ReaderOutcome(label, False, f"did not open: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a reader bug: the self-test reports it
        log.exception("self-test: unexpected error opening %s", label)
        return ReaderOutcome(label, False, f"unexpected error: {type(exc).__name__}: {exc}")
    problem = check(scan)
    if problem:
        return ReaderOutcome(label, False, problem)
    return ReaderOutcome(label, True, f"{scan.n_frames} x {scan.shape[1]}x{scan.shape[0]}")


def _vendor_check(spec: ReaderCheck) -> Callable[[object], str | None]:
    def check(scan: Scan) -> str | None:
        m = scan.metadata
        # opening is checked, not the content check's verdict (the tiny .fds is "unknown")
        if m.format != spec.fmt or scan.n_frames != spec.frames:
            return f"read as {m.format} with {scan.n_frames} frame(s), expected {spec.fmt}"
        if float(np.asarray(scan.frames, np.float32).std()) <= 0:
            return "its B-scan is blank"
        if spec.pattern is not None:
            loc = scan.localizer
            if loc is None or loc.pattern != spec.pattern or loc.positions is None:
                return f"its localizer does not show the {spec.pattern} scan position"
        stated = m.protocol.description if m.protocol.is_stated else ""
        if stated != spec.protocol:
            return f"its protocol reads {stated or 'not stated'!r}, expected {spec.protocol!r}"
        dq = m.device_quality
        if spec.device_quality is not None and (dq is None or dq.name != spec.device_quality):
            return f"its device quality index ({spec.device_quality}) was not read"
        return None

    return check


def _dataset(pixels: np.ndarray, syntax: str) -> Dataset:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = OPHTHALMIC_TOMOGRAPHY
    ds.SOPClassUID = OPHTHALMIC_TOMOGRAPHY
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.StudyDate, ds.StudyTime = "selftest", "", "20240101", "120000"
    ds.StudyID, ds.AccessionNumber, ds.SeriesNumber, ds.InstanceNumber = "1", "", 1, 1
    ds.Modality = "OPT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = 1
    return ds


def write_generated(pixels: np.ndarray, folder: Path) -> dict[str, Path]:
    """Uncompressed, JPEG baseline (when a decoder is bundled), JPEG-LS (when its codec is)
    DICOM files and a DICOMDIR, from ``pixels`` (uint8 2-D). Label -> path."""
    from pydicom.encaps import encapsulate
    from pydicom.fileset import FileSet
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless

    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    ds = _dataset(pixels, ExplicitVRLittleEndian)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    made["DICOM explicit VR little endian"] = folder / "generated_plain_oct.dcm"
    ds.save_as(made["DICOM explicit VR little endian"], enforce_file_format=True)

    if get_decoder(JPEGBaseline8Bit).is_available:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
        ds = _dataset(pixels, JPEGBaseline8Bit)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        made["DICOM JPEG baseline"] = folder / "generated_jpeg_baseline_oct.dcm"
        ds.save_as(made["DICOM JPEG baseline"], enforce_file_format=True)
    if get_decoder(JPEGLSLossless).is_available:
        ds = _dataset(pixels, ExplicitVRLittleEndian)
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
        made["DICOM JPEG-LS lossless"] = folder / "generated_jpegls_oct.dcm"
        ds.save_as(made["DICOM JPEG-LS lossless"], enforce_file_format=True)

    media = folder / "dicomdir_export"
    fs = FileSet()
    plain = _dataset(pixels, ExplicitVRLittleEndian)
    plain.PixelData = np.ascontiguousarray(pixels).tobytes()
    fs.add(plain)
    fs.write(media)
    made["DICOMDIR"] = media / "DICOMDIR"
    return made


def check_readers(pixels: np.ndarray | None, work: Path) -> list[ReaderOutcome]:
    """Open every bundled vendor sample and every generated file; one outcome each."""
    outcomes: list[ReaderOutcome] = []
    folder = selftest_dir()
    for spec in READER_CHECKS:
        path = folder / spec.file
        if not path.is_file():
            outcomes.append(ReaderOutcome(spec.label, False, f"sample {spec.file} is missing"))
            continue
        outcomes.append(_open(path, spec.label, _vendor_check(spec)))
    if pixels is None:
        return outcomes
    try:
        made = write_generated(pixels, work)
    except Exception as exc:  # an encoder or pydicom module missing from the bundle
        log.exception("self-test: could not write the generated reader files")
        return [*outcomes, ReaderOutcome("generated DICOM", False, f"could not write: {exc}")]

    def same_pixels(lossy: bool) -> Callable[[object], str | None]:
        def check(scan: Scan) -> str | None:
            got = scan.frame_as_uint8(0)
            if got.shape != pixels.shape:
                return f"decoded to {got.shape}, expected {pixels.shape}"
            err = float(np.abs(got.astype(np.int16) - pixels.astype(np.int16)).mean())
            return None if err <= (3.0 if lossy else 0.0) else f"pixels differ (mean {err:.1f})"

        return check

    for label, path in made.items():
        outcomes.append(_open(path, label, same_pixels("baseline" in label)))
    return outcomes
