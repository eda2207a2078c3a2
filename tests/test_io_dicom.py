"""DICOM readers on real files (tests/data/io/dicom) and on OPT objects built from real B-scans."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import io_factory as fac
import numpy as np
import pytest

from octviewer import Laterality, Modality
from octviewer.core.io import load
from octviewer.errors import AmbiguousSeriesError, MissingDecoderError, NoPixelDataError

DICOM_DIR = fac.IO_DATA / "dicom"
FUNDUS = DICOM_DIR / "example-dcms__fundus.dcm"


@pytest.fixture(scope="session")
def stack() -> np.ndarray:
    return fac.kermany_stack()


@pytest.fixture(scope="session")
def volume_dir(tmp_path_factory: pytest.TempPathFactory, stack: np.ndarray) -> Path:
    """A multi-frame OPT volume next to the real Spectralis IR image it references as localizer."""
    import pydicom

    folder = tmp_path_factory.mktemp("opt_volume")
    shutil.copy(FUNDUS, folder / "localizer.dcm")
    loc_uid = str(pydicom.dcmread(FUNDUS, stop_before_pixels=True).SOPInstanceUID)
    ds = fac.opt_dataset(
        stack, localizer_uid=loc_uid, positions=fac.localizer_positions(len(stack))
    )
    fac.write(ds, folder / "volume.dcm")
    return folder


def test_multiframe_opt_volume(volume_dir: Path, stack: np.ndarray) -> None:
    scan = load(volume_dir / "volume.dcm")
    assert scan.frames.shape == (3, 496, 512) and scan.frames.dtype == np.uint8
    np.testing.assert_array_equal(scan.frames, stack)
    m = scan.metadata
    assert m.modality is Modality.OCT_VOLUME and scan.is_oct
    assert m.format == "DICOM" and m.sop_class == "Ophthalmic Tomography Image Storage"
    assert (m.spacing.row, m.spacing.col, m.spacing.frame, m.spacing.unit) == (
        fac.ROW_MM,
        fac.COL_MM,
        fac.BETWEEN_MM,
        "mm",
    )
    assert m.laterality is Laterality.RIGHT
    assert (m.manufacturer, m.device_model) == ("octviewer tests", "io_factory")
    assert m.acquisition_date == dt.date(2024, 3, 5)
    # identifying fields only in PatientIdentity
    assert scan.identity.name == "Test^Synthetic" and scan.identity.patient_id == "TEST-0001"
    assert scan.identity.birth_date == "19700101"
    assert "TEST-0001" not in repr(m) and "Synthetic" not in repr(m)
    # the referenced Spectralis IR image is the localizer, with one line per B-scan
    assert scan.localizer is not None and scan.localizer.image.shape == (768, 768)
    np.testing.assert_allclose(scan.localizer.positions, fac.localizer_positions(3))


def test_positions_kept_in_notes_without_localizer(tmp_path: Path, stack: np.ndarray) -> None:
    ds = fac.opt_dataset(stack, localizer_uid="1.2.3.4.5", positions=fac.localizer_positions(3))
    scan = load(fac.write(ds, tmp_path / "vol.dcm"))
    assert scan.localizer is None
    assert any("1.2.3.4.5" in n and "3 frame" in n for n in scan.metadata.notes)


@pytest.mark.parametrize("syntax", ["rle", "jpeg2000", "jpegls", "jpeg-baseline"])
def test_compressed_volumes(tmp_path: Path, stack: np.ndarray, syntax: str) -> None:
    path = fac.write(fac.compress(fac.opt_dataset(stack), syntax), tmp_path / f"{syntax}.dcm")
    scan = load(path)
    assert scan.frames.shape == stack.shape and scan.metadata.modality is Modality.OCT_VOLUME
    diff = np.abs(scan.frames.astype(int) - stack)
    if syntax == "jpeg-baseline":  # lossy
        assert diff.mean() < 2.0 and diff.max() < 40
    else:
        assert diff.max() == 0


def test_monochrome1_is_inverted(tmp_path: Path, stack: np.ndarray) -> None:
    ds = fac.opt_dataset(255 - stack, photometric="MONOCHROME1")
    scan = load(fac.write(ds, tmp_path / "m1.dcm"))
    np.testing.assert_array_equal(scan.frames, stack)


def _expected_window(
    stored: np.ndarray, slope: float, intercept: float, center: float, width: float
) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 linear window on rescaled values, output as full-range uint16."""
    x = stored.astype(np.float64) * slope + intercept
    y = (x - (center - 0.5)) / (width - 1) + 0.5
    return np.round(np.clip(y, 0, 1) * 65535)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_rescale_then_window_then_inversion(
    tmp_path: Path, stack: np.ndarray, photometric: str
) -> None:
    stored = (stack.astype(np.uint16) * 16)[:2]  # 12-bit data in 16-bit words
    slope, intercept, center, width = 0.5, 10.0, 800.0, 1200.0
    ds = fac.opt_dataset(
        stored,
        bits_stored=12,
        photometric=photometric,
        rescale=(slope, intercept),
        window=(center, width),
    )
    scan = load(fac.write(ds, tmp_path / "voi.dcm"))
    expected = _expected_window(stored, slope, intercept, center, width)
    if photometric == "MONOCHROME1":
        expected = 65535 - expected
    assert scan.frames.dtype == np.uint16 and scan.metadata.bit_depth == 16
    assert np.abs(scan.frames.astype(np.float64) - expected).max() <= 1
    # the window really clips: values below and above it exist in the source
    assert (expected == 0).any() and (expected == 65535).any()


