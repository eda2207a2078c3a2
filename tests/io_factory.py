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


FUNDUS = IO_DATA / "dicom" / "example-dcms__fundus.dcm"


def localized_volume(folder: Path, frames: np.ndarray) -> tuple[Path, np.ndarray]:
    """An OPT volume of ``frames`` in ``folder`` that references a real IR image (copied next
    to it) as its localizer, the B-scans evenly spaced on it; returns the path and positions."""
    import shutil

    import pydicom

    shutil.copy(FUNDUS, folder / "localizer.dcm")
    uid = str(pydicom.dcmread(FUNDUS, stop_before_pixels=True).SOPInstanceUID)
    positions = localizer_positions(len(frames))
    path = write(opt_dataset(frames, localizer_uid=uid, positions=positions), folder / "vol.dcm")
    return path, positions


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


# --- malformed-file corpus -------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, rows: int = 30000, cols: int = 30000) -> Path:
    """A few hundred bytes that claim rows x cols 8-bit pixels (a decompression bomb)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (cols + 1) * 4)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


def jpeg_with_size(src: Path, path: Path, rows: int, cols: int) -> Path:
    """A real JPEG whose frame header (SOF) is patched to claim rows x cols."""
    import struct

    data = bytearray(src.read_bytes())
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", rows, cols)
            break
        i += 2 + length
    path.write_bytes(bytes(data))
    return path


def bmp_with_size(path: Path, rows: int, cols: int) -> Path:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="BMP")
    data = bytearray(buf.getvalue())
    data[18:26] = np.array([cols, rows], "<i4").tobytes()
    path.write_bytes(bytes(data))
    return path


def malformed_corpus(root: Path) -> dict[str, tuple[Path, str]]:
    """Write every malformed input under ``root``; returns name -> (path, expected error name)."""

    stack = kermany_stack()
    jpeg = IO_DATA / "kermany" / "NORMAL-2633503-1.jpeg"
    raw_data = IO_DATA / "dicom" / "example-dcms__OT.dcm"
    vol = IO_DATA / "vendor" / "Willis_B_716_0.vol"
    out: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes, error: str) -> Path:
        p = root / name
        p.write_bytes(data)
        out[name] = (p, error)
        return p

    def cut(src: Path, fraction: float) -> bytes:
        data = src.read_bytes()
        return data[: int(len(data) * fraction)]

    png = root / "_ok.png"
    Image.fromarray(stack[0]).save(png)
    tif = root / "_ok.tif"
    Image.fromarray(stack[0]).save(tif, compression="tiff_deflate")
    bmp = root / "_ok.bmp"
    Image.fromarray(stack[0]).save(bmp)
    opt = write(opt_dataset(stack), root / "_ok.dcm")
    j2k = write(compress(opt_dataset(stack), "jpeg2000"), root / "_ok_j2k.dcm")

    put("empty.jpg", b"", "EmptyFileError")
    put("empty.dcm", b"", "EmptyFileError")
    put("truncated.jpg", cut(jpeg, 0.4), "CorruptFileError")
    put("truncated.png", cut(png, 0.5), "CorruptFileError")
    put("truncated.tif", cut(tif, 0.5), "CorruptFileError")
    put("truncated.bmp", cut(bmp, 0.5), "CorruptFileError")
    put("header_only.png", png.read_bytes()[:33], "CorruptFileError")
    put(
        "text.dcm",
        b"Patient seen on Monday.\nOCT to follow, see report.\n",
        "UnsupportedFormatError",
    )
    put(
        "random.dcm",
        np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "UnsupportedFormatError",
    )
    put(
        "document.png",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "UnsupportedFormatError",
    )
    put("archive.dcm", b"PK\x03\x04" + bytes(60), "UnsupportedFormatError")
    put("anim.gif", b"GIF89a" + bytes(40), "UnsupportedFormatError")
    put("raw_data.dcm", raw_data.read_bytes(), "NoPixelDataError")
    put("truncated_pixels.dcm", cut(opt, 0.6), "CorruptFileError")
    put("truncated_header.dcm", opt.read_bytes()[:200], "CorruptFileError")
    garbled = bytearray(j2k.read_bytes())
    siz = garbled.find(b"\xff\x4f\xff\x51")  # SOC + SIZ marker of the first code stream
    garbled[siz + 4 : siz + 40] = b"\xff" * 36  # a nonsensical image header
    put("garbled_j2k.dcm", bytes(garbled), "CorruptFileError")
    put("truncated.vol", cut(vol, 0.3), "CorruptFileError")
    put("garbage.E2E", b"CMDb" + bytes(200), "UnsupportedFormatError")
    put("garbage.fda", b"FOCTFDA" + bytes(200), "UnsupportedFormatError")

    out["bomb_30000.png"] = (png_bomb(root / "bomb_30000.png"), "ImageTooLargeError")
    out["bomb_30000.jpg"] = (
        jpeg_with_size(jpeg, root / "bomb_30000.jpg", 30000, 30000),
        "ImageTooLargeError",
    )
    out["bomb_30000.bmp"] = (
        bmp_with_size(root / "bomb_30000.bmp", 30000, 30000),
        "ImageTooLargeError",
    )
    big = opt_dataset(stack[:1])
    big.Rows = big.Columns = 30000
    out["huge_rows.dcm"] = (write(big, root / "huge_rows.dcm"), "ImageTooLargeError")
    many = opt_dataset(stack[:1])
    many.NumberOfFrames = 100_000
    out["many_frames.dcm"] = (write(many, root / "many_frames.dcm"), "ImageTooLargeError")

    # folders
    empty = root / "empty_folder"
    empty.mkdir()
    out["empty_folder"] = (empty, "NoImagesFoundError")
    no_images = root / "no_images"
    no_images.mkdir()
    (no_images / "notes.txt").write_text("nothing to see")
    (no_images / "values.csv").write_text("a,b\n1,2\n")
    out["no_images"] = (no_images, "NoImagesFoundError")
    nested = root / "only_subfolders"
    (nested / "visit1").mkdir(parents=True)
    out["only_subfolders"] = (nested, "NoImagesFoundError")
    raw_only = root / "raw_data_only"
    raw_only.mkdir()
    (raw_only / "raw.dcm").write_bytes(raw_data.read_bytes())
    out["raw_data_only"] = (raw_only, "NoImagesFoundError")
    named_like_file = root / "scan.dcm"
    named_like_file.mkdir()
    out["folder_named_scan.dcm"] = (named_like_file, "NoImagesFoundError")
    mixed = root / "mixed_series"
    mixed.mkdir()
    write(opt_dataset(stack[:2]), mixed / "a.dcm")
    write(opt_dataset(stack[1:]), mixed / "b.dcm")
    out["mixed_series"] = (mixed, "AmbiguousSeriesError")
    dicom_and_images = root / "dicom_and_images"
    dicom_and_images.mkdir()
    write(opt_dataset(stack[:1]), dicom_and_images / "a.dcm")
    (dicom_and_images / "b.jpeg").write_bytes(jpeg.read_bytes())
    out["dicom_and_images"] = (dicom_and_images, "AmbiguousSeriesError")
    sizes = root / "different_sizes"
    sizes.mkdir()
    (sizes / "1.jpeg").write_bytes(jpeg.read_bytes())
    (sizes / "2.jpeg").write_bytes((IO_DATA / "kermany" / "DME-9557298-1.jpeg").read_bytes())
    out["different_sizes"] = (sizes, "AmbiguousSeriesError")  # two independent scans

    out["missing.dcm"] = (root / "missing.dcm", "ScanNotFoundError")
    out["missing_folder/scan.jpg"] = (root / "missing_folder" / "scan.jpg", "ScanNotFoundError")
    fifo = root / "pipe.dcm"
    import os

    if hasattr(os, "mkfifo"):  # not on Windows
        os.mkfifo(fifo)
        out["pipe.dcm"] = (fifo, "UnsupportedFormatError")
    locked = put("locked.jpg", jpeg.read_bytes(), "ScanPermissionError")
    locked.chmod(0)
    return out
