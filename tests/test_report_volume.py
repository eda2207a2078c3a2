"""The volume report: the disease map panel and its PNG text chunk (octviewer.core.report.volume)."""

from __future__ import annotations

import dataclasses
import json

import io_factory as fac
import numpy as np
import pytest
from PIL import Image
from report_text import drawn_strings

from octviewer.core import disease_map as dm
from octviewer.core.io import load
from octviewer.core.presentation import class_rgb
from octviewer.core.report import render_report, save_report
from octviewer.core.report import volume as report_volume
from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult

NAMES = ("CNV", "DME", "DRUSEN", "NORMAL")


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory):
    if not fac.FUNDUS.is_file():
        pytest.skip(f"{fac.FUNDUS.name} is missing from tests/data/io")
    stack = fac.kermany_stack()
    path, _ = fac.localized_volume(
        tmp_path_factory.mktemp("report_volume"), np.concatenate([stack, stack[::-1]])
    )
    return load(path)


def _result(classes: list[int | None]) -> ScanResult:
    frames = []
    for i, k in enumerate(classes):
        p = np.full(4, 0.1, np.float32)
        flags = frozenset()
        if k is None:
            k, flags = 1, frozenset({ResultFlag.NOT_OCT})
        p[k] = 0.7
        frames.append(FrameResult(i, NAMES, p, np.log(p), flags=flags))
    return ScanResult(tuple(frames), ModelIdentity("m", "1", "a" * 64, "test"), "cpu")


def test_volume_report_has_the_map_panel_and_names_it_in_a_text_chunk(
    volume, tmp_path, monkeypatch
) -> None:
    res = _result([0, 0, 3, None, 2, 3])
    path = save_report(volume, res, tmp_path / "r.png", frame_index=2)
    with Image.open(path) as im:
        chunks = dict(im.text)
        size = im.size
    data = json.loads(chunks[report_volume.CHUNK_KEY])
    assert data["available"] and data["title"] == dm.MAP_TITLE
    assert [f["class"] for f in data["frames"]] == [
        "CNV",
        "CNV",
        "NORMAL",
        None,
        "DRUSEN",
        "NORMAL",
    ]
    assert data["frames"][3]["status"] == "not assessed" and data["frames"][3]["confidence"] is None
    assert data["frames"][0]["confidence"] == pytest.approx(0.7)
    assert data["frames"][5]["line"] == pytest.approx(list(fac.localizer_positions(6)[5]), abs=0.01)
    assert "Test" not in chunks[report_volume.CHUNK_KEY]  # no identity
    # the map section: the map on the localizer, its legend and what it shows, counted
    page = " ".join(drawn_strings(monkeypatch, lambda: render_report(volume, res, frame_index=2)))
    assert "Disease map" in page and "not assessed" in page
    assert "6 B-scans: 2 × CNV, 0 × DME, 1 × DRUSEN, 2 × NORMAL, 1 not assessed" in page
    # the same report without a localizer: the same page size, and the map's place says why
    no_loc = dataclasses.replace(volume, localizer=None)
    drawn_plain: list[Image.Image] = []
    plain_page = " ".join(
        drawn_strings(
            monkeypatch,
            lambda: drawn_plain.append(render_report(no_loc, res, frame_index=2)),
        )
    )
    (plain,) = drawn_plain
    assert size == plain.size
    gone = json.loads(plain.info[report_volume.CHUNK_KEY])
    assert not gone["available"] and "without a localizer" in gone["reason"]
    assert "Disease map" in plain_page and gone["reason"] in plain_page
    assert "B-scans: 2 × CNV" not in plain_page


def test_map_image_draws_each_line_in_its_class_colour(volume) -> None:
    res = _result([0, 0, 3, None, 2, 3])
    m = dm.build_disease_map(volume, res)
    assert m.line(0).color == class_rgb(0, NAMES) and m.legend[3].color == class_rgb(3, NAMES)
    pic = np.asarray(report_volume.map_image(m, volume, 768, current=None)).astype(int)
    base = np.asarray(report_volume.localizer_rgb(volume)).astype(int)
    for ln in m.lines:
        x = round((ln.start[0] + ln.end[0]) / 2)
        y = round(ln.start[1])
        if ln.status == "assessed":
            # the drawn pixel is the localizer pulled towards the class colour
            a = 0.25 + 0.75 * ln.strength
            expected = (1 - a) * base[y, x] + a * np.array(ln.color)
            assert np.abs(pic[y, x] - expected).max() <= 3
    # off the lines the localizer is unchanged
    assert np.array_equal(pic[10, 10], base[10, 10])
    # the frame shown in the report keeps its class colour (full strength), outlined black
    # inside white: the marker never paints over the class
    marked = np.asarray(report_volume.map_image(m, volume, 768, current=2))
    ln = m.line(2)
    x, y = round((ln.start[0] + ln.end[0]) / 2), round(ln.start[1])
    assert tuple(marked[y, x]) == ln.color == class_rgb(3, NAMES)
    column = [tuple(int(v) for v in marked[y + k, x]) for k in range(1, 12)]
    assert (0, 0, 0) in column and (255, 255, 255) in column


def test_report_captions_match_its_layout() -> None:
    """The B-scan of the shown frame is at the top of the report, the map at the bottom: the
    caption says so, and describes the marker as it is drawn (an outline, not a green line)."""
    assert "at the top of this report is outlined in black and white" in report_volume.HOW_TO_READ
    assert "green" not in report_volume.HOW_TO_READ


def test_single_bscan_report_has_no_map_section(volume) -> None:
    single = dataclasses.replace(volume, frames=volume.frames[:1])
    img = render_report(single, _result([0]))
    assert report_volume.CHUNK_KEY not in img.info


def test_cli_writes_the_map_and_draws_contours(volume, tmp_path) -> None:
    from helpers_models import make_tiny_bundle

    from octviewer import cli

    bundle = make_tiny_bundle(tmp_path / "tiny.safetensors")
    src = volume.metadata.source_paths[0]

    def run(out: str, *extra: str) -> int:
        args = ["analyze", str(src), "--model", str(bundle), "--out", str(tmp_path / out)]
        # --no-cache: the second run would take the first's result from the result cache, and
        # its report footer would say so (a line taller); here the two must differ only in lines
        opts = ["--device", "cpu", "--no-progress", "--summary", "none", "--no-cache"]
        return cli.main([*args, *opts, *extra])

    assert run("plain") == 0 and run("lines", "--contours", "0.5,0.8") == 0
    (plain,) = (tmp_path / "plain").glob("*.png")
    (lines,) = (tmp_path / "lines").glob("*.png")
    with Image.open(plain) as a, Image.open(lines) as b:
        data = json.loads(a.text[report_volume.CHUNK_KEY])
        assert data["available"] and len(data["frames"]) == volume.n_frames
        pa, pb = np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))
    assert pa.shape == pb.shape
    differs = np.any(pa != pb, axis=-1)
    # only the heatmap panel changed (the footer's time may differ too): the contour lines
    assert differs[: pa.shape[0] // 3].sum() > 50
    assert run("bad", "--contours", "half") == cli.EXIT_USAGE
    assert run("bad", "--contours", "0,2") == cli.EXIT_USAGE