def test_16bit_without_lut_keeps_values(tmp_path: Path, stack: np.ndarray) -> None:
    stored = stack.astype(np.uint16) * 200 + 7
    scan = load(fac.write(fac.opt_dataset(stored), tmp_path / "u16.dcm"))
    assert scan.frames.dtype == np.uint16 and scan.metadata.bit_depth == 16
    np.testing.assert_array_equal(scan.frames, stored)


def _series_folder(root: Path, stack: np.ndarray, name: str) -> tuple[Path, str]:
    """One single-frame OPT file per B-scan; file names deliberately not in instance order."""
    import pydicom

    folder = root / name
    folder.mkdir()
    uid = pydicom.uid.generate_uid()
    names = ["c.dcm", "a.dcm", "b.dcm"]
    for i, fname in enumerate(names):
        ds = fac.opt_dataset(
            stack[i : i + 1], series_uid=uid, instance_number=i + 1, first_position=i
        )
        fac.write(ds, folder / fname)
    return folder, uid


def test_series_folder_ordered_by_instance_number(tmp_path: Path, stack: np.ndarray) -> None:
    folder, uid = _series_folder(tmp_path, stack, "series")
    scan = load(folder)
    np.testing.assert_array_equal(scan.frames, stack)
    assert [p.name for p in scan.metadata.source_paths] == ["c.dcm", "a.dcm", "b.dcm"]
    assert scan.metadata.format == "DICOM series" and scan.metadata.series_uid == uid
    assert scan.metadata.modality is Modality.OCT_VOLUME
    assert scan.metadata.spacing.frame == pytest.approx(fac.BETWEEN_MM)


def test_mixed_series_folder_asks_and_picks(tmp_path: Path, stack: np.ndarray) -> None:
    folder, uid = _series_folder(tmp_path, stack, "mixed")
    other = fac.opt_dataset(stack[:2][:, ::-1].copy(), series_uid=None)
    fac.write(other, folder / "z_other.dcm")
    with pytest.raises(AmbiguousSeriesError) as info:
        load(folder)
    assert set(info.value.series) == {uid, str(other.SeriesInstanceUID)}
    assert "3 file(s)" in info.value.series[uid]
    picked = load(folder, series=str(other.SeriesInstanceUID))
    np.testing.assert_array_equal(picked.frames, stack[:2][:, ::-1])
    np.testing.assert_array_equal(load(folder, series=uid).frames, stack)
    with pytest.raises(AmbiguousSeriesError):
        load(folder, series="no-such-series")


def test_folder_with_volume_and_its_localizer_is_not_ambiguous(
    volume_dir: Path, stack: np.ndarray
) -> None:
    scan = load(volume_dir)
    np.testing.assert_array_equal(scan.frames, stack)
    assert scan.localizer is not None and scan.localizer.positions.shape == (3, 4)


# --- real files ---------------------------------------------------------------------------
def test_real_fundus_jpeg_lossless_is_marked_not_oct() -> None:
    scan = load(FUNDUS)
    assert scan.frames.shape == (1, 768, 768) and scan.frames.dtype == np.uint8
    assert scan.metadata.modality is Modality.FUNDUS and not scan.is_oct
    assert scan.metadata.laterality is Laterality.RIGHT
    assert scan.metadata.spacing.row == pytest.approx(0.010994)
    assert scan.metadata.manufacturer == "Heidelberg Engineering"
    assert scan.metadata.acquisition_date == dt.date(2015, 6, 24)
    assert scan.frames.min() >= 60 and scan.frames.max() <= 255 and scan.frames.std() > 10


def test_real_jpeg_baseline_photo() -> None:
    scan = load(DICOM_DIR / "cataract__eye.dcm")
    assert scan.frames.shape == (1, 576, 768)
    assert scan.metadata.modality is Modality.FUNDUS and scan.metadata.laterality is Laterality.LEFT
    assert scan.metadata.device_model == "ANTERION"


