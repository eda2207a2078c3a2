"""One regression test per finding of ``scripts/fuzz_loaders.py`` (issue 26): no hang, no
allocation a header asked for, no last-resort refusal, no silent all-zero frames. Every hostile
file is generated here from the small files in ``tests/data`` (none is stored)."""

from __future__ import annotations

import io
import re
import shutil
import struct
import time
import tracemalloc
from pathlib import Path

import io_factory as fac
import numpy as np
import pytest
from PIL import Image

from octviewer.core.io import headers, load, tiffwalk
from octviewer.core.io.dicomdir import file_is_dicomdir
from octviewer.errors import CorruptFileError, ImageTooLargeError, ScanReadError

VENDOR = fac.IO_DATA / "vendor"
#: what the last-resort handler of ``load`` says, and a Python exception type in a message
LAST_RESORT = ("not what its format promises", "could not be read from disk")
BARE_TYPE = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")


def _refusal(path: Path, kind: type[ScanReadError] = ScanReadError) -> str:
    """The refusal's message; it must be our own, naming no Python exception type."""
    with pytest.raises(kind) as info:
        load(path)
    message = str(info.value)
    assert not any(s in message for s in LAST_RESORT), message
    assert not BARE_TYPE.search(message), message
    return message


def _timed(path: Path, kind: type[ScanReadError] = ScanReadError) -> tuple[str, float]:
    t0 = time.perf_counter()
    message = _refusal(path, kind)
    return message, time.perf_counter() - t0


# --- hangs: DICOM headers that never end ---------------------------------------------------------
def test_dicm_preamble_and_64_mb_of_zeros_is_refused_at_once(tmp_path: Path) -> None:
    p = tmp_path / "zeros.dcm"
    with p.open("wb") as fh:
        fh.write(bytes(128) + b"DICM")
        fh.truncate(132 + (64 << 20))  # 64 MB of zeros (sparse on most file systems)
    t0 = time.perf_counter()
    assert not file_is_dicomdir(p)
    assert time.perf_counter() - t0 < 0.5
    message, seconds = _timed(p, CorruptFileError)
    assert seconds < 1.0 and "zero bytes" in message


def test_valid_dicom_followed_by_64_mb_of_zeros_is_refused_quickly(tmp_path: Path) -> None:
    ds = fac.opt_dataset((np.random.default_rng(0).random((3, 48, 64)) * 255).astype(np.uint8))
    p = fac.write(ds, tmp_path / "tail.dcm")
    with p.open("ab") as fh:
        fh.truncate(p.stat().st_size + (64 << 20))
    message, seconds = _timed(p, CorruptFileError)
    assert seconds < 1.0 and "zero bytes" in message


# --- hangs: TIFF page chains --------------------------------------------------------------------
def _tiff(n: int = 3) -> bytearray:
    pages = [Image.fromarray(np.full((16, 24), 40 * k + 10, np.uint8)) for k in range(n)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return bytearray(buf.getvalue())


def _ifds(data: bytearray) -> list[tuple[int, int]]:
    """(directory offset, offset of its next-directory pointer) of a little-endian TIFF."""
    out, at = [], struct.unpack("<I", data[4:8])[0]
    while at:
        n = struct.unpack("<H", data[at : at + 2])[0]
        out.append((at, at + 2 + 12 * n))
        at = struct.unpack("<I", data[at + 2 + 12 * n : at + 6 + 12 * n])[0]
    return out


def test_tiff_whose_page_chain_loops_back_is_refused(tmp_path: Path) -> None:
    data = _tiff()
    ifds = _ifds(data)
    data[ifds[-1][1] : ifds[-1][1] + 4] = struct.pack("<I", ifds[0][0])  # last -> first
    p = tmp_path / "cycle.tif"
    p.write_bytes(bytes(data))
    message, seconds = _timed(p, CorruptFileError)
    assert "loops back" in message and seconds < 1.0


def test_tiff_with_more_pages_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiffwalk, "MAX_PAGES", 2)
    p = tmp_path / "long.tif"
    p.write_bytes(bytes(_tiff(3)))
    assert "more than 2 pages" in _refusal(p, ImageTooLargeError)


