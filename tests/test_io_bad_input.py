"""Every malformed input in the corpus gives one specific, readable error — and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import io_factory as fac
import pytest

import octviewer.core.io.errors as io_errors
import octviewer.errors as errors
from octviewer.core.io import load

CORPUS_NAMES = [
    "empty.jpg", "empty.dcm", "truncated.jpg", "truncated.png", "truncated.tif", "truncated.bmp",
    "header_only.png", "text.dcm", "random.dcm", "document.png", "archive.dcm", "anim.gif",
    "raw_data.dcm", "truncated_pixels.dcm", "truncated_header.dcm", "garbled_j2k.dcm",
    "truncated.vol", "garbage.E2E", "garbage.fda", "bomb_30000.png", "bomb_30000.jpg",
    "bomb_30000.bmp", "huge_rows.dcm", "many_frames.dcm", "empty_folder", "no_images",
    "only_subfolders", "raw_data_only", "folder_named_scan.dcm", "mixed_series",
    "dicom_and_images", "different_sizes", "missing.dcm", "missing_folder/scan.jpg", "pipe.dcm",
    "locked.jpg",
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return fac.malformed_corpus(tmp_path_factory.mktemp("malformed"))


def test_corpus_is_complete(corpus: dict[str, tuple[Path, str]]) -> None:
    expected = [n for n in CORPUS_NAMES if n != "pipe.dcm" or hasattr(os, "mkfifo")]
    assert sorted(corpus) == sorted(expected)


def _error_class(name: str) -> type[Exception]:
    return getattr(errors, name, None) or getattr(io_errors, name)


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_malformed_input(
    name: str, corpus: dict[str, tuple[Path, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if name not in corpus:
        pytest.skip(f"{name} cannot be made on this platform")
    path, expected_name = corpus[name]
    expected = _error_class(expected_name)
    if name == "locked.jpg" and os.access(path, os.R_OK):
        # running as root: the OS would let us read it anyway, so refuse the open as it would
        real_open = Path.open

        def refusing_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refusing_open)
    with pytest.raises(errors.ScanReadError) as info:
        load(path)
    err = info.value
    assert type(err) is expected, f"{name}: {type(err).__name__}: {err}"
    message = str(err)
    assert len(message) > 40 and "Traceback" not in message
    assert path.name in message or path.name in str(err.path)


def test_bomb_is_refused_without_allocating(corpus: dict[str, tuple[Path, str]]) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        for name in ("bomb_30000.png", "bomb_30000.jpg", "huge_rows.dcm", "many_frames.dcm"):
            with pytest.raises(errors.ImageTooLargeError):
                load(corpus[name][0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024**2


def test_ambiguous_series_lists_choices(corpus: dict[str, tuple[Path, str]]) -> None:
    with pytest.raises(errors.AmbiguousSeriesError) as info:
        load(corpus["dicom_and_images"][0])
    assert "images" in info.value.series and len(info.value.series) == 2
    scan = load(corpus["dicom_and_images"][0], series="images")
    assert scan.metadata.format == "image folder"


def test_missing_vendor_reader_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for mod in ("eyepy", "eyepy.io", "eyepy.io.he", "eyepy.io.he.vol_reader"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(errors.MissingDependencyError) as info:
        load(fac.IO_DATA / "vendor" / "Willis_B_716_0.vol")
    assert isinstance(info.value, errors.ScanReadError)
    assert 'pip install "octviewer[vendor]"' in str(info.value) and "eyepy" in str(info.value)
