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