def test_damaged_tiff_in_a_folder_names_the_cause(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    good = _tiff()
    (folder / "a.tif").write_bytes(bytes(good))
    bad = bytearray(good)
    first = _ifds(bad)[0][0]
    bad[first : first + 2] = struct.pack("<H", 60000)  # a directory claiming 60 000 entries
    (folder / "b.tif").write_bytes(bytes(bad))
    with pytest.raises(ScanReadError) as info:
        load(folder)
    message = str(info.value)
    assert not any(s in message for s in LAST_RESORT) and not BARE_TYPE.search(message), message
    assert "b.tif" in message
    assert "claims 60000 entries" in _refusal(folder / "b.tif", CorruptFileError)


# --- all-zero frames the file does not hold --------------------------------------------------------
def _strip_entries_zeroed(data: bytearray, page: int) -> bytearray:
    at, _ = _ifds(data)[page]
    n = struct.unpack("<H", data[at : at + 2])[0]
    for k in range(n):
        entry = at + 2 + 12 * k
        if struct.unpack("<H", data[entry : entry + 2])[0] in (273, 279):
            data[entry + 8 : entry + 12] = bytes(4)  # StripOffsets / StripByteCounts = 0
    return data


def test_tiff_whose_pages_hold_no_pixel_data_is_refused(tmp_path: Path) -> None:
    data = _tiff()
    for page in range(3):
        data = _strip_entries_zeroed(data, page)
    p = tmp_path / "nodata.tif"
    p.write_bytes(bytes(data))
    assert "not in the file" in _refusal(p, CorruptFileError)


def test_tiff_page_without_its_pixel_data_is_named(tmp_path: Path) -> None:
    p = tmp_path / "one_missing.tif"
    p.write_bytes(bytes(_strip_entries_zeroed(_tiff(), 1)))
    try:
        scan = load(p)
    except ScanReadError as exc:  # a decoder may still refuse the page: then with our words
        assert not BARE_TYPE.search(str(exc)) and not any(s in str(exc) for s in LAST_RESORT)
    else:
        assert any("page(s) of this TIFF (2)" in n for n in scan.metadata.notes)


# --- no allocation a header asked for --------------------------------------------------------------
def _vol_with(tmp_path: Path, name: str = "Willis_B_716_0.vol", **fields: int) -> Path:
    offsets = {"size_x": 12, "n_bscans": 16, "size_z": 20, "slo_x": 48, "slo_y": 52, "hdr": 100}
    data = bytearray((VENDOR / name).read_bytes())
    for name, value in fields.items():
        data[offsets[name] : offsets[name] + 4] = struct.pack("<I", value)
    p = tmp_path / "hostile.vol"
    p.write_bytes(bytes(data))
    return p


@pytest.mark.parametrize(
    "fields",
    [
        {"slo_x": 65535, "slo_y": 65535},  # a 4-billion-pixel SLO
        {"size_x": 65535, "size_z": 65535},  # a 4-billion-pixel B-scan
        {"n_bscans": 4_000_000_000},
        {"hdr": 0},
    ],
)
def test_vol_header_claiming_billions_of_pixels_is_refused_without_allocating(
    tmp_path: Path, fields: dict[str, int]
) -> None:
    p = _vol_with(tmp_path, **fields)
    tracemalloc.start()
    try:
        message, seconds = _timed(p, CorruptFileError)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1.0 and peak < 64 * 1024**2, (seconds, peak)
    assert "Heidelberg .vol" in message


def test_vol_header_budget_reads_the_real_files() -> None:
    for name in ("Willis_B_716_0.vol", "circular-valid.vol"):
        sizes = headers.check_vol(VENDOR / name)
        assert (sizes.size_x, sizes.size_z, sizes.n_bscans) == (768, 496, 1)
        assert sizes.expected_bytes <= (VENDOR / name).stat().st_size


@pytest.mark.parametrize("name", ["circular-valid.vol", "Willis_B_716_0.vol"])
@pytest.mark.parametrize("fields", [{"size_x": 1}, {"size_z": 1}, {"size_x": 300}])
def test_vol_header_describing_less_than_the_file_holds_is_refused(
    tmp_path: Path, name: str, fields: dict[str, int]
) -> None:
    """Fuzz run of 25 min, seed 7 (10 cases): the circle scan with SizeX = 1 fits its file, so
    eyepy read a 496 x 1 strip of the vitreous and the scan opened as one all-zero frame with
    no note (one B-scan: no second B-scan header to be out of place; the content check called
    the strip "too small", not blank). A header that accounts for a fraction of its file is
    refused, naming the B-scan size against the file's length."""
    message = _refusal(_vol_with(tmp_path, name, **fields), CorruptFileError)
    assert "does not match its header" in message and "B-scan size or count" in message
    assert "2.1" in message  # the file's megabytes (2.16 / 2.17)


def test_vol_bscan_header_that_disagrees_is_refused(tmp_path: Path) -> None:
    data = bytearray((VENDOR / "Willis_B_716_0.vol").read_bytes())
    first_bscan = headers.VOL_HEADER_BYTES + 768 * 768
    data[first_bscan + 48 : first_bscan + 52] = struct.pack("<I", 1_000_000)  # NumSeg
    p = tmp_path / "seg.vol"
    p.write_bytes(bytes(data))
    assert "B-scan 1" in _refusal(p, CorruptFileError)


def _topcon_with_slices(tmp_path: Path, name: str, chunk: bytes, offset: int, n: int) -> Path:
    data = bytearray((VENDOR / name).read_bytes())
    at = data.find(chunk) + len(chunk) + 4  # after the name and the chunk's size
    data[at + offset : at + offset + 4] = struct.pack("<I", n)
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return p


@pytest.mark.parametrize(
    ("name", "chunk", "offset"),
    [("fda_minimized.fda", b"@IMG_JPEG", 17), ("fds_minimized.fds", b"@IMG_SCAN_03", 13)],
)
def test_topcon_header_claiming_millions_of_bscans_is_refused(
    tmp_path: Path, name: str, chunk: bytes, offset: int
) -> None:
    pytest.importorskip("oct_converter")
    p = _topcon_with_slices(tmp_path, name, chunk, offset, 3_000_000_000)
    message, seconds = _timed(p)
    assert seconds < 1.0 and ("Topcon" in message or "frames" in message)


def test_topcon_chunk_beyond_the_end_of_the_file_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("oct_converter")
    data = (VENDOR / "fda_minimized.fda").read_bytes()
    p = tmp_path / "cut.fda"
    p.write_bytes(data[: len(data) // 2])
    assert "Topcon .fda" in _refusal(p, CorruptFileError)


def _fda_with_contour_width(tmp_path: Path, width: int) -> Path:
    """The test .fda with its last layer-segmentation chunk's width rewritten."""
    data = bytearray((VENDOR / "fda_minimized.fda").read_bytes())
    pos, last = 15, None
    while data[pos]:
        name = bytes(data[pos + 1 : pos + 1 + data[pos]])
        pos += 1 + data[pos]
        (length,) = struct.unpack("<I", data[pos : pos + 4])
        pos += 4
        if name == b"@CONTOUR_INFO":
            last = pos
        pos += length
    assert last is not None
    data[last + 22 : last + 26] = struct.pack("<I", width)
    p = tmp_path / "contour.fda"
    p.write_bytes(bytes(data))
    return p


def test_topcon_layer_segmentation_larger_than_its_chunk_is_refused_without_allocating(
    tmp_path: Path,
) -> None:
    """Fuzz (25 min, seed 7, case 59946): a flipped byte in a @CONTOUR_INFO width made
    oct-converter allocate gigabytes for the layer segmentation it reads with the B-scans."""
    pytest.importorskip("oct_converter")
    p = _fda_with_contour_width(tmp_path, 2_000_000_000)
    tracemalloc.start()
    try:
        message, seconds = _timed(p, CorruptFileError)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "layer segmentation" in message and "2,000,000,000" in message
    assert seconds < 1.0 and peak < 64 * 2**20
    assert load(_fda_with_contour_width(tmp_path, 512)).n_frames >= 1  # the real width reads


def test_dicom_frames_claimed_beyond_the_pixel_data_are_not_allocated(tmp_path: Path) -> None:
    ds = fac.opt_dataset((np.random.default_rng(0).random((3, 48, 64)) * 255).astype(np.uint8))
    ds.NumberOfFrames = 4000  # 4 000 x 48 x 64 declared over 3 frames of pixel data
    p = fac.write(ds, tmp_path / "claims.dcm")
    tracemalloc.start()
    try:
        scan = load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scan.n_frames == 3 and peak < 4000 * 48 * 64
    assert any("declares 4000 frames but holds only 3" in n for n in scan.metadata.notes)


def test_dicom_with_less_than_one_frame_of_pixel_data_is_refused(tmp_path: Path) -> None:
    ds = fac.opt_dataset((np.random.default_rng(0).random((1, 48, 64)) * 255).astype(np.uint8))
    ds.PixelData = ds.PixelData[:100]
    p = fac.write(ds, tmp_path / "tiny.dcm")
    assert "less than one frame" in _refusal(p, CorruptFileError)


def _pixel_length_stated(tmp_path: Path, stated: int) -> Path:
    """A valid 3-frame uncompressed DICOM whose Pixel Data element states ``stated`` bytes."""
    ds = fac.opt_dataset((np.random.default_rng(0).random((3, 48, 64)) * 255).astype(np.uint8))
    data = bytearray(fac.write(ds, tmp_path / "ok.dcm").read_bytes())
    at = data.find(b"\xe0\x7f\x10\x00OB\x00\x00") + 8  # (7FE0,0010) OB, its 4-byte length
    assert struct.unpack_from("<I", data, at)[0] == 3 * 48 * 64
    struct.pack_into("<I", data, at, stated)
    p = tmp_path / "length.dcm"
    p.write_bytes(bytes(data))
    return p


def test_a_deferred_dicom_value_is_read_back_within_the_file(tmp_path: Path) -> None:
    """Fuzz run of 25 min, seed 7, case 19391: a byte flip made the Pixel Data length 2.3 GB in
    a 13 KB file. The parse leaves the value on disk and reads no byte beyond the file, but
    pydicom re-opened the file by name to read the value back, whole, at its stated length (a
    MemoryError in the fuzz worker). Every deferred value is now read back through the same
    bound as the parse: what the file holds, not what a length field states."""
    from octviewer.core.io.dicom import read_header

    ds = read_header(_pixel_length_stated(tmp_path, 4_000_000_000))
    tracemalloc.start()
    try:
        value = ds.get_item("PixelData").value
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(value) == 3 * 48 * 64 and peak < 64 * 1024**2, peak


def test_dicom_pixel_data_length_beyond_the_file_is_refused_without_allocating(
    tmp_path: Path,
) -> None:
    """The same case as a whole: the pixel data is measured without reading it (the frames the
    file holds of it), and a stated length beyond the file while every declared frame is there
    is a damaged length field, refused by that cause, not opened as if nothing were wrong."""
    p = _pixel_length_stated(tmp_path, 2_346_202_187)
    tracemalloc.start()
    try:
        message, seconds = _timed(p, CorruptFileError)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1.0 and peak < 64 * 1024**2, (seconds, peak)
    assert "ends before the end of its image data" in message and "2,346,202,187" in message


def test_dicom_cut_between_two_frames_opens_with_the_frames_it_holds(tmp_path: Path) -> None:
    """A file cut short at a frame's end (its length field right, the file shorter) still opens
    with the whole frames it holds, and says so; only a length that no cut explains is refused."""
    p = _pixel_length_stated(tmp_path, 3 * 48 * 64)
    p.write_bytes(p.read_bytes()[: -48 * 64])
    scan = load(p)
    assert scan.n_frames == 2
    assert any("declares 3 frames but holds only 2" in n for n in scan.metadata.notes)


# --- last-resort refusals ----------------------------------------------------------------------
def test_dicomdir_with_a_bad_vr_names_the_index(tmp_path: Path) -> None:
    data = (fac.IO_DATA / "dicom" / "process-dcm__DICOMDIR").read_bytes()
    record_type = b"\x04\x00\x30\x14CS"  # (0004,1430) Directory Record Type, VR CS
    assert record_type in data
    p = tmp_path / "DICOMDIR"
    p.write_bytes(data.replace(record_type, b"\x04\x00\x30\x14ZZ"))
    try:
        load(p)
    except ScanReadError as exc:
        message = str(exc)
        assert not BARE_TYPE.search(message) and not any(s in message for s in LAST_RESORT)
        assert "DICOMDIR" in message
    else:  # pragma: no cover - an index with no file is never a scan
        pytest.fail("a DICOMDIR without its files opened")


def test_dicom_whose_file_meta_class_has_an_unknown_vr_is_not_a_last_resort(
    tmp_path: Path,
) -> None:
    """Fuzz run of 5 min, seed 11, cases 7834 and 7851: a byte flip turned the VR of the file
    meta's Media Storage SOP Class UID into 'CI'. pydicom converts a value when it is first
    read, so the DICOMDIR check failed on it (NotImplementedError, the last-resort handler).
    That class is not needed to read the image: the file opens, or is refused in our words."""
    ds = fac.opt_dataset((np.random.default_rng(0).random((3, 48, 64)) * 255).astype(np.uint8))
    data = fac.write(ds, tmp_path / "ok.dcm").read_bytes()
    media_class = b"\x02\x00\x02\x00UI"  # (0002,0002) Media Storage SOP Class UID, VR UI
    assert media_class in data
    p = tmp_path / "vr.dcm"
    p.write_bytes(data.replace(media_class, b"\x02\x00\x02\x00CI", 1))
    assert not file_is_dicomdir(p)
    try:
        scan = load(p)
    except ScanReadError as exc:
        assert not BARE_TYPE.search(str(exc)) and not any(s in str(exc) for s in LAST_RESORT)
    else:
        assert scan.n_frames == 3


def test_library_causes_carry_no_python_type_name() -> None:
    from octviewer.core.io.errors import library_cause

    assert library_cause(struct.error("unpack requires a buffer of 4 bytes")).startswith("the data")
    assert library_cause(KeyError("x")) == "a part the format requires is missing or unreadable"
    assert library_cause(ValueError("Unknown VR 'ZZ'")) == "Unknown VR 'ZZ'"


def test_real_vendor_files_still_open(tmp_path: Path) -> None:
    pytest.importorskip("eyepy")
    assert load(VENDOR / "Willis_B_716_0.vol").n_frames == 1
    shutil.copy(VENDOR / "circular-valid.vol", tmp_path / "c.vol")
    assert load(tmp_path / "c.vol").n_frames == 1


def test_frames_of_one_single_value_are_named_in_a_note(tmp_path: Path) -> None:
    """Blank frames inside a scan (a header and data that disagree) are marked, never shown
    silently as if they were B-scans."""
    from PIL import Image

    from octviewer.core.io import load

    rng = np.random.default_rng(0)
    pages = [rng.integers(0, 255, (64, 64), dtype=np.uint8) for _ in range(4)]
    pages[2] = np.zeros((64, 64), np.uint8)
    path = tmp_path / "stack.tif"
    Image.fromarray(pages[0]).save(
        path, save_all=True, append_images=[Image.fromarray(p) for p in pages[1:]]
    )
    notes = load(path).metadata.notes
    assert any(n.startswith("1 of 4 frames hold no image") and "frame(s) 3" in n for n in notes)


def test_a_scan_of_one_tiny_blank_frame_is_named_blank(tmp_path: Path) -> None:
    """The loader leaves a scan whose every frame is blank to the content check; that check
    called a blank frame under 32 pixels on a side "too small" (the .vol finding above showed
    as a 496 x 1 zero frame with no word of "blank"). One value is blank at any size."""
    path = tmp_path / "strip.png"
    Image.fromarray(np.zeros((496, 1), np.uint8)).save(path)
    scan = load(path)
    assert any("blank" in n for n in scan.metadata.notes), scan.metadata.notes
    assert not scan.metadata.modality.is_oct


def test_a_fragment_claiming_gigabytes_is_refused_without_allocating(tmp_path: Path) -> None:
    """Encapsulated pixel data whose fragment length claims ~4 GB: refused as damaged, in
    milliseconds and without a large allocation."""
    from pydicom.uid import JPEGBaseline8Bit

    from octviewer.core.io import load
    from octviewer.errors import CorruptFileError

    ds = fac.opt_dataset(fac.kermany_stack()[:1])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    item = b"\xfe\xff\x00\xe0"
    empty_offset_table = item + struct.pack("<L", 0)
    ds.PixelData = empty_offset_table + item + struct.pack("<L", 0xFFFFFFF0) + b"\xff\xd8"
    ds["PixelData"].VR = "OB"
    path = fac.write(ds, tmp_path / "huge-fragment.dcm")
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(CorruptFileError, match="claims"):
        load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - started < 2.0 and peak < 200 * 2**20