def test_real_topcon_opt_bscan_16bit() -> None:
    scan = load(DICOM_DIR / "topcon_bscan_opt.dcm")
    assert scan.frames.shape == (1, 650, 512) and scan.frames.dtype == np.uint16
    assert scan.metadata.modality is Modality.OCT_BSCAN
    assert scan.metadata.spacing.row == pytest.approx(
        0.0035
    ) and scan.metadata.spacing.col == pytest.approx(0.01171875)
    assert int(scan.frames.max()) == 100


def test_real_raw_data_has_no_pixels() -> None:
    with pytest.raises(NoPixelDataError, match="Raw Data Storage"):
        load(DICOM_DIR / "example-dcms__OT.dcm")


@pytest.mark.parametrize(
    ("make", "package"),
    [("jpeg2000", "pylibjpeg-openjpeg"), ("fundus", "pylibjpeg-libjpeg")],
)
def test_missing_decoder_names_the_package(
    tmp_path: Path, stack: np.ndarray, monkeypatch: pytest.MonkeyPatch, make: str, package: str
) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1

    if make == "fundus":
        path, uid = FUNDUS, JPEGLosslessSV1
    else:
        path = fac.write(fac.compress(fac.opt_dataset(stack), "jpeg2000"), tmp_path / "j2k.dcm")
        uid = JPEG2000Lossless
    decoder = get_decoder(uid)
    monkeypatch.setattr(decoder, "_available", {})  # as if no plugin were installed
    with pytest.raises(MissingDecoderError) as info:
        load(path)
    assert package in str(info.value) and "Install" in str(info.value)


def _secondary_capture():
    """An empty Secondary Capture dataset with file meta (explicit VR little endian)."""
    from pydicom import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    return ds


def test_colour_secondary_capture(tmp_path: Path) -> None:
    """Any pixel-bearing SOP class opens; an RGB object becomes greyscale and is flagged."""
    from pydicom.uid import generate_uid

    rgb = np.zeros((64, 80, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 90, 30
    ds = _secondary_capture()
    ds.Modality, ds.SeriesInstanceUID = "OT", generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = 64, 80, 3, 0
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    ds.save_as(tmp_path / "sc.dcm", enforce_file_format=True)
    scan = load(tmp_path / "sc.dcm")
    assert scan.frames.shape == (1, 64, 80) and scan.frames.dtype == np.uint8
    assert scan.metadata.was_color and scan.metadata.modality is Modality.UNKNOWN
    assert int(scan.frames[0, 0, 0]) == round(0.299 * 200 + 0.587 * 90 + 0.114 * 30)
    assert scan.metadata.sop_class == "Secondary Capture Image Storage"


def test_dicom_without_preamble_or_file_meta(tmp_path: Path, stack: np.ndarray) -> None:
    from pydicom.filewriter import dcmwrite

    ds = fac.opt_dataset(stack)
    del ds.file_meta
    ds.preamble = None
    path = tmp_path / "IM0001"  # no suffix, no preamble, implicit VR: as old PACS exports are
    dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    scan = load(path)
    np.testing.assert_array_equal(scan.frames, stack)
    assert scan.metadata.modality is Modality.OCT_VOLUME


def test_palette_colour_dicom(tmp_path: Path) -> None:
    ds = _secondary_capture()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 4, 4, 1
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    lut = np.zeros(256, np.uint16)
    lut[1] = 65535  # index 1 -> pure red, everything else black
    for colour, data in (
        ("Red", lut),
        ("Green", np.zeros(256, np.uint16)),
        ("Blue", np.zeros(256, np.uint16)),
    ):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", data.tobytes())
    ds.PixelData = np.array([[0, 1, 1, 0]] * 4, np.uint8).tobytes()
    ds.save_as(tmp_path / "pal.dcm", enforce_file_format=True)
    scan = load(tmp_path / "pal.dcm")
    assert scan.metadata.was_color
    assert scan.frames[0, 0].tolist() == [0, 76, 76, 0]  # luma of pure red


def test_voi_lut_sequence_in_frame_functional_groups(tmp_path: Path, stack: np.ndarray) -> None:
    """A VOI LUT (here: a 256-entry inverting table) applied per frame from the functional groups."""
    from pydicom import Dataset
    from pydicom.sequence import Sequence

    ds = fac.opt_dataset(stack[:2])
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 8])  # LUT Descriptor
    item.add_new(0x00283006, "US", list(range(255, -1, -1)))  # LUT Data
    voi = Dataset()
    voi.VOILUTSequence = Sequence([item])
    ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence = Sequence([voi])
    scan = load(fac.write(ds, tmp_path / "voilut.dcm"))
    np.testing.assert_array_equal(scan.frames, 255 - stack[:2])
