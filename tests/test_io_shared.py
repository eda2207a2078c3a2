"""The real-data corpus in ../shared/data opens (or fails) as its README says. Skips without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from octviewer import Modality
from octviewer.core.io import load
from octviewer.errors import AmbiguousSeriesError, NoPixelDataError, UnsupportedFormatError


def test_all_kermany_jpegs_load(shared_data: Path) -> None:
    paths = sorted((shared_data / "kermany").glob("*/*.jpeg"))
    assert len(paths) == 648
    for path in paths:
        scan = load(path)
        with Image.open(path) as im:
            assert scan.shape == (im.size[1], im.size[0]), path.name
        assert scan.frames.dtype == np.uint8 and scan.metadata.modality is Modality.OCT_BSCAN, (
            path.name
        )
        assert not scan.metadata.was_color, path.name


@pytest.mark.parametrize(
    ("name", "modality", "shape"),
    [
        ("example-dcms__fundus.dcm", Modality.FUNDUS, (1, 768, 768)),
        ("cataract__eye.dcm", Modality.FUNDUS, (1, 576, 768)),
        ("topcon_bscan_opt.dcm", Modality.OCT_BSCAN, (1, 650, 512)),
    ],
)
def test_shared_dicom_files(
    shared_data: Path, name: str, modality: Modality, shape: tuple[int, ...]
) -> None:
    scan = load(shared_data / "dicom" / name)
    assert scan.frames.shape == shape and scan.metadata.modality is modality


def test_shared_raw_data_dicom(shared_data: Path) -> None:
    with pytest.raises(NoPixelDataError):
        load(shared_data / "dicom" / "example-dcms__OT.dcm")


def test_shared_dicom_folder_asks_which_series(shared_data: Path) -> None:
    from octviewer.errors import AmbiguousSeriesError

    with pytest.raises(AmbiguousSeriesError) as info:
        load(shared_data / "dicom")
    assert (
        len(info.value.series) == 3
    )  # fundus, cataract photo, Topcon B-scan (Raw Data has no image)
    for key in info.value.series:
        assert load(shared_data / "dicom", series=key).n_frames == 1


def test_shared_vendor_files(shared_data: Path) -> None:
    assert (
        load(shared_data / "vendor" / "Willis_B_716_0.vol").metadata.modality is Modality.OCT_BSCAN
    )
    for name in ("circular-valid.vol", "TEST_T_2707_0.vol", "TEST_T_2710_0.vol"):
        assert load(shared_data / "vendor" / name).localizer is not None
    for name in ("fda_minimized.fda", "fds_minimized.fds"):
        assert load(shared_data / "vendor" / name).metadata.manufacturer == "Topcon"
    with pytest.raises(UnsupportedFormatError, match="No B-scan could be read"):
        load(shared_data / "vendor" / "e2e_minimized.E2E")


def test_kermany_class_folder_is_many_independent_scans(shared_data: Path) -> None:
    # B-scans of many patients and sizes: never one volume; each opens on its own
    with pytest.raises(AmbiguousSeriesError, match="independent scans") as info:
        load(shared_data / "kermany" / "CNV")
    assert info.value.independent and len(info.value.series) > 100


def test_shared_vendor_folder_opens_as_separate_scans(shared_data: Path) -> None:
    with pytest.raises(AmbiguousSeriesError) as info:
        load(shared_data / "vendor")
    assert info.value.independent and len(info.value.series) == 7
    assert load(shared_data / "vendor", series="file:circular-valid.vol").localizer.pattern == (
        "circle"
    )
