"""The one preprocessing path: dtype scaling, resize, per-image normalisation, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from octviewer.core.model.config import PreprocessConfig
from octviewer.core.preprocess import (
    normalize,
    preprocess_frame,
    preprocess_frames,
    resize,
    to_float01,
)
from octviewer.errors import AnalysisError

CFG = PreprocessConfig(size=(64, 64))


def test_to_float01_dtypes() -> None:
    u8 = np.array([[0, 255], [51, 102]], np.uint8)
    np.testing.assert_allclose(to_float01(u8), u8 / 255.0, atol=1e-7)
    u12 = np.array([[0, 4095], [2048, 100]], np.uint16)  # 12-bit data in 16-bit words
    assert to_float01(u12).max() == pytest.approx(1.0)
    u16 = np.array([[0, 65535]], np.uint16)
    np.testing.assert_allclose(to_float01(u16), [[0.0, 1.0]])
    f = np.array([[-2.0, np.nan], [np.inf, 2.0]], np.float32)
    out = to_float01(f)
    assert (
        out.dtype == np.float32 and np.isfinite(out).all() and out.min() == 0.0 and out.max() == 1.0
    )
    assert not to_float01(np.full((3, 3), 7.0)).any()


def test_bad_shapes_are_analysis_errors() -> None:
    with pytest.raises(AnalysisError):
        to_float01(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(AnalysisError):
        to_float01(np.zeros((0, 3), np.uint8))


def test_resize_antialiases_when_shrinking() -> None:
    checker = (np.indices((256, 256)).sum(0) % 2).astype(np.float32)
    small = resize(checker, CFG)
    assert small.shape == (64, 64) and small.dtype == np.float32
    assert np.abs(small - 0.5).max() < 0.05  # a low-pass, not point sampling (which gives 0/1)
    up = resize(np.eye(8, dtype=np.float32), PreprocessConfig(size=(32, 48)))
    assert up.shape == (32, 48) and up.min() >= 0 and up.max() <= 1


def test_normalize_numpy_and_torch_agree() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((3, 5, 7)).astype(np.float32) * 0.4 + 0.2
    a = normalize(x, CFG)
    b = normalize(torch.from_numpy(x), CFG).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.allclose(a.min(axis=(1, 2)), 0) and np.allclose(a.max(axis=(1, 2)), 1)
    assert not normalize(np.full((4, 4), 0.3, np.float32), CFG).any()
    ms = PreprocessConfig(normalization="meanstd", mean=0.5, std=0.25)
    np.testing.assert_allclose(normalize(np.array([[1.0]], np.float32), ms), [[2.0]])


def test_batch_equals_single_frames() -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, 100, 80), dtype=np.uint8)
    batch = preprocess_frames(frames, CFG)
    single = np.stack([preprocess_frame(f, CFG) for f in frames])
    assert batch.shape == (3, 1, 64, 64) and batch.dtype == torch.float32
    np.testing.assert_allclose(batch.numpy(), single, atol=1e-6)
    mixed = preprocess_frames([frames[0], frames[1][:50]], CFG)  # different sizes
    assert mixed.shape == (2, 1, 64, 64)


def test_real_kermany_bscan(data_dir) -> None:
    path = data_dir / "kermany" / "DME-7939555-2.jpeg"
    frame = np.asarray(Image.open(path))
    x = preprocess_frame(frame, PreprocessConfig())
    assert frame.shape == (496, 512) and x.shape == (1, 512, 512)
    assert x.min() == 0.0 and x.max() == pytest.approx(1.0)
