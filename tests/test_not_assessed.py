"""Frames that are not assessed (NOT_OCT, OUT_OF_DISTRIBUTION) present no class: in the report
(drawn text and PNG chunks), the CSV/JSON summary and the CLI's console line.

Results are built by hand around real Kermany B-scans (``dataclasses.replace`` adds flags);
one test runs the real engine (a tiny bundle) and the CLI on the real Heidelberg infrared
fundus sample, which is not an OCT B-scan.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import report_text
from PIL import Image

from octviewer import cli
from octviewer.core import report, summary
from octviewer.core.report.charts import HATCH_FILL
from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult
from octviewer.core.scan import Modality, PixelSpacing, Scan, ScanMetadata
from octviewer.resources import samples_dir

try:
    from helpers_models import make_tiny_bundle
except ImportError:  # run as tests.test_not_assessed
    from tests.helpers_models import make_tiny_bundle

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
MODEL = ModelIdentity("octviewer-test", "1.2.3", "f00dbabe" * 8, "mirage_vit", "test only")
WHEN = dt.datetime(2024, 5, 6, 7, 8, tzinfo=dt.timezone.utc)
FUNDUS = samples_dir() / "heidelberg-ir-fundus-not-oct.dcm"


def _has_class_word(s: str) -> bool:
    return any(c in s.upper() for c in CLASSES)


def _frames(data_dir: Path, n: int = 1) -> np.ndarray:
    img = np.asarray(Image.open(data_dir / "report" / "CNV-53018-1.jpeg").convert("L"))
    return np.stack([img] * n) if n > 1 else img


def _scan(frames: np.ndarray, modality: Modality = Modality.OCT_BSCAN) -> Scan:
    meta = ScanMetadata(
        source_paths=(Path("scan-0001.png"),),  # no class word in the file name
        format="PNG",
        modality=modality,
        spacing=PixelSpacing(0.0039, 0.0114, frame=0.12 if frames.ndim == 3 else None),
    )
    return Scan(frames, meta)


def _fr(i: int, probs, flags=frozenset(), cam=None, **kw) -> FrameResult:
    p = np.asarray(probs, np.float32)
    return FrameResult(
        i, CLASSES, p, np.log(p + 1e-6), frozenset(flags), cam, 0 if cam is not None else None, **kw
    )


@pytest.fixture
def not_oct(data_dir: Path) -> tuple[Scan, ScanResult]:
    frame = _frames(data_dir)
    fr = _fr(
        0,
        [0.81, 0.1, 0.06, 0.03],
        {ResultFlag.LOW_CONFIDENCE, ResultFlag.NOT_OCT},
        cam=np.ones(frame.shape, np.float32),
    )
    return _scan(frame, Modality.FUNDUS), ScanResult((fr,), MODEL, "cpu")


def test_api_withholds_the_class() -> None:
    fr = _fr(0, [0.81, 0.1, 0.06, 0.03], {ResultFlag.OUT_OF_DISTRIBUTION, ResultFlag.OTHER_DEVICE})
    assert not fr.assessable and fr.presented_class is None and fr.headline == "Not assessed"
    assert fr.reason == ResultFlag.OUT_OF_DISTRIBUTION.warning
    assert fr.reason_text.startswith("This image is unlike") and not _has_class_word(fr.reason_text)
    assert fr.cautions == [ResultFlag.OTHER_DEVICE]  # the reason is not repeated as a warning
    both = _fr(0, [0.81, 0.1, 0.06, 0.03], {ResultFlag.NOT_OCT, ResultFlag.OUT_OF_DISTRIBUTION})
    assert both.reason == ResultFlag.NOT_OCT.warning
    assert both.cautions == []  # a fundus photo is not also called "this B-scan is unlike..."
    ok = _fr(0, [0.81, 0.1, 0.06, 0.03], {ResultFlag.OOD_CHECK_UNAVAILABLE})
    assert ok.assessable and ok.reason_text is None and ok.headline == "CNV 81.0 %"


def test_report_of_a_not_assessed_frame_names_no_class(monkeypatch, not_oct) -> None:
    scan, res = not_oct
    drawn = report_text.drawn(monkeypatch, lambda: report.render_report(scan, res, created=WHEN))
    strings = [s for s, _ in drawn]
    flat = " ".join(" ".join(strings).split())
    assert report.NOT_ASSESSED_HEADLINE in strings
    big = {s for s, size in drawn if size >= 14}  # large type: the title and the headline only
    assert big == {"Image analysis report", "NOT ASSESSED"}
    for s, _size in drawn:  # no class word anywhere: not in large type, nor in the bars
        assert not _has_class_word(s), s
    assert "This image is not an OCT B-scan" in flat  # the reason, in one plain sentence
    assert "UNCERTAIN" not in flat and "81.0 %" not in flat
    assert "No heatmap: this frame is not assessed." in strings
    # the low-confidence warning is still shown as a caution
    assert " ".join(ResultFlag.LOW_CONFIDENCE.warning.split()[:5]) in flat
    # a fundus image is an "image", its spacing is per pixel
    assert "Image" in strings and "B-scan" not in strings
    assert "Image analysis report" in strings
    assert not any(w in flat for w in ("axial", "lateral", "between B-scans"))
    assert "3.90 × 11.40" not in flat and "11.40 × 3.90 µm per pixel" in flat


def test_report_chunks_carry_the_decision_and_no_class(tmp_path: Path, not_oct) -> None:
    scan, res = not_oct
    res = dataclasses.replace(
        res, frames=(dataclasses.replace(res.frames[0], ood_score=12.5, ood_threshold=10.0),)
    )
    out = report.save_report(scan, res, tmp_path / "r.png", created=WHEN)
    with Image.open(out) as im:
        im.load()
        chunks = dict(im.text)
    for key, value in chunks.items():
        assert not _has_class_word(value), (key, value)
    assert chunks["octviewer:assessable"] == "no"
    assert chunks["octviewer:flags"] == "NOT_OCT,LOW_CONFIDENCE"
    assert chunks["octviewer:reason"] == ResultFlag.NOT_OCT.warning
    rec = json.loads(chunks["octviewer:result"])
    assert rec["assessable"] is False and rec["class"] is None and rec["confidence"] is None
    assert rec["probabilities"] is None and rec["cam_class"] is None
    assert rec["flags"] == ["NOT_OCT", "LOW_CONFIDENCE"]
    assert rec["reason"] == ResultFlag.NOT_OCT.warning
    assert rec["ood_score"] == 12.5 and rec["ood_threshold"] == 10.0


def test_show_unreliable_draws_the_output_marked_as_such(monkeypatch, not_oct) -> None:
    scan, res = not_oct
    drawn = report_text.drawn(
        monkeypatch, lambda: report.render_report(scan, res, show_unreliable=True)
    )
    strings = [s for s, _ in drawn]
    assert report.NOT_ASSESSED_HEADLINE in strings and report.UNRELIABLE_CAPTION in strings
    assert any("81.0 %" in s for s in strings)  # the probabilities, small
    assert "Heatmap for CNV — UNRELIABLE" in strings
    sizes = dict(drawn)
    assert sizes["CNV"] < sizes[report.NOT_ASSESSED_HEADLINE]  # no class word in large type
    rec = json.loads(report.render_report(scan, res, show_unreliable=True).info["octviewer:result"])
    assert rec["class"] is None and rec["unreliable_output_shown"] is True
    assert rec["probabilities"]["CNV"] == pytest.approx(0.81, abs=1e-6)


def test_assessable_frame_with_cautions_keeps_its_class(monkeypatch, data_dir: Path) -> None:
    scan = _scan(_frames(data_dir))
    fr = _fr(
        0, [0.81, 0.1, 0.06, 0.03], {ResultFlag.OTHER_DEVICE, ResultFlag.OOD_CHECK_UNAVAILABLE}
    )
    drawn = [
        s
        for s, _ in report_text.drawn(
            monkeypatch, lambda: report.render_report(scan, ScanResult((fr,), MODEL, "cpu"))
        )
    ]
    flat = " ".join(" ".join(drawn).split())
    assert "CNV  81.0 %" in drawn and report.NOT_ASSESSED_HEADLINE not in drawn
    assert "Caution: this scan comes from a device" in flat
    assert "carries no out-of-distribution statistics" in flat
    assert "B-scan" in drawn and "µm axial" in flat  # an OCT keeps its B-scan wording


def test_volume_report_skips_and_hatches_frames_not_assessed(monkeypatch, data_dir: Path) -> None:
    scan = _scan(_frames(data_dir, 5), Modality.OCT_VOLUME)
    normal = [0.2, 0.1, 0.1, 0.6]
    frames = [_fr(i, normal) for i in range(5)]
    frames[1] = _fr(1, [0.9, 0.05, 0.04, 0.01], {ResultFlag.OUT_OF_DISTRIBUTION})  # "worst"
    frames[3] = _fr(3, [0.6, 0.1, 0.1, 0.2])  # the most suspicious assessable frame
    res = ScanResult(tuple(frames), MODEL, "cpu")
    assert report.choose_frame(res, None).frame_index == 3
    img = report.render_report(scan, res)
    assert json.loads(img.info["octviewer:result"])["frame_index"] == 3
    # the strip marks frame 1 with the grey hatch (and its legend says so)
    arr = np.asarray(img)
    assert np.all(arr == np.array(HATCH_FILL, np.uint8), axis=-1).sum() > 1000
    strings = [
        s for s, _ in report_text.drawn(monkeypatch, lambda: report.render_report(scan, res))
    ]
    assert "not assessed" in strings
    # a report asked for the flagged frame itself has no class either
    rec = json.loads(report.render_report(scan, res, frame_index=1).info["octviewer:result"])
    assert rec["class"] is None and rec["assessable"] is False


def test_summary_leaves_class_empty_and_lists_flags(tmp_path: Path) -> None:
    frames = (
        _fr(0, [0.81, 0.1, 0.06, 0.03], {ResultFlag.NOT_OCT, ResultFlag.LOW_CONFIDENCE}),
        _fr(
            1,
            [0.1, 0.1, 0.1, 0.7],
            {ResultFlag.OUT_OF_DISTRIBUTION},
            ood_score=3.25,
            ood_threshold=2.0,
        ),
        _fr(2, [0.1, 0.8, 0.05, 0.05], {ResultFlag.OOD_CHECK_UNAVAILABLE}),
    )
    rows = summary.rows_for_result("in/scan.dcm", ScanResult(frames, MODEL, "cpu"), 3)
    c = summary.write_csv(rows, tmp_path / "s.csv", CLASSES)
    with c.open(encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    for col in ("assessable", "reason", "flags", "ood_score", "ood_threshold"):
        assert col in table[0]
    assert [r["class"] for r in table] == ["", "", "DME"]
    assert [r["confidence"] for r in table][:2] == ["", ""]
    assert [r["assessable"] for r in table] == ["false", "false", "true"]
    assert table[0]["flags"] == "NOT_OCT;LOW_CONFIDENCE"  # most serious first
    assert table[0]["reason"] == ResultFlag.NOT_OCT.warning
    assert table[1]["ood_score"] == "3.25" and table[1]["ood_threshold"] == "2.0"
    assert table[2]["reason"] == "" and table[2]["flags"] == "OOD_CHECK_UNAVAILABLE"
    j = json.loads(summary.write_json(rows, tmp_path / "s.json").read_text("utf-8"))
    assert [r["class"] for r in j["results"]] == [None, None, "DME"]
    assert j["results"][1]["assessable"] is False and j["results"][1]["ood_score"] == 3.25
    line = summary.result_line("in/scan.dcm", frames[0], 3)
    assert line.startswith("in/scan.dcm (frame 1 of 3): not assessed: This image is not an OCT")
    assert not _has_class_word(line)
    assert summary.result_line("x", frames[2]).startswith("x: DME 80.0 %")


def test_cli_on_the_fundus_sample_says_not_assessed(tmp_path: Path, capsys) -> None:
    """The real engine (tiny bundle) and the CLI on a real infrared fundus image."""
    bundle = make_tiny_bundle(tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    analyze = ["analyze", str(FUNDUS), "--model", str(bundle), "--device", "cpu", "--no-progress"]
    rc = cli.main([*analyze, "--out", str(out)])
    assert rc == cli.EXIT_OK
    console = capsys.readouterr().out
    line = next(ln for ln in console.splitlines() if FUNDUS.name in ln)
    assert "not assessed: This image is not an OCT B-scan" in line and not _has_class_word(line)
    with (out / "summary.csv").open(encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["class"] == "" and row["confidence"] == "" and row["assessable"] == "false"
    assert row["flags"].split(";")[0] == "NOT_OCT"
    with Image.open(out / f"{FUNDUS.stem}.png") as im:
        im.load()
        chunks = dict(im.text)
    assert chunks["octviewer:assessable"] == "no"
    for key, value in chunks.items():
        assert not _has_class_word(value), (key, value)
    # asked for, the withheld output is drawn and stored, still without a class
    out2 = tmp_path / "out2"
    rc = cli.main([*analyze, "--out", str(out2), "--show-unreliable"])
    assert rc == cli.EXIT_OK
    with Image.open(out2 / f"{FUNDUS.stem}.png") as im:
        im.load()
        rec = json.loads(im.text["octviewer:result"])
    assert rec["class"] is None and set(rec["probabilities"]) == set(CLASSES)
    assert rec["cam_class"] is not None  # the heatmap was computed and drawn


def test_ood_score_is_shown_small_with_its_threshold(monkeypatch, data_dir: Path) -> None:
    scan = _scan(_frames(data_dir))
    flagged = _fr(
        0,
        [0.81, 0.1, 0.06, 0.03],
        {ResultFlag.OUT_OF_DISTRIBUTION},
        ood_score=12.5,
        ood_threshold=10.0,
    )
    ok = dataclasses.replace(flagged, flags=frozenset(), ood_score=4.25)
    assert flagged.ood_text == "out-of-distribution score 12.5, threshold 10"
    for fr, word in ((flagged, "NOT ASSESSED"), (ok, "CNV  81.0 %")):
        res = ScanResult((fr,), MODEL, "cpu")
        drawn = report_text.drawn(monkeypatch, lambda res=res: report.render_report(scan, res))
        sizes = {s: size for s, size in drawn}
        line = fr.ood_text.capitalize() + "."
        assert word in sizes and line in sizes and sizes[line] < sizes[word]
    assert _fr(0, [0.81, 0.1, 0.06, 0.03]).ood_text is None
