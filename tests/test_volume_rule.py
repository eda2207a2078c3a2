"""The volume shortcut: the cheap pass where it cannot change the answer, the full pass elsewhere."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers_models import make_tiny_bundle
from test_precision import CNN_MEMBERS, _real_volume

from octviewer.core.engine import Engine
from octviewer.core.inference import AnalysisRequest
from octviewer.core.results import FrameResult
from octviewer.core.volume_rule import VolumeShortcut

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    bundle = make_tiny_bundle(
        tmp_path_factory.mktemp("v") / "ens.safetensors",
        "ensemble",
        arch_kwargs={"members": CNN_MEMBERS, "hflip_tta": True},
        cam_target_layer="stack",
        temperature=0.05,  # sharpen the random network so some frames are clear-cut
    )
    return Engine(bundle, device="cpu", precision="fp32")


def _fr(i: int, probs, score=None, thr=None) -> FrameResult:
    p = np.asarray(probs, np.float32)
    return FrameResult(i, CLASSES, p, np.log(p), ood_score=score, ood_threshold=thr)


def test_rule_sends_close_calls_and_near_threshold_scores_to_the_full_pass() -> None:
    rule = VolumeShortcut(suspicious=0)
    clear = [0.9, 0.04, 0.03, 0.03]
    assert not rule.needs_full(_fr(0, clear, -2.0, 3.0), 0.5)
    assert rule.needs_full(_fr(0, [0.5, 0.4, 0.05, 0.05], -2.0, 3.0), 0.3)  # close call
    assert rule.needs_full(_fr(0, [0.62, 0.2, 0.1, 0.08], -2.0, 3.0), 0.6)  # near LOW_CONF.
    assert rule.needs_full(_fr(0, clear, 2.5, 3.0), 0.5)  # near the OOD threshold
    assert rule.needs_full(_fr(0, clear, 9.0, 3.0), 0.5)  # above it
    assert rule.needs_full(_fr(0, clear, float("nan"), 3.0), 0.5)
    assert not rule.needs_full(_fr(0, clear), 0.5)  # bundle without statistics: no score
    frames = [_fr(i, clear, -2.0, 3.0) for i in range(5)]
    assert rule.frames_to_refine(frames, 0.5, keep=[3, 99]) == [3]
    normal_low = [_fr(i, [0.9 - 0.05 * i, 0.04, 0.03, 0.03 + 0.05 * i]) for i in range(4)]
    assert VolumeShortcut(suspicious=2).frames_to_refine(normal_low, 0.0) == [0, 1]  # least NORMAL


def test_shortcut_gives_the_full_class_on_a_real_volume(engine: Engine) -> None:
    scan = _real_volume()
    full = engine.analyze(scan, AnalysisRequest(cam=False, batch_size=4))
    fast = engine.analyze(scan, AnalysisRequest(cam=False, batch_size=4, shortcut=VolumeShortcut()))
    assert engine.model.hflip_tta  # restored after the cheap pass
    assert "volume_rule" in fast.extra and "volume_rule" not in full.extra
    assert [f.frame_index for f in fast.frames] == [f.frame_index for f in full.frames]
    assert [f.predicted_index for f in fast.frames] == [f.predicted_index for f in full.frames]
    assert [f.flags for f in fast.frames] == [f.flags for f in full.frames]


def test_frames_left_to_the_cheap_pass_carry_its_results(engine: Engine) -> None:
    scan = _real_volume()
    never = VolumeShortcut(margin=0, confidence_margin=0, ood_margin=-np.inf, suspicious=0)
    got = engine.analyze(scan, AnalysisRequest(cam=False, shortcut=never, full_frames=[2]))
    full = engine.analyze(scan, AnalysisRequest(cam=False))
    engine.model.hflip_tta = False
    try:
        plain = engine.analyze(scan, AnalysisRequest(cam=False))
    finally:
        engine.model.hflip_tta = True
    assert got.extra["volume_rule"] == f"mirrored view on 1 of {scan.n_frames} frames"
    for g, f, p in zip(got.frames, full.frames, plain.frames, strict=True):
        want = f if g.frame_index == 2 else p
        np.testing.assert_allclose(g.probabilities, want.probabilities, atol=1e-5)
        assert g.flags == want.flags
    assert not np.allclose(plain.probability_matrix(), full.probability_matrix(), atol=1e-4)
