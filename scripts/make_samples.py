"""Build resources/samples/ from the real data in ../shared/data (run once; outputs are committed).

- one Kermany B-scan per class (JPEG, copied unchanged);
- a multi-frame Ophthalmic Tomography DICOM volume built from real B-scans of one Kermany
  patient, JPEG 2000 lossless compressed (so opening it exercises the pylibjpeg decoder);
- the Heidelberg infrared fundus DICOM (JPEG lossless), a non-OCT image that the app must flag.

Usage: python scripts/make_samples.py [--shared ../shared/data] [--out resources/samples]
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    OphthalmicTomographyImageStorage,
    generate_uid,
)

log = logging.getLogger("make_samples")

SINGLE = {
    "CNV": "CNV-1016042-1.jpeg",
    "DME": "DME-30521-1.jpeg",
    "DRUSEN": "DRUSEN-8086850-1.jpeg",
    "NORMAL": "NORMAL-9741296-1.jpeg",
}
# Real B-scans of one patient (Kermany id 1997439), all 512x496, labelled CNV or DRUSEN.
VOLUME = [
    "CNV/CNV-1997439-1.jpeg",
    "CNV/CNV-1997439-3.jpeg",
    "CNV/CNV-1997439-6.jpeg",
    "CNV/CNV-1997439-7.jpeg",
    "DRUSEN/DRUSEN-1997439-1.jpeg",
    "DRUSEN/DRUSEN-1997439-2.jpeg",
    "DRUSEN/DRUSEN-1997439-4.jpeg",
]
VOLUME_NAME = "kermany-1997439-volume-opt.dcm"
FUNDUS = "example-dcms__fundus.dcm"


def build_opt_volume(frames: list[np.ndarray], out: Path) -> None:
    """Write a standard multi-frame Ophthalmic Tomography Image (enhanced IOD) file."""
    n, rows, cols = len(frames), *frames[0].shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = OphthalmicTomographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = OphthalmicTomographyImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "OPT"
    ds.PatientName = "Anonymous^Demo"
    ds.PatientID = "DEMO-0001"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    # The source JPEGs carry no acquisition date: leave the dates empty rather than invent one.
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDateTime = ""
    ds.ContentTime = ""
    ds.Manufacturer = "octviewer sample (source: Kermany 2018, Spectralis B-scans)"
    ds.ManufacturerModelName = "sample builder"
    ds.Laterality = ""
    ds.ImageLaterality = "U"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ImageComments = (
        "Sample built by octviewer scripts/make_samples.py from real B-scans of one patient of the "
        "Kermany 2018 OCT dataset (CC BY 4.0, doi:10.17632/rscbjbr9sj). Frames are separate "
        "B-scans, not a contiguous raster. Pixel spacing is nominal (the JPEGs carry no "
        "calibration). Research use only."
    )
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = n
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "NO"
    ds.PresentationLUTShape = "IDENTITY"
    ds.LossyImageCompression = "00"

    measures = Dataset()
    measures.PixelSpacing = [0.0039, 0.0039]  # mm, nominal: square display pixels as exported
    measures.SliceThickness = 0.0039
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for i in range(n):
        content = Dataset()
        content.InStackPositionNumber = i + 1
        content.StackID = "1"
        content.DimensionIndexValues = [1, i + 1]
        item = Dataset()
        item.FrameContentSequence = Sequence([content])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)

    arr = np.stack(frames).astype(np.uint8)
    ds.PixelData = arr.tobytes()
    ds.compress(JPEG2000Lossless, arr)
    ds.save_as(out, enforce_file_format=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shared", type=Path, default=repo.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=repo / "resources" / "samples")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    kermany = a.shared / "kermany"
    for cls, name in SINGLE.items():
        shutil.copyfile(kermany / cls / name, a.out / name)
        log.info("copied %s", name)
    frames = [np.asarray(Image.open(kermany / f).convert("L")) for f in VOLUME]
    build_opt_volume(frames, a.out / VOLUME_NAME)
    log.info("wrote %s (%d frames)", VOLUME_NAME, len(frames))
    shutil.copyfile(a.shared / "dicom" / FUNDUS, a.out / "heidelberg-ir-fundus-not-oct.dcm")
    log.info("copied the fundus DICOM")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
