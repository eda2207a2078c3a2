"""Builds DICOM and malformed test files for the reader tests (tests/test_io_*.py).

Multi-frame Ophthalmic Tomography objects are assembled with pydicom from real Kermany B-scans
(tests/data/io/kermany), with the functional groups an enhanced OPT object carries: Pixel
Measures, Plane Position/Orientation, Frame Anatomy, and the Ophthalmic Frame Location
Sequence (0022,0031) pointing at a localizer image. Nothing here is committed output: the
session fixtures write into a temporary folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

IO_DATA = Path(__file__).resolve().parent / "data" / "io"
KERMANY_SAME_SIZE = ("NORMAL-2633503-1.jpeg", "NORMAL-351109-1.jpeg", "DRUSEN-8261063-3.jpeg")
OPT_SOP = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
OP8_SOP = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
ROW_MM, COL_MM, BETWEEN_MM = 0.0039, 0.0117, 0.12
PATIENT = {
    "PatientName": "Test^Synthetic",
    "PatientID": "TEST-0001",
    "PatientBirthDate": "19700101",
}


def kermany_stack() -> np.ndarray:
    """Three real 512x496 B-scans as (3, 496, 512) uint8."""
    return np.stack(
        [np.asarray(Image.open(IO_DATA / "kermany" / n).convert("L")) for n in KERMANY_SAME_SIZE]
    )


def localizer_positions(n: int, rows: int = 768, cols: int = 768) -> np.ndarray:
    """Horizontal B-scan lines (x0, y0, x1, y1), evenly spaced on a rows x cols localizer."""
    ys = np.linspace(rows * 0.3, rows * 0.7, n)
    return np.asarray([[20.0, y, cols - 20.0, y] for y in ys], dtype=np.float32)


def _item(**kw: object) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def opt_dataset(
    frames: np.ndarray,
    *,
    series_uid: str | None = None,
    instance_number: int = 1,
    first_position: int = 0,
    localizer_uid: str | None = None,
    positions: np.ndarray | None = None,
    bits_stored: int | None = None,
    photometric: str = "MONOCHROME2",
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    laterality: str = "R",
) -> Dataset:
    """An enhanced-style Ophthalmic Tomography object holding ``frames`` (n, rows, cols)."""
    n, rows, cols = frames.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = OPT_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = OPT_SOP
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OPT"
    ds.Manufacturer = "octviewer tests"
    ds.ManufacturerModelName = "io_factory"
    ds.AcquisitionDateTime = "20240305101112"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = 7
    ds.SeriesDescription = "Volume OCT"
    ds.InstanceNumber = instance_number
    ds.ImageLaterality = laterality
    for k, v in PATIENT.items():
        setattr(ds, k, v)
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    bits_alloc = 8 if frames.dtype == np.uint8 else 16
    ds.BitsAllocated = bits_alloc
    ds.BitsStored = bits_stored or bits_alloc
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()

    shared = _item(
        PixelMeasuresSequence=Sequence(
            [
                _item(
                    PixelSpacing=[ROW_MM, COL_MM],
                    SliceThickness=BETWEEN_MM,
                    SpacingBetweenSlices=BETWEEN_MM,
                )
            ]
        ),
        PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
        FrameAnatomySequence=Sequence(
            [_item(FrameLaterality=laterality, AnatomicRegionSequence=Sequence([]))]
        ),
    )
    if rescale is not None:
        shared.PixelValueTransformationSequence = Sequence(
            [_item(RescaleSlope=rescale[0], RescaleIntercept=rescale[1], RescaleType="US")]
        )
    if window is not None:
        shared.FrameVOILUTSequence = Sequence(
            [_item(WindowCenter=window[0], WindowWidth=window[1])]
        )
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for i in range(n):
        item = _item(
            FrameContentSequence=Sequence(
                [_item(InStackPositionNumber=first_position + i + 1, StackID="1")]
            ),
            PlanePositionSequence=Sequence(
                [_item(ImagePositionPatient=[0.0, 0.0, (first_position + i) * BETWEEN_MM])]
            ),
        )
        if localizer_uid is not None and positions is not None:
            x0, y0, x1, y1 = (float(v) for v in positions[i])
            item.OphthalmicFrameLocationSequence = Sequence(
                [
                    _item(
                        ReferencedSOPClassUID=OP8_SOP,
                        ReferencedSOPInstanceUID=localizer_uid,
                        ReferenceCoordinates=[y0, x0, y1, x1],  # (row, column) pairs
                        OphthalmicImageOrientation="LINEAR",
                    )
                ]
            )
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    return ds


def compress(ds: Dataset, syntax: str) -> Dataset:
    """Compress with pydicom's encoders (RLE, JPEG 2000, JPEG-LS) or Pillow (JPEG baseline)."""
    if syntax == "jpeg-baseline":
        n, rows, cols = int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)
        arr = np.frombuffer(ds.PixelData, np.uint8).reshape(n, rows, cols)
        fragments = []
        for frame in arr:
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="JPEG", quality=95)
            fragments.append(buf.getvalue())
        ds.PixelData = encapsulate(fragments)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
        return ds
    uid = {"rle": RLELossless, "jpeg2000": JPEG2000Lossless, "jpegls": JPEGLSLossless}[syntax]
    ds.compress(uid)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
