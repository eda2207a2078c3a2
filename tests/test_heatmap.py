"""Compact heatmaps (octviewer.core.heatmap): the model's grid kept, upsampled when drawn."""

from __future__ import annotations

import numpy as np
import pytest

from octviewer.core.disease_map import attention_profile
from octviewer.core.heatmap import Heatmap, resize_bilinear, upsample_cam


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


def test_a_map_on_the_frame_grid_is_kept_as_given() -> None:
    cam = np.zeros((40, 30), np.float32)
    cam[5:9, 3:7] = 0.7
    hm = Heatmap.of_array(cam)
    assert hm.full() is cam and Heatmap.coerce(hm) is hm and Heatmap.coerce(None) is None
    assert Heatmap.coerce(cam).full() is cam
