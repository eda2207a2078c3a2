"""Vendor formats: Heidelberg .vol (every scan pattern) and .E2E, Topcon .fda / .fds."""

from __future__ import annotations

import datetime as dt
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import io_factory as fac
import numpy as np
import pytest

from octviewer import Laterality, Modality
from octviewer.core.io import MissingReaderError, load
from octviewer.errors import CorruptFileError, MissingDependencyError, UnsupportedFormatError

VOL = fac.IO_DATA / "vendor" / "Willis_B_716_0.vol"


def test_heidelberg_vol_with_slo_localizer() -> None:
    scan = load(VOL)
    assert scan.frames.shape == (1, 496, 768) and scan.frames.dtype == np.uint8
    assert scan.frames.std() > 10  # a real B-scan, not a blank
    m = scan.metadata
    assert m.format == "Heidelberg VOL" and m.modality is Modality.OCT_BSCAN
    assert m.laterality is Laterality.RIGHT and m.acquisition_date == dt.date(2017, 1, 11)
    assert m.spacing.col == pytest.approx(0.011820577) and m.spacing.row == pytest.approx(
        0.00387167
    )
    assert m.manufacturer == "Heidelberg Engineering"
    # the SLO is the localizer; the single B-scan runs across its middle, edge to edge
    assert scan.localizer is not None and scan.localizer.image.shape == (768, 768)
    np.testing.assert_allclose(scan.localizer.positions, [[0, 384, 768, 384]], atol=0.5)
    assert scan.identity.patient_id and scan.identity.patient_id not in repr(m)


def test_vendor_files_are_sniffed_not_trusted_by_suffix(tmp_path: Path) -> None:
    renamed = tmp_path / "export.bin"
    renamed.write_bytes(VOL.read_bytes())
    assert load(renamed).metadata.format == "Heidelberg VOL"


CIRCLE = fac.IO_DATA / "vendor" / "circular-valid.vol"


def test_circular_vol_opens_with_its_circle_on_the_slo() -> None:
    scan = load(CIRCLE)
    assert scan.frames.shape == (1, 496, 768) and scan.frames.std() > 10
    assert scan.metadata.format == "Heidelberg VOL"
    # the reader says OCT B-scan; main's pixel content check (issue 11a) currently reads this
    # peripapillary B-scan, whose retina touches the top edge, as en-face: either is accepted
    # here, the reader's job is to open it with its position
    assert scan.metadata.modality in (Modality.OCT_BSCAN, Modality.EN_FACE)
    assert scan.metadata.laterality is Laterality.RIGHT
    assert "Heidelberg circular scan" in scan.metadata.notes
    loc = scan.localizer
    assert loc is not None and loc.pattern == "circle" and loc.image.shape == (768, 768)
    # the file stores the start point and the centre of the circle (mm -> SLO pixels)
    xs, ys, cx, cy = loc.positions[0]
    assert (cx, cy) == pytest.approx((346.55, 327.57), abs=0.05)
    radius_px = np.hypot(xs - cx, ys - cy)
    # the circle's circumference is the B-scan's length: 768 A-scans x 0.01789 mm
    circumference_mm = 2 * np.pi * radius_px * 0.014237204566597939
    assert circumference_mm == pytest.approx(768 * scan.metadata.spacing.col, rel=0.01)
    ring = loc.outline(0)
    assert ring.shape[0] > 50
    np.testing.assert_allclose(np.hypot(ring[:, 0] - cx, ring[:, 1] - cy), radius_px, rtol=1e-6)
    np.testing.assert_allclose(ring[0], (xs, ys), atol=1e-6)  # it starts where the scan starts


def test_circular_vol_birth_date_stays_in_the_identity() -> None:
    scan = load(CIRCLE)
    assert scan.identity.birth_date == "19380731"
    for text in (repr(scan.metadata), repr(scan.localizer.pattern), scan.metadata.display_name):
        assert "1938" not in text


def test_line_vol_outline_is_its_line() -> None:
    loc = load(VOL).localizer
    assert loc.pattern == "line"
    np.testing.assert_allclose(loc.outline(0), [[0, 384], [768, 384]], atol=0.5)


