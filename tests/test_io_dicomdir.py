"""DICOMDIR: an index of a DICOM export lists its series, opens the chosen one, names missing files."""

from __future__ import annotations

import shutil
from pathlib import Path

import io_factory as fac
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid

from octviewer.core.io import load
from octviewer.errors import AmbiguousSeriesError, MissingReferencedFilesError, ScanReadError

REAL = fac.IO_DATA / "dicom" / "process-dcm__DICOMDIR"


def test_real_dicomdir_without_its_files_names_them(tmp_path: Path) -> None:
    index = tmp_path / "DICOMDIR"
    shutil.copy(REAL, index)
    with pytest.raises(MissingReferencedFilesError) as info:
        load(index)
    message = str(info.value)
    assert "only the index of a DICOM export" in message and "lists 3 series" in message
    for name in ("DICOM/0001", "DICOM/0002", "DICOM/0003"):
        assert name in message
    assert "OPT" in message and "49 frame(s)" in message
    assert "cut short" not in message and "damaged" not in message
    assert {p.name for p in info.value.missing} == {"0001", "0002", "0003"}
    # no patient name or ID from the index's PATIENT records
    assert "C925301d2" not in message and "d46c9e94" not in message


def _export(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A DICOMDIR written by pydicom over two real-pixel OPT series (2 and 1 frames)."""
    stack = fac.kermany_stack()
    fs = FileSet()
    uids = {}
    for frames in (stack[:2], stack[2:]):
        uid = generate_uid()
        ds = fac.opt_dataset(frames, series_uid=uid)
        ds.PatientID, ds.PatientName = "test-id", "Test^Patient"
        ds.StudyInstanceUID = getattr(ds, "StudyInstanceUID", None) or generate_uid()
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "120000", "1"
        ds.AccessionNumber, ds.SeriesNumber = "", len(uids) + 1
        fs.add(ds)
        uids[uid] = len(frames)
    out = tmp_path / "export"
    fs.write(out)
    return out / "DICOMDIR", uids


def test_dicomdir_lists_its_series_and_opens_the_chosen_one(tmp_path: Path) -> None:
    index, uids = _export(tmp_path)
    with pytest.raises(AmbiguousSeriesError) as info:
        load(index)
    assert set(info.value.series) == set(uids)
    assert "lists 2 series with images" in str(info.value)
    for uid, n in uids.items():
        scan = load(index, series=uid)
        assert scan.n_frames == n and scan.is_oct


def test_dicomdir_names_the_file_of_the_chosen_series_that_is_missing(tmp_path: Path) -> None:
    index, uids = _export(tmp_path)
    first = next(iter(uids))
    with pytest.raises(AmbiguousSeriesError) as info:
        load(index)
    listing = info.value.series[first]
    victim = next(p for p in index.parent.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    rel = victim.relative_to(index.parent).as_posix()
    victim.unlink()
    hit = [uid for uid in uids if rel in info.value.series[uid]]
    assert len(hit) == 1 and listing
    with pytest.raises(MissingReferencedFilesError, match=rel) as missing:
        load(index, series=hit[0])
    assert missing.value.missing == [victim]
    other = next(uid for uid in uids if uid != hit[0])
    assert load(index, series=other).n_frames == uids[other]  # the other series still opens


def test_damaged_dicomdir_says_it_is_an_index(tmp_path: Path) -> None:
    index = tmp_path / "DICOMDIR"
    index.write_bytes(REAL.read_bytes()[:900])
    with pytest.raises(ScanReadError) as info:
        load(index)
    assert "DICOMDIR" in str(info.value) or "index" in str(info.value)


def test_export_folder_with_a_dicomdir_opens_through_it(tmp_path: Path) -> None:
    # a typical disc / USB export: DICOMDIR next to the folder of files it indexes
    index, uids = _export(tmp_path)
    with pytest.raises(AmbiguousSeriesError) as info:
        load(index.parent)
    assert set(info.value.series) == set(uids)
    for uid, n in uids.items():  # the window's choice comes back with the folder's path
        assert load(index.parent, series=uid).n_frames == n
