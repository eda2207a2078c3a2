"""The acquisition protocol and the device's quality index, as each reader reads them from the
file (never from the pixels): Heidelberg .vol / .E2E, DICOM, Topcon .fda / .fds, folders."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import io_factory as fac
import pytest

from octviewer.core.io import load
from octviewer.core.scan import DeviceQuality, ScanPattern, ScanProtocol, ScanRegion

VENDOR = fac.IO_DATA / "vendor"
LINE_VOL = VENDOR / "Willis_B_716_0.vol"
CIRCLE_VOL = VENDOR / "circular-valid.vol"

# HSF-OCT-103 file header (little endian), as eyepy's vol_reader lays it out: Version 12 bytes,
# SizeX, NumBScans, SizeY (4 each), ScaleX, Distance, ScaleY (8 each), SizeXSlo, SizeYSlo (4
# each), ScaleXSlo, ScaleYSlo (8 each), FieldSizeSlo (4), ScanFocus (8), ScanPosition (4),
# ExamTime (8), then ScanPattern (int32) at byte 96. The header is 2048 bytes, the SLO follows
# (SizeXSlo * SizeYSlo bytes), then each B-scan's header, whose Quality (float32) sits at byte
# 56 (Version 12, BScanHdrSize 4, StartX/StartY/EndX/EndY 8 each, NumSeg 4, OffSeg 4).
SCAN_PATTERN_AT = 96
HEADER_SIZE = 2048
BSCAN_QUALITY_AT = 56


def _vol_copy(tmp_path: Path, src: Path, *, pattern: int | None = None, **q: float) -> Path:
    data = bytearray(src.read_bytes())
    if pattern is not None:
        data[SCAN_PATTERN_AT : SCAN_PATTERN_AT + 4] = struct.pack("<i", pattern)
    if "quality" in q:
        slo_x, slo_y = struct.unpack_from("<II", data, 48)
        at = HEADER_SIZE + slo_x * slo_y + BSCAN_QUALITY_AT
        data[at : at + 4] = struct.pack("<f", q["quality"])
    out = tmp_path / f"copy_{pattern}_{len(q)}.vol"
    out.write_bytes(bytes(data))
    return out


def test_the_offsets_used_here_are_the_ones_eyepy_parses() -> None:
    from eyepy.io.he.vol_reader import HeVolReader

    data = LINE_VOL.read_bytes()
    parsed = HeVolReader(LINE_VOL).parsed_file
    assert struct.unpack_from("<i", data, SCAN_PATTERN_AT)[0] == parsed.scan_pattern == 1
    slo = parsed.size_x_slo * parsed.size_y_slo
    q = struct.unpack_from("<f", data, HEADER_SIZE + slo + BSCAN_QUALITY_AT)[0]
    assert q == pytest.approx(parsed.bscans[0].quality)


def test_circle_vol_is_a_peripapillary_circle_scan() -> None:
    m = load(CIRCLE_VOL).metadata
    assert m.protocol.pattern is ScanPattern.CIRCLE
    assert m.protocol.region is ScanRegion.OPTIC_DISC
    assert "ScanPattern 2" in m.protocol.source and "peripapillary" in m.protocol.source
    assert m.protocol.description == "peripapillary circle scan"
    assert m.device_quality is not None and m.device_quality.values == pytest.approx(
        (24.4155,), abs=1e-3
    )


def test_line_vol_states_its_pattern_but_no_region() -> None:
    m = load(LINE_VOL).metadata
    assert m.protocol == ScanProtocol(
        pattern=ScanPattern.LINE,
        region=ScanRegion.UNKNOWN,
        name="single line scan",
        source=".vol header ScanPattern 1 (single line scan)",
    )
    q = m.device_quality
    assert q == DeviceQuality(
        name="Spectralis Q",
        values=q.values,
        minimum=15.0,
        source=".vol B-scan header Quality",
    )
    assert len(q.values) == 1 and q.values[0] == pytest.approx(44.5755, abs=1e-3)


@pytest.mark.parametrize(
    ("number", "pattern", "region"),
    [
        (3, ScanPattern.VOLUME, ScanRegion.UNKNOWN),
        (4, ScanPattern.VOLUME, ScanRegion.UNKNOWN),
        (5, ScanPattern.RADIAL, ScanRegion.UNKNOWN),
        (2, ScanPattern.CIRCLE, ScanRegion.OPTIC_DISC),
        (1, ScanPattern.LINE, ScanRegion.UNKNOWN),
    ],
)
def test_the_vol_scan_pattern_field_decides(
    tmp_path: Path, number: int, pattern: ScanPattern, region: ScanRegion
) -> None:
    protocol = load(_vol_copy(tmp_path, LINE_VOL, pattern=number)).metadata.protocol
    assert (protocol.pattern, protocol.region) == (pattern, region)
    assert protocol.source.startswith(f".vol header ScanPattern {number}")


@pytest.mark.parametrize("number", [0, 6, -1, 2**31 - 1, -(2**31)])
def test_unknown_or_hostile_vol_scan_patterns_are_unknown(tmp_path: Path, number: int) -> None:
    scan = load(_vol_copy(tmp_path, LINE_VOL, pattern=number))
    assert scan.metadata.protocol.pattern is ScanPattern.UNKNOWN
    assert scan.metadata.protocol.region is ScanRegion.UNKNOWN
    assert not scan.metadata.protocol.is_stated


def test_a_low_q_reads_back_as_written(tmp_path: Path) -> None:
    q = load(_vol_copy(tmp_path, LINE_VOL, quality=9.5)).metadata.device_quality
    assert q is not None and q.values == (9.5,) and q.values[0] < q.minimum


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -3.0, 1e30, 3.4028235e38])
def test_hostile_q_values_become_nan(tmp_path: Path, value: float) -> None:
    scan = load(_vol_copy(tmp_path, LINE_VOL, quality=value))
    assert scan.metadata.device_quality is None  # the only frame has no usable Q


def test_q_values_are_finite_or_nan() -> None:
    from octviewer.core.io.vendor import q_value, spectralis_quality

    assert q_value("12.5") == 12.5 and q_value(20) == 20.0
    for hostile in (None, "x", [1], object(), 10**400, -1, 101):
        assert math.isnan(q_value(hostile))
    quality = spectralis_quality([30.0, None, math.nan, 14.0], "test")
    assert quality is not None
    assert quality.values[0] == 30.0 and quality.values[3] == 14.0
    assert math.isnan(quality.values[1]) and math.isnan(quality.values[2])
    assert spectralis_quality([None, "bad"], "test") is None


def test_e2e_pattern_and_q_from_eyepy_bscan_headers() -> None:
    """The minimised E2E yields no B-scan, so the E2E path is checked on eyepy-shaped data."""
    from types import SimpleNamespace

    from octviewer.core.io.vendor import _e2e_eyepy_protocol

    vol = SimpleNamespace(meta={"bscan_meta": [{"scan_pattern": 3, "quality_ui": 27.0}] * 2})
    out = _e2e_eyepy_protocol(vol, 2)
    assert out["protocol"].pattern is ScanPattern.VOLUME
    assert out["protocol"].source.startswith("E2E B-scan header scan pattern 3")
    assert out["device_quality"].values == (27.0, 27.0)

    odd = SimpleNamespace(meta={"bscan_meta": [{"scan_pattern": "x"}, {"scan_pattern": 1}]})
    assert _e2e_eyepy_protocol(odd, 2) == {}
    assert _e2e_eyepy_protocol(object(), 1) == {}


def test_image_files_state_no_protocol() -> None:
    scan = load(fac.IO_DATA / "kermany" / "NORMAL-2633503-1.jpeg")
    assert scan.metadata.protocol == ScanProtocol() and scan.metadata.device_quality is None


# --- DICOM ------------------------------------------------------------------------------------
def _code(value: str, scheme: str, meaning: str) -> object:
    from pydicom import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


ONH = ("81016008", "SCT", "Optic nerve head")
FOVEA = ("T-AA621", "SRT", "Fovea centralis")
MACULA_TEXT = ("53655008", "SCT", "Macula lutea structure")  # matched by its meaning
RETINA = ("T-AA610", "SRT", "Retina")


@pytest.fixture(scope="module")
def stack() -> object:
    return fac.kermany_stack()


def _opt(tmp_path: Path, stack: object, name: str, *codes: tuple[str, str, str], **attrs: object):
    from pydicom.sequence import Sequence

    ds = fac.opt_dataset(stack)
    if codes:
        ds.AnatomicRegionSequence = Sequence([_code(*c) for c in codes])
    for keyword, value in attrs.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return load(fac.write(ds, tmp_path / f"{name}.dcm")).metadata.protocol


def test_dicom_anatomic_region_optic_disc(tmp_path: Path, stack: object) -> None:
    protocol = _opt(tmp_path, stack, "onh", ONH)
    assert protocol.region is ScanRegion.OPTIC_DISC
    assert "Anatomic Region Sequence (0008,2218)" in protocol.source
    assert "81016008" in protocol.source


@pytest.mark.parametrize("code", [FOVEA, MACULA_TEXT, ("111900", "DCM", "Macula centered")])
def test_dicom_anatomic_region_macula(tmp_path: Path, stack: object, code: tuple) -> None:
    protocol = _opt(tmp_path, stack, "macula", code)
    assert protocol.region is ScanRegion.MACULA
    assert "Anatomic Region Sequence (0008,2218)" in protocol.source


def test_dicom_without_anatomy_states_no_region(tmp_path: Path, stack: object) -> None:
    protocol = _opt(tmp_path, stack, "none")
    assert protocol.region is ScanRegion.UNKNOWN
    # the factory's Series Description "Volume OCT" states the pattern
    assert protocol.pattern is ScanPattern.VOLUME and "Series Description" in protocol.source


@pytest.mark.parametrize(
    "codes",
    [
        (RETINA,),  # retina: no region of the fundus
        (ONH, FOVEA),  # both: none
        (("111903", "DCM", "Disc-macula centered"),),
    ],
)
def test_dicom_anatomy_that_names_no_single_region(
    tmp_path: Path, stack: object, codes: tuple
) -> None:
    assert _opt(tmp_path, stack, "mixed", *codes).region is ScanRegion.UNKNOWN


def test_dicom_frame_anatomy_in_the_functional_groups(tmp_path: Path, stack: object) -> None:
    from pydicom.sequence import Sequence

    ds = fac.opt_dataset(stack)
    anatomy = ds.SharedFunctionalGroupsSequence[0].FrameAnatomySequence[0]
    anatomy.AnatomicRegionSequence = Sequence([_code(*ONH)])
    protocol = load(fac.write(ds, tmp_path / "frame.dcm")).metadata.protocol
    assert protocol.region is ScanRegion.OPTIC_DISC
    assert "Frame Anatomy Sequence (0020,9071)" in protocol.source


def test_dicom_hostile_anatomy_is_unknown_without_error(tmp_path: Path, stack: object) -> None:
    from pydicom import Dataset
    from pydicom.sequence import Sequence

    cases = {}
    ds = fac.opt_dataset(stack)
    ds.AnatomicRegionSequence = Sequence([])
    cases["empty"] = ds
    ds = fac.opt_dataset(stack)
    ds.add_new(0x00082218, "LO", "Optic disc")  # a sequence tag written as text
    cases["wrong_vr"] = ds
    ds = fac.opt_dataset(stack)
    odd = Dataset()
    odd.add_new(0x00080100, "SQ", Sequence([Dataset()]))  # Code Value as a sequence
    odd.add_new(0x00080104, "UN", b"\xff\xfe\x00optic disc")
    ds.AnatomicRegionSequence = Sequence([odd, Dataset()])
    cases["odd_items"] = ds
    for name, ds in cases.items():
        del ds.SeriesDescription
        scan = load(fac.write(ds, tmp_path / f"{name}.dcm"))
        assert scan.metadata.protocol.region is ScanRegion.UNKNOWN, name
        assert scan.frames.shape == (3, 496, 512)


@pytest.mark.parametrize(
    ("attrs", "pattern", "region"),
    [
        ({"SeriesDescription": "Macular Cube 512x128"}, ScanPattern.VOLUME, ScanRegion.MACULA),
        (
            {"SeriesDescription": "Optic Disc Cube 200x200"},
            ScanPattern.VOLUME,
            ScanRegion.OPTIC_DISC,
        ),
        (
            {"ProtocolName": "RNFL circle scan", "SeriesDescription": None},
            ScanPattern.CIRCLE,
            ScanRegion.OPTIC_DISC,
        ),
        ({"SeriesDescription": "Radial Lines"}, ScanPattern.RADIAL, ScanRegion.UNKNOWN),
        ({"SeriesDescription": "HD 5 Line Raster"}, ScanPattern.VOLUME, ScanRegion.UNKNOWN),
        ({"SeriesDescription": "ONH"}, ScanPattern.VOLUME, ScanRegion.OPTIC_DISC),  # geometry
        (
            {"StudyDescription": "macula OU", "SeriesDescription": "Baseline"},
            ScanPattern.VOLUME,
            ScanRegion.MACULA,
        ),
    ],
)
def test_dicom_protocol_texts(
    tmp_path: Path, stack: object, attrs: dict, pattern: ScanPattern, region: ScanRegion
) -> None:
    protocol = _opt(tmp_path, stack, "text", **attrs)
    assert (protocol.pattern, protocol.region) == (pattern, region)


def test_dicom_text_sources_quote_the_keyword_not_the_text(tmp_path: Path, stack: object) -> None:
    protocol = _opt(tmp_path, stack, "t", SeriesDescription="Macular Cube for Mr Smith")
    assert "Smith" not in protocol.source and "'macula'" in protocol.source


def test_dicom_pattern_from_parallel_frames(tmp_path: Path, stack: object) -> None:
    protocol = _opt(tmp_path, stack, "geometry", SeriesDescription=None)
    assert protocol.pattern is ScanPattern.VOLUME and "parallel planes" in protocol.source
    single = fac.opt_dataset(stack[:1])
    del single.SeriesDescription
    one = load(fac.write(single, tmp_path / "one.dcm")).metadata.protocol
    assert one.pattern is ScanPattern.UNKNOWN


@pytest.mark.parametrize(
    ("name", "protocol_name"),
    [
        ("topcon_bscan_opt.dcm", None),  # Retina only
        ("example-dcms__fundus.dcm", None),  # a photo: "Volume IR" states no OCT pattern
        ("cataract__eye.dcm", "CATARACT"),  # "Eye": no region
    ],
)
def test_real_dicom_files(name: str, protocol_name: str | None) -> None:
    protocol = load(fac.IO_DATA / "dicom" / name).metadata.protocol
    assert protocol.pattern is ScanPattern.UNKNOWN and protocol.region is ScanRegion.UNKNOWN
    assert protocol.name == protocol_name


def test_dicom_series_folder_carries_the_protocol_its_files_agree_on(
    tmp_path: Path, stack: object
) -> None:
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    def series(folder: Path, codes: list) -> ScanProtocol:
        folder.mkdir()
        uid = generate_uid()
        for i, code in enumerate(codes):
            ds = fac.opt_dataset(
                stack[i : i + 1], series_uid=uid, instance_number=i + 1, first_position=i
            )
            ds.AnatomicRegionSequence = Sequence([_code(*code)])
            fac.write(ds, folder / f"{i}.dcm")
        return load(folder).metadata.protocol

    agreed = series(tmp_path / "agree", [ONH, ONH, ONH])
    assert agreed.region is ScanRegion.OPTIC_DISC
    differ = series(tmp_path / "differ", [ONH, FOVEA, ONH])
    assert differ.region is ScanRegion.UNKNOWN and "different" in differ.source


# --- Topcon -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "n"), [("fda_minimized.fda", 1), ("fds_minimized.fds", 4)])
def test_topcon_minimised_files_state_a_macular_3d_scan_and_topq(name: str, n: int) -> None:
    m = load(VENDOR / name).metadata
    assert m.protocol.pattern is ScanPattern.VOLUME and m.protocol.region is ScanRegion.MACULA
    assert m.protocol.name == "3D(H)"
    assert "scan mode 2 (3D(H))" in m.protocol.source
    assert "@PARAM_SCAN_04 fixation 2 (Macula)" in m.protocol.source
    q = m.device_quality
    assert q.name == "Topcon TopQ" and q.minimum is None and len(q.values) == n
    assert q.values[0] == pytest.approx(81.18, abs=0.01)


def test_topcon_hostile_headers_state_nothing() -> None:
    from types import SimpleNamespace

    from octviewer.core.io.topcon import topcon_protocol, topq

    for volume in (
        SimpleNamespace(oct_header=None, metadata=None),
        SimpleNamespace(oct_header={"scan_mode": 99}, metadata={"param_scan_04": {"fixation": -1}}),
        SimpleNamespace(oct_header={"scan_mode": "2"}, metadata={"param_scan_04": "x"}),
        SimpleNamespace(oct_header=[1], metadata=[2]),
        object(),
    ):
        assert topcon_protocol(volume) == ScanProtocol()
        assert topq(volume, 2) is None
    for stats in ([0, 0, 0, 0, math.nan, 0], [0, 0, 0, 0, 1e9, 0], [1, 2], "abc", None):
        volume = SimpleNamespace(metadata={"fast_q2_info": {"various_quality_statistics": stats}})
        assert topq(volume, 1) is None
    disc = SimpleNamespace(
        oct_header={"scan_mode": 1}, metadata={"param_scan_02": {"fixation": 1 << 24}}
    )
    protocol = topcon_protocol(disc)
    assert (protocol.pattern, protocol.region) == (ScanPattern.CIRCLE, ScanRegion.OPTIC_DISC)
    assert "@PARAM_SCAN_02 fixation 1 (Disc)" in protocol.source
