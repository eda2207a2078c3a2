"""Compact heatmaps (octviewer.core.heatmap): the model's grid kept, upsampled when drawn."""

from __future__ import annotations

import numpy as np
import pytest

from octviewer.core import overlay
from octviewer.core.disease_map import attention_profile
from octviewer.core.heatmap import Heatmap, resize_bilinear, upsample_cam

#: What the compact path may change in the blended RGB against a full-resolution float32 map
#: upsampled by torch (the previous versions): the grid is the same float32 grid, only the
#: rounding of the upsampling differs (about 3e-7), so a CAM value sitting on a colour step
#: can move by one step. One step of the steepest colour map (jet) is up to 4 levels.
MAX_LEVELS = 4
MEAN_LEVELS = 1e-3
MAX_CHANGED_PIXELS = 5e-4  # fraction of the frame (with iso-lines: a line pixel may move)


def _torch_upsample(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The full-resolution map of the previous versions (torch bilinear, half-pixel centres)."""
    torch = pytest.importorskip("torch")
    g = np.maximum(np.nan_to_num(np.asarray(grid, np.float32)), 0.0)
    peak = float(g.max())
    if peak <= 0:
        return np.zeros(shape, np.float32)
    t = torch.from_numpy(g / peak)[None, None]
    up = torch.nn.functional.interpolate(t, size=shape, mode="bilinear", align_corners=False)
    out = up[0, 0].clamp_(0.0, 1.0).numpy()
    return (out / float(out.max())).astype(np.float32)


@pytest.mark.parametrize(
    ("grid", "shape"), [((7, 7), (496, 512)), ((16, 16), (496, 768)), ((2, 3), (9, 7))]
)
def test_numpy_upsampling_is_torchs_bilinear(grid, shape) -> None:
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(1).random(grid).astype(np.float32)
    t = torch.nn.functional.interpolate(
        torch.from_numpy(g)[None, None], size=shape, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    assert np.abs(resize_bilinear(g, shape) - t).max() < 2e-6


def test_heatmap_keeps_the_grid_and_draws_on_the_frame_grid() -> None:
    raw = np.random.default_rng(2).random((7, 7)).astype(np.float32) * 3.0
    hm = Heatmap.from_grid(raw, (496, 512))
    raw[:] = 0  # a copy is kept
    assert hm.grid.any() and not hm.grid.flags.writeable and hm.nbytes == 7 * 7 * 4
    full = hm.full()
    assert full.shape == (496, 512) and full.dtype == np.float32
    assert full.min() >= 0.0 and full.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(full, upsample_cam(hm.grid, (496, 512)))
    assert hm.resized((248, 256)).shape == (248, 256)
    np.testing.assert_array_equal(hm.column_profile(64), attention_profile(full, 64))
    assert attention_profile(hm, 64) is hm.column_profile(64)  # computed once


def test_a_map_on_the_frame_grid_is_kept_as_given() -> None:
    cam = np.zeros((40, 30), np.float32)
    cam[5:9, 3:7] = 0.7
    hm = Heatmap.of_array(cam)
    assert hm.full() is cam and Heatmap.coerce(hm) is hm and Heatmap.coerce(None) is None
    assert Heatmap.coerce(cam).full() is cam


def test_compact_heatmap_draws_the_overlay_of_a_full_map(data_dir) -> None:
    """A real B-scan and the default model's CAM: the overlay drawn from the kept grid (window
    and report) against the full-resolution float32 map of the previous versions."""
    from octviewer.core.engine import Engine
    from octviewer.core.io import load

    engine = Engine(None)
    scan = load(data_dir / "kermany" / "CNV-451136-6.jpeg")
    fr = engine.analyze(scan).frames[0]
    assert fr.heatmap is not None and fr.heatmap.grid.shape == (7, 7)
    assert fr.heatmap.grid.any(), "trained weights give a non-empty map"
    frame = scan.frame_as_uint8(0)
    reference = _torch_upsample(fr.heatmap.grid, scan.shape)
    for colormap, opacity, contours in (("inferno", 0.45, ()), ("jet", 1.0, (0.5, 0.8))):
        before = overlay.blend(frame, reference, colormap, opacity, contours).astype(np.int16)
        now = overlay.blend(frame, fr.heatmap, colormap, opacity, contours)
        # the report draws FrameResult.cam: the same pixels as the heatmap itself
        np.testing.assert_array_equal(
            now, overlay.blend(frame, fr.cam, colormap, opacity, contours)
        )
        diff = np.abs(before - now)
        changed = float((diff.max(axis=2) > 0).mean())
        assert changed <= MAX_CHANGED_PIXELS, (colormap, changed)
        if not contours:
            assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (
                diff.max(),
                diff.mean(),
            )
