"""The result cache on disk (core/result_cache.py): a hit never runs the engine; another model,
arithmetic or file content is a miss; writes are atomic; damaged or foreign entries are ignored;
clear and the size budget; no patient identity in any cache file."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_models import make_tiny_bundle
from report_text import drawn_strings

import octviewer
from octviewer.core.inference import AnalysisRequest
from octviewer.core.result_cache import (
    CacheKey,
    ResultCache,
    cached_at_text,
    content_sha256,
    engine_arithmetic,
)

DATA = Path(__file__).resolve().parent / "data"
KERMANY = sorted((DATA / "kermany").glob("*.jpeg"))


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Any:
    from octviewer.core.engine import Engine

    d = tmp_path_factory.mktemp("model")
    return Engine(make_tiny_bundle(d / "tiny.safetensors"), device="cpu")


class Counting:
    """``engine.analyze`` with a call counter (what a hit must not call)."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.calls = engine, 0

    def __call__(self, scan: Any, **kw: Any) -> Any:
        self.calls += 1
        return self.engine.analyze(scan, AnalysisRequest(**kw))


def write_volume(path: Path, n: int = 5) -> Path:
    """A multi-page TIFF of ``n`` real Kermany B-scans (cycled, cropped to a common size)."""
    import tifffile

    frames = [octviewer.load(p).frames[0] for p in KERMANY]
    rows, cols = min(f.shape[0] for f in frames), min(f.shape[1] for f in frames)
    stack = np.stack([frames[i % len(frames)][:rows, :cols] for i in range(n)])
    tifffile.imwrite(path, stack, photometric="minisblack")  # 3 or 4 pages are not RGB(A)
    return path


@pytest.fixture
def volume(tmp_path) -> Path:
    return write_volume(tmp_path / "vol.tif")


def test_second_analysis_comes_from_the_cache(tmp_path, engine, volume) -> None:
    cache, analyze = ResultCache(tmp_path / "cache"), Counting(engine)
    scan = octviewer.load(volume)
    first = cache.through(scan, engine, lambda: analyze(scan, cam=False))
    again = octviewer.load(volume)
    second = cache.through(again, engine, lambda: analyze(again, cam=False))
    assert analyze.calls == 1
    assert "cached_at" not in first.extra and cached_at_text(first) is None
    assert cached_at_text(second).startswith("result from the cache, computed 20")
    assert second.model == first.model and second.device == first.device
    assert second.scan_reason == first.scan_reason and second.arithmetic == first.arithmetic
    for a, b in zip(first.frames, second.frames, strict=True):
        assert a.frame_index == b.frame_index and a.flags == b.flags
        assert np.array_equal(a.probabilities, b.probabilities)
        assert np.array_equal(a.logits, b.logits)
        assert (a.ood_score, a.ood_threshold, dict(a.details)) == (
            b.ood_score,
            b.ood_threshold,
            dict(b.details),
        )
        assert a.quality == b.quality and a.anatomy == b.anatomy
    # one frame of it is a hit too; "analyse again" (lookup=False) computes anew
    one = cache.through(again, engine, lambda: analyze(again, frames=[2]), frames=[2])
    assert analyze.calls == 1 and [f.frame_index for f in one.frames] == [2]
    cache.through(again, engine, lambda: analyze(again, cam=False), lookup=False)
    assert analyze.calls == 2


def test_another_model_arithmetic_or_content_is_a_miss(tmp_path, engine, volume) -> None:
    cache = ResultCache(tmp_path / "cache")
    scan = octviewer.load(volume)
    arith = engine_arithmetic(engine)
    key = cache.key_for(scan, engine.identity.sha256, arith)
    assert key is not None and cache.put(
        key, scan, engine.analyze(scan, AnalysisRequest(cam=False))
    )
    assert cache.get(key, scan) is not None
    assert cache.get(CacheKey(key.content, "0" * 64, arith), scan) is None
    other = "int8" if arith != "int8" else "float32"
    assert cache.get(CacheKey(key.content, key.model_sha256, other), scan) is None
    # the same name, other bytes: another key
    data = bytearray(volume.read_bytes())
    data[-1] ^= 0xFF
    volume.write_bytes(bytes(data))
    changed = cache.key_for(octviewer.load(volume), engine.identity.sha256, arith)
    assert changed is not None and changed.content != key.content
    assert cache.get(changed, scan) is None
    # a series key picks another scan out of the same files; no readable file: no key
    assert content_sha256([volume], "a") != content_sha256([volume], "b")
    assert content_sha256([tmp_path / "missing.tif"]) is None and content_sha256([]) is None


