"""The pixel image-quality check (octviewer.core.quality) on real Kermany B-scans and on
degraded copies of them (training/data/degrade.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from octviewer.core.quality import (
    DEVICE_MINIMUMS,
    QualityProblem,
    QualityVerdict,
    assess_quality,
)
from training.data.degrade import KINDS, degrade

DATA = Path(__file__).resolve().parent / "data"
_ALL = sorted((DATA / "kermany").glob("*.jpeg")) + sorted((DATA / "io" / "kermany").glob("*.jpeg"))
CLEAN = list({p.name: p for p in _ALL}.values())  # two images are in both folders

# severe degradations and the problem each must raise
SEVERE = [
    ("weak", 0.95, QualityProblem.WEAK_SIGNAL),
    ("cut_top", 0.6, QualityProblem.CUT_OFF_TOP),
    ("cut_bottom", 0.3, QualityProblem.CUT_OFF_BOTTOM),
    ("blink", 0.5, QualityProblem.MISSING_ASCANS),
    ("blink_bands", 1.0, QualityProblem.MISSING_ASCANS),
]


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


@pytest.fixture(scope="module")
def clean() -> list[np.ndarray]:
    assert len(CLEAN) >= 6, "tests/data/kermany and tests/data/io/kermany hold the clean B-scans"
    return [_grey(p) for p in CLEAN]


def test_clean_bscans_pass(clean: list[np.ndarray]) -> None:
    for path, frame in zip(CLEAN, clean, strict=True):
        v = assess_quality(frame)
        assert v.acceptable, f"{path.name}: {v.reason}"
        assert v.problems == () and v.reason is None
        assert v.figures["snr_db"] > 20
        assert v.summary.endswith("good")


@pytest.mark.parametrize(("kind", "strength", "problem"), SEVERE)
def test_each_problem_fires_on_degraded(
    clean: list[np.ndarray], kind: str, strength: float, problem: QualityProblem
) -> None:
    # a cut-off is missed where the tilted retina crosses the edge over a small part of the
    # width only (see docs/QUALITY.md): most of the committed B-scans, not all
    need = len(clean) if kind in ("weak", "blink", "blink_bands") else len(clean) - 1
    hits = 0
    for i, frame in enumerate(clean):
        v = assess_quality(degrade(frame, kind, strength, seed=i))
        if problem in v.problems:
            hits += 1
            assert not v.acceptable
            assert v.reason is not None and v.reason.startswith("Image quality too low: ")
            assert v.reason.count(".") >= 1 and v.reason.endswith(".")
            assert "too low: " in v.summary
    assert hits >= need, f"{kind} {strength}: {hits} of {len(clean)} caught"


def test_reason_names_the_problem_with_its_figure(clean: list[np.ndarray]) -> None:
    weak = assess_quality(degrade(clean[0], "weak", 0.95, seed=1))
    assert weak.problems[0] is QualityProblem.WEAK_SIGNAL
    assert "signal is too weak" in weak.reason and "dB" in weak.reason
    assert f"{weak.figures['snr_db']:.0f} dB" in weak.reason
    blink = assess_quality(degrade(clean[0], "blink", 1.0, seed=1))
    assert "A-scans are missing" in blink.reason and "% of the width" in blink.reason


def test_degrade_is_deterministic(clean: list[np.ndarray]) -> None:
    for kind in KINDS:
        a = degrade(clean[0], kind, 0.5, seed=3)
        assert np.array_equal(a, degrade(clean[0], kind, 0.5, seed=3)), kind
        assert a.shape == clean[0].shape and a.dtype == np.float32
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(clean[0], "smudge", 0.5)


def test_device_index(clean: list[np.ndarray]) -> None:
    frame = clean[0]
    low = assess_quality(frame, device_index=9.0, device_index_name="Spectralis Q")
    assert low.device_minimum == DEVICE_MINIMUMS["Spectralis Q"] == 15.0
    assert low.problems == (QualityProblem.DEVICE_INDEX,) and not low.acceptable
    assert "Spectralis Q 9" in low.reason and "minimum 15" in low.reason
    assert low.summary.startswith("Spectralis Q 9 (minimum 15)")
    high = assess_quality(
        frame, device_index=27.0, device_minimum=15.0, device_index_name="Spectralis Q"
    )
    assert high.acceptable and high.summary.startswith("Spectralis Q 27 (minimum 15) · signal")
    nan = assess_quality(frame, device_index=math.nan, device_minimum=15.0)
    assert nan.acceptable and nan.device_index is None
    unknown = assess_quality(frame, device_index=1.0, device_index_name="Some index")
    assert unknown.acceptable  # no documented minimum: the index is shown, not applied
    both = assess_quality(
        degrade(frame, "weak", 0.95, seed=0), device_index=5.0, device_minimum=15.0
    )
    assert both.problems == (QualityProblem.WEAK_SIGNAL, QualityProblem.DEVICE_INDEX)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_dtypes(clean: list[np.ndarray], dtype: type) -> None:
    frame = clean[0].astype(np.float32)
    if dtype is np.uint16:
        frame = frame * 257.0
    elif dtype is np.float32:
        frame = frame / 255.0
    ok = assess_quality(frame.astype(dtype))
    assert ok.acceptable, ok.reason
    weak = degrade(frame.astype(dtype), "weak", 0.95, seed=0)
    assert QualityProblem.WEAK_SIGNAL in assess_quality(weak.astype(dtype)).problems


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((20, 20), np.uint8),
        np.zeros((496, 512), np.uint8),
        np.full((100, 100), 7.0, np.float32),
        np.full((100, 100), np.nan, np.float32),
        np.zeros((496, 512, 3), np.uint8),
        np.zeros((0, 0), np.uint8),
    ],
)
def test_small_or_blank_frames_are_not_judged(frame: np.ndarray) -> None:
    v = assess_quality(frame)
    assert isinstance(v, QualityVerdict)
    assert v.acceptable and v.figures == {} and v.reason is None
    assert v.summary == "not measured"


def test_noise_only_frame_does_not_crash() -> None:
    rng = np.random.default_rng(0)
    v = assess_quality(rng.integers(0, 255, (64, 64)).astype(np.uint8))
    assert isinstance(v, QualityVerdict)


def test_shared_clean_sample(shared_data: Path) -> None:
    """Every 20th Kermany image of ../shared/data passes (the full rates: bench_quality.py)."""
    paths = sorted((shared_data / "kermany").glob("*/*.jpeg"))[::20]
    if not paths:
        pytest.skip("../shared/data/kermany holds no images")
    flagged = [p.name for p in paths if not assess_quality(_grey(p)).acceptable]
    assert not flagged


def test_canvas_fill_at_the_sides_is_padding_not_missing_a_scans(clean: list[np.ndarray]) -> None:
    """An export that pads a B-scan to a wider canvas with one grey level is not a blink; a
    blink band (noise, no tissue) in the same padded frame still is."""
    frame = clean[0]
    for fill in (0, 40):
        padded = np.pad(frame, ((0, 0), (0, frame.shape[1] // 2)), constant_values=fill)
        assert assess_quality(padded).acceptable, fill
    blinked = np.pad(degrade(frame, "blink", 0.3, seed=1), ((0, 0), (128, 128)))
    assert QualityProblem.MISSING_ASCANS in assess_quality(blinked).problems
