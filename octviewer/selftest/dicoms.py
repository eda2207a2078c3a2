"""Generated DICOM files: prove the pylibjpeg decoders are in the (frozen) app."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.core.io.dicom.header import OPT_SOP as OPHTHALMIC_TOMOGRAPHY
from octviewer.selftest.jpeg_lossless import encode_jpeg_lossless
from octviewer.selftest.outcome import SelfTestRun

log = logging.getLogger("octviewer.selftest")  # one logger name for the whole self-test

# DICOM transfer syntaxes whose decoders the packaged app must carry (pydicom plugin names).
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
OPHTHALMIC_PHOTOGRAPHY_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
DECODED_LABELS = {
    "generated_jpeg_lossless_photo": "DICOM JPEG lossless",
    "generated_jpeg2000_oct": "DICOM JPEG 2000 lossless",
    "generated_rle_oct": "DICOM RLE lossless",
}


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


def small_copy(frame_u8: np.ndarray, max_side: int = 256) -> np.ndarray:
    step = max(1, int(np.ceil(max(frame_u8.shape) / max_side)))
    return np.ascontiguousarray(frame_u8[::step, ::step])
