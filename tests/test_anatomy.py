"""The macula / optic-nerve-head anatomy check (octviewer.core.anatomy) on real and generated B-scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from octviewer.core.anatomy import AnatomyVerdict, check_anatomy

DATA = Path(__file__).parent / "data"
SHARED_ONH = Path(__file__).resolve().parents[2] / "shared" / "data" / "ood"
KERMANY = sorted((DATA / "kermany").glob("*.jpeg")) + sorted(
    (DATA / "io" / "kermany").glob("*.jpeg")
)


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def synthetic_bscan(onh: bool, width: int = 512, height: int = 496, seed: int = 0) -> np.ndarray:
    """A layered retina under a dark vitreous: nerve-fibre layer, grey layers, a dark outer
    nuclear layer and a thin bright RPE over a faint choroid. Macular: a shallow central pit
    over a continuous RPE. ONH: the RPE stops in a central gap and the surface dips into a
    cup below the RPE level."""
    rng = np.random.default_rng(seed)
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None].astype(np.float64)
    centre = width / 2
    rpe = 0.55 * height + 0.00015 * (x - centre) ** 2
    surf = rpe - 0.22 * height
    if onh:
        surf = surf + 0.42 * height * np.exp(-(((x - centre) / (0.09 * width)) ** 2))
    else:
        surf = surf + 0.07 * height * np.exp(-(((x - centre) / (0.08 * width)) ** 2))
    img = np.full((height, width), 12.0)
    tissue = (y >= surf) & (y < rpe - 6)
    depth = (y - surf) / np.maximum(rpe - surf, 1)
    img[tissue] = np.where(depth[tissue] < 0.25, 170, np.where(depth[tissue] < 0.6, 110, 60))
    band = np.abs(y - rpe) <= 4
    choroid = (y > rpe + 4) & (y < rpe + 70)
    if onh:
        canal = np.abs(x - centre) < 0.1 * width
        band &= ~canal
        img[(y >= surf) & canal & (y < height)] = 120  # nerve tissue and lamina in the canal
        choroid &= ~canal
    img[band] = 230
    img[choroid] = 70
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_synthetic_macula_is_not_flagged() -> None:
    v = check_anatomy(synthetic_bscan(onh=False))
    assert not v.is_optic_disc, v
    assert v.score < 0 and v.features["cup"] < 0


def test_synthetic_onh_is_flagged() -> None:
    v = check_anatomy(synthetic_bscan(onh=True))
    assert v.is_optic_disc, v
    assert v.score > 0 and "optic nerve head" in v.reason


@pytest.mark.parametrize("onh", [False, True])
def test_dtypes_agree(onh: bool) -> None:
    frame = synthetic_bscan(onh=onh, seed=1)
    expected = check_anatomy(frame).is_optic_disc
    assert check_anatomy(frame.astype(np.uint16) * 257).is_optic_disc == expected
    assert check_anatomy(frame.astype(np.float32) / 255.0).is_optic_disc == expected


@pytest.mark.parametrize("path", KERMANY, ids=lambda p: p.name)
def test_real_kermany_bscans_are_not_flagged(path: Path) -> None:
    v = check_anatomy(_grey(path))
    assert not v.is_optic_disc, v
    assert set(v.features) >= {"cup", "gap"}


def test_cirrus_onh_is_judged() -> None:
    v = check_anatomy(_grey(DATA / "content" / "cirrus-onh-bscan-im0100.png"))
    assert isinstance(v, AnatomyVerdict) and np.isfinite(v.score)


@pytest.mark.xfail(
    strict=True,
    reason="known miss: this Cirrus frame shows a continuous RPE and no cup (cup -0.87); "
    "since model 3.0.0 its feature distance (3.10, threshold 4.18) no longer withholds it either",
)
def test_cirrus_onh_is_flagged() -> None:
    assert check_anatomy(_grey(DATA / "content" / "cirrus-onh-bscan-im0100.png")).is_optic_disc


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((496, 512), np.uint8),
        np.full((496, 512), 255, np.uint8),
        np.zeros((31, 600), np.float32),
        np.zeros((0, 0), np.uint8),
        np.full((64, 64), np.nan, np.float32),
    ],
    ids=["tiny", "black", "white", "thin", "empty", "nan"],
)
def test_unjudgeable_frames(frame: np.ndarray) -> None:
    v = check_anatomy(frame)
    assert not v.is_optic_disc and v.score == -1.0 and "cannot be judged" in v.reason


def test_noise_does_not_crash() -> None:
    v = check_anatomy(np.random.default_rng(2).integers(0, 255, (100, 80), dtype=np.uint8))
    assert isinstance(v.score, float)


@pytest.mark.skipif(not SHARED_ONH.is_dir(), reason="../shared/data/ood is absent (AGPL ONH scans)")
def test_shared_spectralis_onh_scans_are_flagged() -> None:
    paths = sorted(SHARED_ONH.glob("onh-radial-OCT-0_*.png"))
    assert paths
    assert all(check_anatomy(_grey(p)).is_optic_disc for p in paths)