def test_write_is_atomic_under_a_failure(tmp_path, engine, volume, monkeypatch) -> None:
    cache = ResultCache(tmp_path / "cache")
    scan = octviewer.load(volume)
    key = cache.key_for(scan, engine.identity.sha256, engine_arithmetic(engine))
    result = engine.analyze(scan, AnalysisRequest(cam=False))

    def crash(*args: Any) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    assert cache.put(key, scan, result) is False  # logged, not raised
    assert list(cache.root.iterdir()) == []  # no entry, no temporary file left
    assert cache.get(key, scan) is None
    monkeypatch.undo()
    assert cache.put(key, scan, result)
    good = cache.path_of(key).read_bytes()
    monkeypatch.setattr(os, "replace", crash)
    assert cache.put(key, scan, result) is False
    assert cache.path_of(key).read_bytes() == good  # the old entry is whole
    # a process killed mid-write leaves only a temporary file: never read as an entry
    (cache.root / ".abc.part").write_bytes(good[: len(good) // 2])
    assert cache.get(key, scan) is not None


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbage", "foreign", "wrong-type", "other-size", "unknown-flag", "empty"],
)
def test_a_damaged_or_foreign_entry_is_ignored_and_recomputed(
    tmp_path, engine, volume, damage, caplog
) -> None:
    cache, analyze = ResultCache(tmp_path / "cache"), Counting(engine)
    scan = octviewer.load(volume)
    cache.through(scan, engine, lambda: analyze(scan, cam=False))
    key = cache.key_for(scan, engine.identity.sha256, engine_arithmetic(engine))
    path = cache.path_of(key)
    text = path.read_text()
    data = json.loads(text)
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(300))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        if damage == "foreign":
            data["key"]["content_sha256"] = "f" * 64
        elif damage == "wrong-type":
            data["frames"][0]["probabilities"] = ["0.5", "x", None, 1]
        elif damage == "other-size":
            data["scan"]["n_frames"] = 7
        elif damage == "unknown-flag":
            data["frames"][1]["flags"] = ["NOT_A_FLAG"]
        path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="octviewer.core.result_cache"):
        result = cache.through(scan, engine, lambda: analyze(scan, cam=False))
    assert analyze.calls == 2 and len(result.frames) == scan.n_frames
    assert "ignored" in caplog.text
    assert cache.get(key, scan) is not None  # rewritten whole


def test_the_least_recently_used_entries_go_past_the_budget(tmp_path, engine) -> None:
    cache = ResultCache(tmp_path / "cache")
    arith, entries = engine_arithmetic(engine), []
    for i, src in enumerate(KERMANY):
        p = tmp_path / f"b{i}.jpeg"
        shutil.copy(src, p)
        scan = octviewer.load(p)
        cache.through(
            scan, engine, lambda scan=scan: engine.analyze(scan, AnalysisRequest(cam=False))
        )
        entry = cache.path_of(cache.key_for(scan, engine.identity.sha256, arith))
        os.utime(entry, (1000 + i, 1000 + i))  # the first is the least recently used
        entries.append((scan, entry))
    n, size = cache.usage()
    assert n == len(KERMANY)
    first_scan, first_entry = entries[0]
    cache.get(cache.key_for(first_scan, engine.identity.sha256, arith), first_scan)  # used now
    cache.budget_bytes = size - 1
    assert cache.evict() > 0 and cache.usage()[0] == n - 1
    assert first_entry.is_file() and not entries[1][1].is_file()


def test_clear_says_how_much_it_freed(tmp_path, engine, volume) -> None:
    cache = ResultCache(tmp_path / "cache")
    scan = octviewer.load(volume)
    cache.through(scan, engine, lambda: engine.analyze(scan, AnalysisRequest(cam=False)))
    (cache.root / ".x.part").write_bytes(b"12345")
    n, size = cache.usage()
    assert n == 1 and cache.clear() == (1, size + 5)
    assert list(cache.root.iterdir()) == [] and cache.clear() == (0, 0)


def test_no_patient_identity_in_the_cache(tmp_path, engine) -> None:
    from io_factory import PATIENT, kermany_stack, opt_dataset, write

    name = "Doe_Jane_TEST-0001"
    path = write(opt_dataset(kermany_stack()), tmp_path / f"{name}.dcm")
    scan = octviewer.load(path)
    assert scan.identity.name  # the file does carry a patient
    cache = ResultCache(tmp_path / "cache")
    result = cache.through(scan, engine, lambda: engine.analyze(scan, AnalysisRequest(cam=False)))
    assert len(result.frames) == 3
    blob = b"".join(p.read_bytes() for p in cache.root.iterdir()).lower()
    for needle in [*PATIENT.values(), "Synthetic", "Doe", name, str(tmp_path)]:
        assert needle.lower().encode() not in blob, needle


def test_the_report_says_the_result_came_from_the_cache(tmp_path, engine, monkeypatch) -> None:
    from PIL import Image

    from octviewer.core.report import save_report

    p = tmp_path / "b.jpeg"
    shutil.copy(KERMANY[0], p)
    scan = octviewer.load(p)
    cache = ResultCache(tmp_path / "cache")
    fresh = cache.through(scan, engine, lambda: engine.analyze(scan))
    cached = cache.through(scan, engine, lambda: engine.analyze(scan))
    assert cached.frames[0].cam is None  # heatmaps are not cached: computed when drawn
    cached = cached.with_cam(0, fresh.frames[0].cam, fresh.frames[0].cam_class)
    a = Image.open(save_report(scan, fresh, tmp_path / "fresh.png"))
    b = Image.open(save_report(scan, cached, tmp_path / "cached.png"))
    assert "octviewer:cached_at" not in a.text
    assert b.text["octviewer:cached_at"] == cached.extra["cached_at"]
    assert b.size == a.size  # one page; its footer says so:
    lines = drawn_strings(monkeypatch, lambda: save_report(scan, cached, tmp_path / "c.png"))
    assert any(s.startswith("Result from the cache") for s in lines), lines
    fresh_lines = drawn_strings(monkeypatch, lambda: save_report(scan, fresh, tmp_path / "d.png"))
    assert not any("from the cache" in s for s in fresh_lines)
