"""Image readers: real Kermany JPEGs, PNG/TIFF/BMP at 8 and 16 bit, colour, folders, size safety."""

from __future__ import annotations

from pathlib import Path

import io_factory as fac
import numpy as np
import pytest
from PIL import Image

from octviewer import Modality
from octviewer.core.io import load, safety
from octviewer.core.io.sniff import FileKind, sniff

KERMANY = fac.IO_DATA / "kermany"


@pytest.fixture(scope="module")
def bscan() -> np.ndarray:
    return np.asarray(Image.open(KERMANY / "NORMAL-2633503-1.jpeg"))


def test_real_kermany_jpegs(tmp_path: Path) -> None:
    for path in sorted(KERMANY.glob("*.jpeg")):
        scan = load(path)
        expected = np.asarray(Image.open(path))
        np.testing.assert_array_equal(scan.frames[0], expected)
        assert scan.frames.dtype == np.uint8 and scan.n_frames == 1
        m = scan.metadata
        assert m.format == "JPEG" and m.modality is Modality.OCT_BSCAN and not m.was_color
        assert m.source_paths == (path,) and m.bit_depth == 8


def test_content_wins_over_suffix(tmp_path: Path) -> None:
    wrong = tmp_path / "bscan.png"
    wrong.write_bytes((KERMANY / "NORMAL-2633503-1.jpeg").read_bytes())
    assert sniff(wrong) is FileKind.JPEG
    assert load(wrong).metadata.format == "JPEG"


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP"])
def test_8bit_lossless_formats(tmp_path: Path, bscan: np.ndarray, fmt: str) -> None:
    path = tmp_path / f"b.{fmt.lower()}"
    Image.fromarray(bscan).save(path, format=fmt)
    scan = load(path)
    np.testing.assert_array_equal(scan.frames[0], bscan)
    assert scan.metadata.format == fmt and scan.metadata.modality is Modality.OCT_BSCAN


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit(tmp_path: Path, bscan: np.ndarray, fmt: str) -> None:
    data = bscan.astype(np.uint16) * 257
    path = tmp_path / f"b16.{fmt.lower()}"
    Image.fromarray(data).save(path, format=fmt)
    scan = load(path)
    assert scan.frames.dtype == np.uint16 and scan.metadata.bit_depth == 16
    np.testing.assert_array_equal(scan.frames[0], data)


@pytest.mark.parametrize("sixteen", [False, True])
def test_multipage_tiff_is_a_volume(tmp_path: Path, sixteen: bool) -> None:
    stack = fac.kermany_stack()
    if sixteen:
        import tifffile

        stack = stack.astype(np.uint16) * 100
        path = tmp_path / "vol16.tif"
        tifffile.imwrite(path, stack, photometric="minisblack")  # 3 pages
    else:
        path = tmp_path / "vol.tif"
        pages = [Image.fromarray(f) for f in stack]
        pages[0].save(path, save_all=True, append_images=pages[1:])
    scan = load(path)
    assert scan.metadata.modality is Modality.OCT_VOLUME and scan.is_volume
    np.testing.assert_array_equal(scan.frames, stack)


def _fundus_like(rows: int = 300, cols: int = 400) -> np.ndarray:
    """A warm, red-orange disc on black: the colour signature of a colour fundus photograph."""
    yy, xx = np.mgrid[:rows, :cols]
    disc = ((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2) < (rows / 2.2) ** 2
    rgb = np.zeros((rows, cols, 3), np.uint8)
    rgb[disc] = (200, 90, 30)
    return rgb


def test_colour_photo_is_greyscale_and_flagged(tmp_path: Path) -> None:
    path = tmp_path / "fundus.png"
    Image.fromarray(_fundus_like()).save(path)
    scan = load(path)
    assert scan.frames.shape == (1, 300, 400) and scan.frames.dtype == np.uint8
    assert scan.metadata.was_color and scan.metadata.modality is Modality.FUNDUS and not scan.is_oct
    assert any("colour" in n for n in scan.metadata.notes)


def test_other_colour_image_is_unknown(tmp_path: Path) -> None:
    rgb = _fundus_like()[..., ::-1].copy()  # blue: a colour image, but not a fundus photo
    path = tmp_path / "blue.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    scan = load(path)
    assert scan.metadata.was_color and scan.metadata.modality is Modality.UNKNOWN


def test_grey_stored_as_rgb_is_not_colour(tmp_path: Path, bscan: np.ndarray) -> None:
    path = tmp_path / "grey_rgb.png"
    Image.fromarray(np.dstack([bscan] * 3)).save(path)
    scan = load(path)
    assert not scan.metadata.was_color and scan.metadata.modality is Modality.OCT_BSCAN
    np.testing.assert_array_equal(scan.frames[0], bscan)


def test_palette_and_alpha_images(tmp_path: Path, bscan: np.ndarray) -> None:
    pal = tmp_path / "pal.png"
    Image.fromarray(bscan).convert("P").save(pal)
    assert load(pal).frames.shape == (1, 496, 512)
    la = tmp_path / "la.png"
    Image.fromarray(bscan).convert("LA").save(la)
    np.testing.assert_array_equal(load(la).frames[0], bscan)


def test_folder_of_images_in_natural_order(tmp_path: Path) -> None:
    stack = fac.kermany_stack()
    folder = tmp_path / "stack"
    folder.mkdir()
    for i, frame in zip((2, 10, 1), stack, strict=True):  # scan_1, scan_2, scan_10 after sorting
        Image.fromarray(frame).save(folder / f"scan_{i}.png")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    scan = load(folder)
    assert [p.name for p in scan.metadata.source_paths] == [
        "scan_1.png",
        "scan_2.png",
        "scan_10.png",
    ]
    np.testing.assert_array_equal(scan.frames, stack[[2, 0, 1]])
    assert scan.metadata.format == "image folder" and scan.metadata.modality is Modality.OCT_VOLUME


def test_large_jpeg_is_downsampled_during_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safety, "MAX_DECODE_PIXELS", 400 * 400)
    monkeypatch.setattr(safety, "MAX_KEEP_PIXELS", 300 * 300)
    rows, cols = 992, 1024
    big = np.asarray(Image.open(KERMANY / "NORMAL-2633503-1.jpeg").resize((cols, rows)))
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=95)
    scan = load(path)
    assert scan.metadata.downsampled_from == (rows, cols)
    assert scan.frames.shape[1] * scan.frames.shape[2] <= 300 * 300
    # same picture, smaller: compare with a plain resize
    ref = np.asarray(
        Image.fromarray(big).resize(scan.shape[::-1], Image.Resampling.BOX), np.float32
    )
    assert np.abs(scan.frames[0].astype(np.float32) - ref).mean() < 8


def test_large_png_is_shrunk_after_decode(
    tmp_path: Path, bscan: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safety, "MAX_KEEP_PIXELS", 200 * 200)
    path = tmp_path / "b.png"
    Image.fromarray(bscan).save(path)
    scan = load(path)
    assert scan.metadata.downsampled_from == (496, 512)
    assert scan.frames.shape[1] * scan.frames.shape[2] <= 200 * 200
