"""The .vol display transform (HEYEX's fourth root) against known values, and the reader using it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from octviewer.core.io.vol_display import to_reflectivity, vol_display

SHARED_VOL = Path(__file__).resolve().parents[2] / "shared/data/vendor/TEST_T_2707_0.vol"


def test_known_values() -> None:
    r = np.array([0.0, 1.0, 0.0625, 1 / 256, 1 / 4096, 2.0, -0.5], dtype=np.float32)
    # 0.0625 ** 0.25 = 0.5 -> 127.5 -> 128; (1/256) ** 0.25 = 0.25 -> 64; (1/4096) ** 0.25 = 0.125
    assert vol_display(r).tolist() == [0, 255, 128, 64, 32, 255, 0]


def test_no_data_marker_and_nan_show_black() -> None:
    r = np.array([np.finfo(np.float32).max, np.nan, np.inf, 0.5], dtype=np.float32)
    assert vol_display(r).tolist() == [0, 0, 0, round(255 * 0.5**0.25)]


def test_inverse_round_trips() -> None:
    r = np.linspace(0, 1, 101, dtype=np.float32)
    back = to_reflectivity(vol_display(r) / 255.0)
    assert np.allclose(back, r, atol=0.02)


@pytest.mark.skipif(not SHARED_VOL.is_file(), reason="../shared/data is not beside the project")
def test_reader_shows_vol_with_the_fourth_root() -> None:
    from eyepy.io.he.vol_reader import HeVolReader

    from octviewer.core.io import load

    scan = load(SHARED_VOL)
    raw = np.asarray(HeVolReader(SHARED_VOL).parsed_file.bscans[0].data, dtype=np.float32)
    assert np.array_equal(scan.frames[0], vol_display(raw))
