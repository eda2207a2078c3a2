"""Heatmap colouring and blending (octviewer.core.overlay)."""

from __future__ import annotations

import numpy as np
import pytest

from octviewer.core import overlay
from octviewer.errors import ReportError


@pytest.mark.parametrize("name", overlay.COLORMAPS)
def test_lut_matches_matplotlib(name: str) -> None:
    colormaps = pytest.importorskip("matplotlib").colormaps
    ref = np.asarray(colormaps[name](np.arange(256))[:, :3]) * 255.0
    ours = overlay.lut(name).astype(np.float64)
    assert ours.shape == (256, 3)
    assert np.abs(ours - ref).max() <= 1.6


def test_lut_known_endpoints_without_matplotlib() -> None:
    assert tuple(overlay.lut("inferno")[0]) == (0, 0, 4)
    assert tuple(overlay.lut("inferno")[255]) == (252, 255, 164)
    assert tuple(overlay.lut("viridis")[0]) == (68, 1, 84)
    assert tuple(overlay.lut("jet")[0]) == (0, 0, 128)
    assert tuple(overlay.lut("jet")[255]) == (128, 0, 0)
    assert tuple(overlay.lut("jet")[128]) == (125, 255, 122)  # green in the middle
    with pytest.raises(ValueError):
        overlay.lut("jet")[0, 0] = 1  # the cached table cannot be corrupted by a caller


def test_colorize_shape_alpha_and_values() -> None:
    cam = np.array([[0.0, 0.5], [1.0, np.nan]], np.float32)
    rgba = overlay.colorize(cam, "jet")
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert np.all(rgba[..., 3] == 255)
    lut = overlay.lut("jet")
    assert tuple(rgba[0, 0, :3]) == tuple(lut[0])
    assert tuple(rgba[1, 0, :3]) == tuple(lut[255])
    assert tuple(rgba[0, 1, :3]) == tuple(lut[128])
    assert tuple(rgba[1, 1, :3]) == tuple(lut[0])  # NaN -> 0


def test_colorize_clips_out_of_range() -> None:
    rgba = overlay.colorize(np.array([[-3.0, 7.0]]), "viridis")
    lut = overlay.lut("viridis")
    assert tuple(rgba[0, 0, :3]) == tuple(lut[0])
    assert tuple(rgba[0, 1, :3]) == tuple(lut[255])


def test_unknown_colormap_and_bad_shapes_raise_clear_errors() -> None:
    with pytest.raises(ReportError, match="inferno"):
        overlay.colorize(np.zeros((2, 2)), "rainbow")
    with pytest.raises(ReportError, match="2-D"):
        overlay.colorize(np.zeros((2, 2, 2)), "jet")
    with pytest.raises(ReportError, match="8-bit"):
        overlay.blend(np.zeros((2, 2), np.float32), np.zeros((2, 2)), "jet", 0.5)


def test_blend_math() -> None:
    frame = np.full((4, 6), 200, np.uint8)
    cam = np.ones((4, 6), np.float32)
    top = overlay.lut("inferno")[255].astype(np.float32)
    out = overlay.blend(frame, cam, "inferno", 0.25)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    expected = np.round(0.75 * 200 + 0.25 * top).astype(np.uint8)
    assert np.all(out == expected)
    assert np.array_equal(overlay.blend(frame, cam, "inferno", 0.0)[..., 0], frame)
    assert np.all(overlay.blend(frame, cam, "inferno", 5.0) == overlay.lut("inferno")[255])


def test_blend_resizes_cam_to_frame_and_keeps_location() -> None:
    frame = np.zeros((40, 80), np.uint8)
    cam = np.zeros((10, 20), np.float32)
    cam[:, 10:] = 1.0  # right half hot
    out = overlay.blend(frame, cam, "jet", 1.0)
    assert out.shape == (40, 80, 3)
    hot = overlay.lut("jet")[255]
    assert np.all(out[:, 60:] == hot)
    assert not np.any(np.all(out[:, :30] == hot, axis=-1))