def _rewrite_vol(tmp_path: Path, pattern: int, n_bscans: int) -> Path:
    """The real .vol with another scan pattern and its B-scan repeated ``n_bscans`` times on
    lines through one centre (HSF-OCT layout: 2048-byte header, SLO, then per B-scan a header
    of BScanHdrSize bytes and SizeX x SizeY float32)."""
    raw = bytearray(VOL.read_bytes())
    size_x, _n, size_y = struct.unpack_from("<3I", raw, 12)
    slo_x, slo_y = struct.unpack_from("<2I", raw, 48)
    hdr_size = struct.unpack_from("<I", raw, 100)[0]
    first = 2048 + slo_x * slo_y
    block = bytes(raw[first : first + hdr_size + size_x * size_y * 4])
    struct.pack_into("<I", raw, 16, n_bscans)
    struct.pack_into("<d", raw, 32, 0.1)  # distance between B-scans, mm
    struct.pack_into("<i", raw, 96, pattern)
    out = bytearray(raw[:first])
    for i in range(n_bscans):
        b = bytearray(block)
        angle, c, r = np.pi * i / n_bscans, 4.54, 4.0
        struct.pack_into(
            "<4d",
            b,
            16,
            c - r * np.cos(angle),
            c - r * np.sin(angle),
            c + r * np.cos(angle),
            c + r * np.sin(angle),
        )
        out += b
    path = tmp_path / f"pattern{pattern}.vol"
    path.write_bytes(bytes(out))
    return path


def test_radial_vol_keeps_every_bscan_position(tmp_path: Path) -> None:
    scan = load(_rewrite_vol(tmp_path, 5, n_bscans=6))
    assert scan.n_frames == 6 and scan.metadata.modality is Modality.OCT_VOLUME
    loc = scan.localizer
    assert loc.pattern == "radial" and loc.positions.shape == (6, 4)
    centres = (loc.positions[:, :2] + loc.positions[:, 2:]) / 2
    np.testing.assert_allclose(centres, centres[0][None].repeat(6, 0), atol=0.01)
    assert "Heidelberg radial scan" in scan.metadata.notes


def test_volume_vol_keeps_positions_and_spacing(tmp_path: Path) -> None:
    scan = load(_rewrite_vol(tmp_path, 3, n_bscans=3))
    assert scan.n_frames == 3 and scan.localizer.pattern == "line"
    assert scan.metadata.spacing.frame == pytest.approx(0.1)
    assert len({tuple(p) for p in scan.localizer.positions}) == 3


def test_topcon_fda_opens_through_oct_converter() -> None:
    scan = load(fac.IO_DATA / "vendor" / "fda_minimized.fda")
    assert scan.frames.shape == (1, 650, 512) and scan.frames.std() > 5
    m = scan.metadata
    assert m.format == "Topcon FDA" and m.modality is Modality.OCT_BSCAN
    assert m.laterality is Laterality.LEFT and m.acquisition_date == dt.date(2010, 7, 9)
    assert m.spacing.col == pytest.approx(0.01171875) and m.spacing.row == pytest.approx(0.0035)
    assert scan.localizer is None  # its fundus image is a 2 x 3 thumbnail in this minimised file


def test_topcon_fds_opens_as_a_volume() -> None:
    scan = load(fac.IO_DATA / "vendor" / "fds_minimized.fds")
    assert scan.frames.shape == (4, 3, 2) and scan.frames.dtype == np.uint16
    assert scan.metadata.format == "Topcon FDS" and scan.metadata.spacing.frame == 1.5
    # 3 x 2 pixel B-scans (a minimised file): the content check cannot tell what they show
    assert scan.metadata.modality is Modality.UNKNOWN
    assert any("too small" in n for n in scan.metadata.notes)


def test_topcon_patient_fields_go_to_the_identity_only() -> None:
    scan = load(fac.IO_DATA / "vendor" / "fda_minimized.fda")
    # the minimised file's (pseudonymised) patient fields: ID "1", name "1", sex "O"
    assert scan.identity.patient_id == "1" and scan.identity.sex == "O"
    assert scan.metadata.notes == () and "O" not in {scan.metadata.device_model}


