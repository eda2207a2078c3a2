"""Bounded memory (octviewer.viewer.residency): frames of scans not on screen are released and read
again from their file when shown; what an entry keeps is small and bounded."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from helpers_models import make_tiny_bundle
from ui_helpers import KERMANY

from octviewer.viewer.presenters import REREADING_TEXT, entry_summary, result_placeholder
from octviewer.viewer.residency import KEEP_RECENT, Residency
from octviewer.viewer.session import ModelState

#: What a released B-scan entry may hold in arrays: its result (probabilities, logits) and its
#: heatmap at the model's grid (7 x 7 float32 for the default model, 16 x 16 for MIRAGE);
#: before 2.x it held the frame (254 KB for 512 x 496) and a full-size float32 map (1 MB).
RELEASED_BSCAN_BYTES = 4096


def _entry(uid: int, nbytes: int, *, from_file: bool = True) -> Any:
    scan = SimpleNamespace(frames=np.zeros(nbytes, np.uint8), localizer=None)
    return SimpleNamespace(uid=uid, scan=scan, header=object() if from_file else None)


def test_rule_keeps_the_pinned_and_the_most_recent_within_count_and_bytes() -> None:
    rule = Residency(keep=2, max_bytes=300)
    entries = {u: _entry(u, 100) for u in range(1, 7)}
    entries[7] = _entry(7, 100, from_file=False)  # in memory only: nothing to read it back from
    for u in (1, 2, 3, 4, 5):
        rule.touch(u)
    assert sorted(rule.to_release(entries, pinned=(1, None))) == [2, 3, 6]  # 1 pinned, 5, 4 kept
    entries[5] = _entry(5, 250)  # too big beside 4: the byte cap keeps the newest that fit
    assert sorted(rule.to_release(entries, pinned=(1, None))) == [2, 3, 4, 6]


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Any:
    from octviewer.core.engine import Engine

    d = tmp_path_factory.mktemp("models")
    return Engine(make_tiny_bundle(d / "tiny.safetensors", seed=0), device="cpu")


@pytest.fixture
def controller(qapp, engine):
    from octviewer.ui.controller import Controller

    c = Controller(sync=True)
    c.set_engine(engine)
    yield c
    c.shutdown()


def _open_many(c: Any, tmp_path: Path, n: int) -> tuple[list[int], list[Path]]:
    """``n`` B-scan files opened one after another, the newest shown each time."""
    files = []
    for i in range(n):
        p = tmp_path / f"scan_{i}.jpeg"
        shutil.copy(KERMANY[i % len(KERMANY)], p)
        files.append(p)
    uids = []
    for p in files:
        (uid,) = c.open_paths([p])
        c.set_priority(uid)
        uids.append(uid)
    return uids, files


@pytest.mark.gui
def test_frames_of_scans_not_shown_are_released_and_read_again(controller, tmp_path) -> None:
    from octviewer.core.io import load

    c = controller
    n = KEEP_RECENT + 4
    uids, files = _open_many(c, tmp_path, n)
    resident = [u for u in uids if c.entry(u).scan is not None]
    assert len(resident) == KEEP_RECENT + 1 and uids[-1] in resident  # + the one on screen
    first = c.entry(uids[0])
    result, summary = first.result, entry_summary(first)
    assert first.released and result is not None and first.name == files[0].name
    assert summary.startswith(result.frames[0].predicted_class)  # the list line is unchanged
    assert first.cams and first.held_bytes() <= RELEASED_BSCAN_BYTES
    updated: list[int] = []
    c.entry_updated.connect(updated.append)
    c.set_priority(uids[0])  # shown again: read from its file (sync mode: at once)
    assert first.scan is not None and uids[0] in updated
    np.testing.assert_array_equal(first.scan.frames, load(files[0]).frames)
    assert first.result is result  # the same file: not analysed again
    assert sum(c.entry(u).scan is not None for u in uids) <= KEEP_RECENT + 1


@pytest.mark.gui
def test_entry_bytes_stay_bounded_over_many_scans(controller, tmp_path) -> None:
    c = controller
    uids, _ = _open_many(c, tmp_path, 12)
    held = [c.entry(u).held_bytes() for u in uids]
    released = [h for u, h in zip(uids, held, strict=True) if c.entry(u).released]
    assert len(released) == 12 - KEEP_RECENT - 1
    assert max(released) <= RELEASED_BSCAN_BYTES
    frame = c.entry(uids[-1]).scan.frames.nbytes
    assert sum(held) <= (KEEP_RECENT + 1) * (frame + RELEASED_BSCAN_BYTES) + 12 * 4096


@pytest.mark.gui
def test_a_file_that_cannot_be_read_again_says_so(controller, tmp_path) -> None:
    c = controller
    uids, files = _open_many(c, tmp_path, KEEP_RECENT + 3)
    errors: list[tuple[str, str, str]] = []
    c.error.connect(lambda *a: errors.append(a))
    files[0].unlink()
    c.set_priority(uids[0])
    entry = c.entry(uids[0])
    assert entry.released and entry.reread_error and entry.result is not None
    assert errors and errors[0][0] == f"Could not read {files[0].name} again"
    text = result_placeholder(entry, 0, ModelState.READY)
    assert text.startswith("Could not read this scan again:") and files[0].name in text
    shutil.copy(KERMANY[0], files[0])  # put back: shown again, it opens
    c.set_priority(uids[1])
    c.set_priority(uids[0])
    assert entry.scan is not None and entry.reread_error is None


@pytest.mark.gui
def test_a_file_changed_since_its_analysis_is_analysed_again(controller, tmp_path) -> None:
    c = controller
    uids, files = _open_many(c, tmp_path, KEEP_RECENT + 3)
    entry = c.entry(uids[0])
    old = entry.result
    shutil.copy(KERMANY[1], files[0])  # another B-scan under the same name
    c.set_priority(uids[0])
    assert entry.scan is not None and entry.result is not None and entry.result is not old


@pytest.mark.gui
def test_released_placeholder_and_report_of_a_released_scan(controller, tmp_path) -> None:
    from PIL import Image

    c = controller
    uids, _ = _open_many(c, tmp_path, KEEP_RECENT + 3)
    entry = c.entry(uids[0])
    assert result_placeholder(entry, 0, ModelState.READY) == REREADING_TEXT
    written: list[Any] = []
    c.export_finished.connect(written.append)
    c.export_report(uids[0], 0, tmp_path / "r.png")  # the worker reads the file again
    assert written == [[tmp_path / "r.png"]] and entry.released
    assert Image.open(tmp_path / "r.png").size[0] > 0