def test_blend_accepts_rgb_frame() -> None:
    frame = np.zeros((3, 3, 3), np.uint8)
    frame[..., 1] = 90
    assert np.array_equal(overlay.blend(frame, np.zeros((3, 3)), "viridis", 1.0), frame)
    out = overlay.blend(frame, np.ones((3, 3)), "viridis", 1.0)
    assert np.all(out == overlay.lut("viridis")[255])


def test_attention_alpha_is_zero_at_zero_and_rises_monotonically() -> None:
    cam = np.linspace(0.0, 1.0, 101, dtype=np.float32)[None, :]
    a = overlay.attention_alpha(cam, 0.8)[0]
    assert a[0] == 0.0
    assert np.all(np.diff(a) > 0)  # strictly rising
    assert a[-1] == pytest.approx(0.8)  # the slider sets the opacity at the highest attention
    assert a[10] < 0.1 * a[-1]  # faint attention adds almost no colour
    # the slider scales it, NaN and values outside [0, 1] are handled
    np.testing.assert_allclose(overlay.attention_alpha(cam, 0.4)[0], a / 2, rtol=1e-6)
    odd = overlay.attention_alpha(np.array([[np.nan, -2.0, 3.0]]), 1.0)[0]
    assert tuple(odd) == (0.0, 0.0, 1.0)
    assert np.all(overlay.attention_alpha(cam, 0.0) == 0)


def test_blend_leaves_the_scan_alone_where_attention_is_zero() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    cam = np.zeros((20, 30), np.float32)
    cam[5:15, 10:20] = np.linspace(0.1, 1.0, 10)[None, :]
    out = overlay.blend(frame, cam, "inferno", 0.6).astype(np.int32)
    gray = np.repeat(frame[:, :, None], 3, axis=2).astype(np.int32)
    zero = cam == 0
    assert np.array_equal(out[zero], gray[zero])  # no colour, no dimming
    # the colour's weight grows with attention along the hot row
    top = overlay.lut("inferno")[255].astype(np.float32)
    row = out[10, 10:20].astype(np.float32)
    dev = np.abs(row - gray[10, 10:20]).sum(axis=1)
    assert dev[-1] > dev[0]
    expected = 0.4 * gray[10, 19] + 0.6 * top
    assert np.abs(row[-1] - expected).max() <= 1.0


def test_contours_are_drawn_at_the_chosen_levels() -> None:
    frame = np.full((40, 40), 100, np.uint8)
    yy, xx = np.mgrid[0:40, 0:40]
    cam = np.clip(1.0 - np.hypot(yy - 20, xx - 20) / 20.0, 0, 1).astype(np.float32)
    plain = overlay.blend(frame, cam, "jet", 0.5)
    lined = overlay.blend(frame, cam, "jet", 0.5, contours=(0.5,))
    changed = np.any(plain != lined, axis=-1)
    mask = overlay.contour_mask(cam, (0.5,))
    assert np.array_equal(changed, mask & np.any(plain != overlay.lut("jet")[128], axis=-1))
    ys, xs = np.nonzero(mask)
    r = np.hypot(ys - 20, xs - 20)
    assert r.min() >= 8.5 and r.max() <= 10.5  # a ring at half attention (radius 10)
    assert np.all(lined[mask] == overlay.lut("jet")[128])
    assert not overlay.contour_mask(cam, ()).any()


@pytest.mark.parametrize("colormap", overlay.COLORMAPS)
def test_gray_blend_table_gives_the_arithmetic_blend(colormap: str) -> None:
    """Gray frames blend through a table of every (CAM step, gray level); RGB frames through
    the arithmetic: the same frame as gray and as RGB gives the same pixels."""
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    cam = rng.random((40, 50)).astype(np.float32)
    for opacity in (0.0, 0.45, 1.0):
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        np.testing.assert_array_equal(
            overlay.blend(gray, cam, colormap, opacity, (0.5,)),
            overlay.blend(rgb, cam, colormap, opacity, (0.5,)),
        )