def test_topcon_file_without_an_oct_chunk_says_so(tmp_path: Path) -> None:
    raw = (fac.IO_DATA / "vendor" / "fda_minimized.fda").read_bytes()
    path = tmp_path / "photo_only.fda"
    path.write_bytes(raw.replace(b"@IMG_JPEG", b"@IMG_XPEG"))
    with pytest.raises(UnsupportedFormatError) as info:
        load(path)
    assert "holds no OCT B-scans" in str(info.value) and "DICOM" in str(info.value)
    assert "damaged" not in str(info.value)


def test_numpy_compat_layer_is_scoped() -> None:
    from octviewer.core.io.octconverter_compat import numpy_fromstring_for_bytes

    with numpy_fromstring_for_bytes():
        got = np.fromstring(b"\x01\x00\x02\x00", dtype=np.uint16)
        assert got.tolist() == [1, 2] and got.flags.writeable
        assert np.fromstring("1 2", dtype=int, sep=" ").tolist() == [1, 2]  # text mode untouched
    with pytest.raises(ValueError, match="binary mode"):
        np.fromstring(b"\x01\x00", dtype=np.uint16)


def test_oct_converter_imports_without_opencv_or_matplotlib() -> None:
    code = """
        import sys
        for name in ("cv2", "matplotlib", "matplotlib.pyplot", "imageio", "h5py"):
            sys.modules[name] = None  # as in the packaged app, which leaves them out
        for name in ("cv2", "matplotlib", "matplotlib.pyplot", "imageio", "h5py"):
            del sys.modules[name]
        import importlib.util
        real_find = importlib.util.find_spec
        importlib.util.find_spec = lambda n, *a: None if n.split(".")[0] in (
            "cv2", "matplotlib", "imageio", "h5py") else real_find(n, *a)
        import builtins
        real_import = builtins.__import__
        def guarded(name, *a, **k):
            if name.split(".")[0] in ("cv2", "matplotlib", "imageio", "h5py") and name not in sys.modules:
                raise ImportError(name)
            return real_import(name, *a, **k)
        builtins.__import__ = guarded
        from octviewer.core.io import load
        scan = load(sys.argv[1])
        assert scan.frames.shape == (1, 650, 512), scan.frames.shape
        assert "cv2" not in sys.modules, "placeholder left behind"
    """
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(code),
            str(fac.IO_DATA / "vendor" / "fda_minimized.fda"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


def test_minimised_e2e_refusal_says_what_was_tried_and_what_to_export() -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        load(fac.IO_DATA / "vendor" / "e2e_minimized.E2E")
    message = str(info.value)
    assert "No B-scan could be read from this Heidelberg .E2E file" in message
    assert "eyepy found no series with B-scans" in message and "oct-converter" in message
    assert "DICOM" in message and ".vol" in message and "damaged" not in message


def test_truncated_vol_is_called_cut_short_not_damaged(tmp_path: Path) -> None:
    cut = tmp_path / "cut.vol"
    cut.write_bytes(CIRCLE.read_bytes()[:300_000])
    with pytest.raises(CorruptFileError) as info:
        load(cut)
    assert "could not be parsed" in str(info.value) and "ends early" in str(info.value)


def test_missing_oct_converter_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scan.E2E"
    path.write_bytes(b"CMDb" + bytes(200))
    monkeypatch.setitem(sys.modules, "oct_converter", None)
    with pytest.raises(MissingReaderError) as info:
        load(path)
    assert isinstance(info.value, MissingDependencyError)
    assert 'pip install "octviewer[vendor]"' in str(info.value) and "oct-converter" in str(
        info.value
    )


def test_importing_readers_loads_no_heavy_decoder() -> None:
    code = """
        import sys
        import octviewer.core.io
        import octviewer.core.io.dicom, octviewer.core.io.images, octviewer.core.io.series
        import octviewer.core.io.vendor
        heavy = [m for m in ("pydicom", "pylibjpeg", "openjpeg", "eyepy", "oct_converter", "cv2",
                             "torch", "PySide6") if m in sys.modules]
        assert not heavy, heavy
    """
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr


def test_installed_but_incomplete_reader_is_not_called_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what a frozen app that lost one of eyepy's modules did: eyepy is there, a part is not
    monkeypatch.setitem(sys.modules, "eyepy.io.he.vol_reader", None)
    with pytest.raises(MissingReaderError) as info:
        load(VOL)
    message = str(info.value)
    assert "it is installed but part of it could not be loaded" in message
    assert "which is not installed" not in message and "damaged" not in message
