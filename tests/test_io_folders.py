"""Folder rules: one volume only when the files are one; independent scans open one by one."""

from __future__ import annotations

import shutil
from pathlib import Path

import io_factory as fac
import numpy as np
import pytest
from PIL import Image

from octviewer.core.io import load, plan_folder
from octviewer.core.scan import Modality
from octviewer.errors import AmbiguousSeriesError

VOL = fac.IO_DATA / "vendor"


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    return fac.kermany_stack()  # three real 512 x 496 B-scans


def _save(folder: Path, names: list[str], frames: np.ndarray) -> Path:
    folder.mkdir(exist_ok=True)
    for name, frame in zip(names, frames, strict=True):
        Image.fromarray(frame).save(folder / name)
    return folder


def test_numbered_bscans_of_one_size_are_one_volume(tmp_path: Path, stack: np.ndarray) -> None:
    folder = _save(tmp_path / "vol", ["bscan_001.png", "bscan_002.png", "bscan_003.png"], stack)
    plan = plan_folder(folder)
    assert plan.decision == "one" and len(plan.items[0].paths) == 3
    scan = load(folder)
    assert scan.n_frames == 3 and scan.metadata.modality is Modality.OCT_VOLUME


def test_same_size_images_of_different_patients_are_separate(tmp_path: Path, stack) -> None:
    names = ["CNV-1016042-1.png", "DME-30521-1.png", "NORMAL-9741296-1.png"]
    folder = _save(tmp_path / "unrelated", names, stack)
    plan = plan_folder(folder)
    assert plan.decision == "several" and len(plan.items) == 3
    with pytest.raises(AmbiguousSeriesError, match="3 independent scans") as info:
        load(folder)
    assert info.value.independent
    for key in info.value.series:
        assert load(folder, series=key).n_frames == 1


def test_names_that_mark_different_eyes_are_separate(tmp_path: Path, stack) -> None:
    folder = _save(tmp_path / "eyes", ["scan_OD_1.png", "scan_OS_1.png"], stack[:2])
    assert plan_folder(folder).decision == "several"


def test_folder_of_vendor_files_opens_each(tmp_path: Path) -> None:
    folder = tmp_path / "vendor"
    folder.mkdir()
    for name in ("Willis_B_716_0.vol", "circular-valid.vol", "fda_minimized.fda"):
        shutil.copy(VOL / name, folder / name)
    plan = plan_folder(folder)
    assert plan.decision == "several"
    assert set(plan.choices) == {
        "file:Willis_B_716_0.vol",
        "file:circular-valid.vol",
        "file:fda_minimized.fda",
    }
    assert load(folder, series="file:circular-valid.vol").localizer.pattern == "circle"
    assert load(folder, series="file:fda_minimized.fda").metadata.format == "Topcon FDA"


def test_dicom_of_two_series_opens_as_two_scans(tmp_path: Path, stack) -> None:
    folder = tmp_path / "two_series"
    folder.mkdir()
    fac.write(fac.opt_dataset(stack[:2]), folder / "a.dcm")
    fac.write(fac.opt_dataset(stack[2:]), folder / "b.dcm")
    plan = plan_folder(folder)
    assert plan.decision == "several" and len(plan.items) == 2
    assert sorted(load(folder, series=k).n_frames for k in plan.choices) == [1, 2]


def test_dicom_series_in_several_files_is_one_scan(tmp_path: Path, stack) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    for i in range(3):
        ds = fac.opt_dataset(stack[i : i + 1], series_uid="1.2.3.999", instance_number=i + 1)
        fac.write(ds, folder / f"IM{i}.dcm")
    assert plan_folder(folder).decision == "one"
    assert load(folder).n_frames == 3


def test_bscans_and_their_slo_become_a_volume_with_localizer(tmp_path: Path, stack) -> None:
    folder = _save(tmp_path / "with_slo", ["oct_1.png", "oct_2.png", "oct_3.png"], stack)
    enface = (np.add.outer(np.arange(300), np.arange(300)) % 256).astype(np.uint8)
    Image.fromarray(enface).save(folder / "slo.png")
    plan = plan_folder(folder)
    assert plan.decision == "one" and plan.items[0].localizer == folder / "slo.png"
    scan = load(folder)
    assert scan.n_frames == 3 and scan.localizer is not None
    np.testing.assert_array_equal(scan.localizer.image, enface)


def test_bscans_and_two_other_images_ask(tmp_path: Path, stack) -> None:
    folder = _save(tmp_path / "unclear", ["oct_1.png", "oct_2.png"], stack[:2])
    for name, side in (("slo.png", 300), ("fundus.png", 400)):
        Image.fromarray(np.full((side, side), 90, np.uint8)).save(folder / name)
    plan = plan_folder(folder)
    assert plan.decision == "ask" and "cannot tell" in plan.reason
    with pytest.raises(AmbiguousSeriesError, match="cannot tell") as info:
        load(folder)
    assert not info.value.independent and "images" in info.value.series
    assert load(folder, series="images").n_frames == 2
