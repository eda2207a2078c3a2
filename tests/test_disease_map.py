"""The disease map (octviewer.core.disease_map) on a generated DICOM OPT volume with a localizer."""

from __future__ import annotations

import io_factory as fac
import numpy as np
import pytest

from octviewer.core import disease_map as dm
from octviewer.core import presentation
from octviewer.core.io import load
from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult

NAMES = ("CNV", "DME", "DRUSEN", "NORMAL")


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory):
    """Five real B-scans in an OPT volume that references a real IR image as its localizer."""
    if not fac.FUNDUS.is_file():
        pytest.skip(f"{fac.FUNDUS.name} is missing from tests/data/io")
    stack = fac.kermany_stack()
    path, positions = fac.localized_volume(
        tmp_path_factory.mktemp("map_volume"), np.concatenate([stack, stack[:2]])
    )
    return load(path), positions


def _result(classes: list[int | None], conf: float = 0.7) -> ScanResult:
    frames = []
    for i, k in enumerate(classes):
        p = np.full(4, (1 - conf) / 3, np.float32)
        flags = frozenset()
        if k is None:
            k, flags = 0, frozenset({ResultFlag.OUT_OF_DISTRIBUTION})
        p[k] = conf
        frames.append(FrameResult(i, NAMES, p, np.log(p), flags=flags))
    return ScanResult(tuple(frames), ModelIdentity("m", "1", "0" * 64, "test"), "cpu")


def test_lines_sit_at_the_dicom_positions_in_the_class_colours(volume) -> None:
    scan, positions = volume
    assert scan.localizer is not None and dm.unavailable_reason(scan) is None
    res = _result([0, 3, 1, None, 2], conf=0.9)
    m = dm.build_disease_map(scan, res)
    assert m is not None and len(m.lines) == 5 and m.image_shape == (768, 768)
    for line, (x0, y0, x1, y1) in zip(m.lines, positions, strict=True):
        assert line.start == pytest.approx((x0, y0)) and line.end == pytest.approx((x1, y1))
    assert [ln.class_name for ln in m.lines] == ["CNV", "NORMAL", "DME", None, "DRUSEN"]
    assert m.line(1).color == presentation.NORMAL_RGB
    assert m.line(0).color == presentation.class_rgb(0, NAMES) != m.line(2).color
    assert len({m.line(i).color for i in (0, 1, 2, 4)}) == 4  # one colour per class
    assert m.line(0).strength == pytest.approx(0.9)
    na = m.line(3)
    assert na.status == "not assessed" and na.strength == 0 and na.color == dm.NOT_ASSESSED_RGB
    labels = [e.label for e in m.legend]
    assert labels == [*NAMES, "not assessed"] and m.legend[-1].dashed
    assert 1.5 <= m.line_width <= 0.012 * 768


def test_confidence_is_the_strength_and_frames_without_a_result_are_pending(volume) -> None:
    scan, _ = volume
    partial = _result([2, 2], conf=0.55)
    m = dm.build_disease_map(scan, partial)
    assert [ln.status for ln in m.lines] == ["assessed"] * 2 + ["pending"] * 3
    assert m.line(0).strength == pytest.approx(0.55)
    assert m.legend[-1].label == "not analysed yet"
    assert all(ln.status == "pending" for ln in dm.build_disease_map(scan, None).lines)


def test_attention_is_projected_along_the_line(volume) -> None:
    scan, _ = volume
    cam = np.zeros(scan.shape, np.float32)
    cam[200:260, -128:] = 1.0  # hot at the right end of the B-scan (the line's end)
    m = dm.build_disease_map(scan, _result([0] * 5), cams={2: cam})
    att = m.line(2).attention
    assert att is not None and att.shape == (dm.ATTENTION_SAMPLES,)
    assert att[-1] == pytest.approx(1.0) and att[0] == 0.0
    assert np.all(np.diff(att) >= 0)
    assert m.line(1).attention is None


def test_volumes_without_positions_say_why_there_is_no_map(volume) -> None:
    import dataclasses

    from octviewer.core.scan import Localizer

    scan, _ = volume
    no_loc = dataclasses.replace(scan, localizer=None)
    assert "without a localizer" in dm.unavailable_reason(no_loc)
    assert dm.build_disease_map(no_loc, _result([0] * 5)) is None
    no_pos = dataclasses.replace(scan, localizer=Localizer(scan.localizer.image, None))
    assert "no B-scan positions" in dm.unavailable_reason(no_pos)
    wrong = dataclasses.replace(
        scan, localizer=Localizer(scan.localizer.image, scan.localizer.positions[:3])
    )
    assert "3 B-scan position(s) for 5 frames" in dm.unavailable_reason(wrong)
    single = dataclasses.replace(scan, frames=scan.frames[:1])
    assert "single B-scan" in dm.unavailable_reason(single)
    # the window shows these above its strip, the report below its strip: no side is named
    for reason in map(dm.unavailable_reason, (no_loc, no_pos, wrong)):
        assert "probability strip shows every frame" in reason
        assert "below" not in reason and "above" not in reason


def test_a_normal_that_does_not_exclude_disease_is_amber_on_the_map(volume) -> None:
    scan, _ = volume
    res = _result([3, 3, 0], conf=0.9)
    frames = list(res.frames)
    frames[1] = FrameResult(
        1,
        NAMES,
        frames[1].probabilities,
        frames[1].logits,
        flags=frozenset({ResultFlag.DISEASE_NOT_EXCLUDED}),
    )
    m = dm.build_disease_map(scan, ScanResult(tuple(frames), res.model, "cpu"))
    assert m.line(0).color == presentation.NORMAL_RGB  # a confident NORMAL stays green
    assert m.line(1).color == presentation.NOT_EXCLUDED_RGB != presentation.NORMAL_RGB
    assert m.line(1).class_name == "NORMAL"
    assert (presentation.NOT_EXCLUDED_LEGEND, presentation.NOT_EXCLUDED_RGB) in [
        (e.label, e.color) for e in m.legend
    ]
