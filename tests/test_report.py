"""The PNG report (octviewer.core.report: the report page rasterised) and the batch summary
(octviewer.core.summary).

Results are built by hand around real Kermany B-scans, so these tests need no model.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_text import drawn_strings, mean_difference, page_region, placed_pictures

import octviewer
from octviewer.core import overlay, report, summary
from octviewer.core.report.panels import image_panels
from octviewer.core.report.render import PNG_DPI
from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult
from octviewer.core.scan import (
    Laterality,
    Modality,
    PatientIdentity,
    PixelSpacing,
    Scan,
    ScanMetadata,
)
from octviewer.errors import ReportError

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
A4_PX = (1654, 2339)  # 210 x 297 mm at 200 dpi
IDENTITY = PatientIdentity(
    name="Zyxwood^Quentin", patient_id="QX-770012", birth_date="19411203", sex="F"
)
MODEL = ModelIdentity("octviewer-test", "1.2.3", "f00dbabe" * 8, "mirage_vit", "test only")
WHEN = dt.datetime(2024, 5, 6, 7, 8, tzinfo=dt.timezone.utc)


def _frame(data_dir: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(data_dir / "report" / name).convert("L"))


def _scan(
    frames: np.ndarray, name: str = "CNV-53018-1.jpeg", identity: PatientIdentity = IDENTITY
) -> Scan:
    meta = ScanMetadata(
        source_paths=(Path(name),),
        format="JPEG",
        modality=Modality.OCT_VOLUME
        if frames.ndim == 3 and frames.shape[0] > 1
        else Modality.OCT_BSCAN,
        laterality=Laterality.LEFT,
        spacing=PixelSpacing(0.0039, 0.0114),
        manufacturer="Heidelberg Engineering",
        device_model="Spectralis",
        acquisition_date=dt.date(2016, 9, 1),
    )
    return Scan(frames, meta, identity=identity)


def _hot_cam(shape: tuple[int, int]) -> np.ndarray:
    cam = np.zeros(shape, np.float32)
    cam[shape[0] // 3 : shape[0] // 2, shape[1] // 2 :] = 1.0
    return cam


def _fr(i: int, probs, *, flags=frozenset(), cam=None, cam_class=None) -> FrameResult:
    p = np.asarray(probs, np.float32)
    return FrameResult(i, CLASSES, p, np.log(p + 1e-6), frozenset(flags), cam, cam_class)


@pytest.fixture
def bscan(data_dir: Path) -> tuple[Scan, ScanResult]:
    frame = _frame(data_dir, "CNV-53018-1.jpeg")
    scan = _scan(frame)
    res = ScanResult(
        (_fr(0, [0.81, 0.1, 0.06, 0.03], cam=_hot_cam(frame.shape), cam_class=0),),
        MODEL,
        "cpu",
        0.1,
    )
    return scan, res


def _chunks(path: Path) -> dict[str, str]:
    with Image.open(path) as im:
        im.load()
        return dict(im.text)


def test_report_png_has_text_chunks(tmp_path: Path, bscan) -> None:
    scan, res = bscan
    out = report.save_report(scan, res, tmp_path / "r.png", created=WHEN)
    assert out == tmp_path / "r.png"
    chunks = _chunks(out)
    assert chunks["octviewer:version"] == octviewer.__version__
    assert chunks["octviewer:model"] == "octviewer-test 1.2.3"
    assert chunks["octviewer:model_sha256"] == MODEL.sha256
    assert chunks["octviewer:disclaimer"] == octviewer.RESEARCH_ONLY
    rec = json.loads(chunks["octviewer:result"])
    assert rec["file"] == "CNV-53018-1.jpeg"
    assert rec["frame_index"] == 0 and rec["n_frames"] == 1
    assert rec["class"] == "CNV"
    assert rec["probabilities"]["DME"] == pytest.approx(0.1, abs=1e-6)
    assert rec["flags"] == []
    assert rec["cam_class"] == "CNV"
    assert rec["created"] == "2024-05-06T07:08:00+00:00"
    assert chunks["octviewer:page"] == "A4"
    with Image.open(out) as im:
        assert im.size == A4_PX and im.info["dpi"] == pytest.approx((PNG_DPI, PNG_DPI), abs=0.01)


def test_report_shows_both_panels_scaled_into_the_page(monkeypatch, bscan) -> None:
    scan, res = bscan
    placed = placed_pictures(monkeypatch)
    page = report.render_report(scan, res, created=WHEN)
    assert page.size == A4_PX
    (b_img, b_box), (h_img, h_box) = placed[:2]
    frame = scan.frame(0)
    blended = overlay.blend(
        frame, res.frames[0].cam, overlay.DEFAULT_COLORMAP, overlay.DEFAULT_OPACITY
    )
    assert np.array_equal(np.asarray(b_img)[..., 0], frame)  # the B-scan, not upscaled
    assert np.array_equal(np.asarray(h_img), blended)  # the heatmap panel: the blended frame
    # side by side on the same rows, aspect kept, at least 700 px wide on the page
    assert b_box.y == h_box.y and h_box.x > b_box.x + b_box.w
    assert b_box.w / b_box.h == pytest.approx(frame.shape[1] / frame.shape[0], rel=1e-3)
    assert b_box.w * PNG_DPI / 25.4 >= 700
    # and the page shows them there (JPEG inside the PDF, resampled: close, not identical)
    assert mean_difference(page_region(page, b_box), b_img) < 3
    assert mean_difference(page_region(page, h_box), h_img) < 3
    assert mean_difference(page_region(page, b_box), h_img) > 5  # the check tells them apart


def test_small_frames_are_upscaled_never_downscaled(data_dir: Path) -> None:
    frame = _frame(data_dir, "NORMAL-2633503-1.jpeg")[::2, ::2].copy()  # 256 x 248
    scan = _scan(frame, "NORMAL-2633503-1.jpeg")
    res = ScanResult(
        (_fr(0, [0.1, 0.1, 0.1, 0.7], cam=_hot_cam(frame.shape), cam_class=3),), MODEL, "cpu"
    )
    left, right = image_panels(scan, res.frames[0], "jet", 0.5)
    assert left.width >= report.MIN_PANEL_WIDTH and left.height > frame.shape[0]
    assert right is not None and right.size == left.size
    # the page does not grow with the input: small, huge and odd-shaped frames alike
    for shape in ((120, 90), (2600, 3900), (1900, 300)):
        big = np.asarray(Image.fromarray(frame).resize((shape[1], shape[0])))
        res_big = ScanResult(
            (_fr(0, [0.1, 0.1, 0.1, 0.7], cam=_hot_cam(big.shape), cam_class=3),), MODEL, "cpu"
        )
        assert report.render_report(_scan(big), res_big).size == A4_PX, shape
    letter = report.render_report(scan, res, page="Letter")
    assert letter.size == (1700, 2200) and letter.info["octviewer:page"] == "Letter"


def test_no_identity_anywhere_by_default(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    frame = _frame(data_dir, "CNV-53018-1.jpeg")
    # a file name that carries the patient's name and ID, as some exports do
    scan = _scan(frame, name="ZYXWOOD_Quentin_QX-770012.jpeg")
    res = ScanResult(
        (_fr(0, [0.7, 0.1, 0.1, 0.1], cam=_hot_cam(frame.shape), cam_class=0),), MODEL, "cpu"
    )
    secrets = ("Zyxwood", "Quentin", "QX-770012", "19411203", "1941")

    drawn = " | ".join(
        drawn_strings(monkeypatch, lambda: report.save_report(scan, res, tmp_path / "a.png"))
    )
    chunks = json.dumps(_chunks(tmp_path / "a.png"))
    raw = (tmp_path / "a.png").read_bytes()
    for s in secrets:
        assert s.lower() not in drawn.lower(), s
        assert s.lower() not in chunks.lower(), s
        assert s.encode() not in raw, s
    assert report.REDACTED in drawn and "octviewer:patient" not in chunks

    # the opt-in includes them, in the picture and the chunks
    drawn_id = " | ".join(
        drawn_strings(
            monkeypatch,
            lambda: report.save_report(scan, res, tmp_path / "b.png", include_identity=True),
        )
    )
    chunks_id = _chunks(tmp_path / "b.png")
    for s in ("Zyxwood Quentin", "QX-770012", "19411203"):
        assert s in drawn_id
        assert s in chunks_id["octviewer:patient"]
    assert "ZYXWOOD_Quentin_QX-770012.jpeg" in json.loads(chunks_id["octviewer:result"])["file"]


def test_warnings_are_drawn_in_plain_words(monkeypatch, bscan) -> None:
    scan, _ = bscan
    res = ScanResult(
        (
            _fr(
                0,
                [0.3, 0.3, 0.2, 0.2],
                flags={ResultFlag.COLOR_INPUT, ResultFlag.LOW_CONFIDENCE},
                cam=None,
            ),
        ),
        MODEL,
        "cpu",
    )
    drawn = " ".join(drawn_strings(monkeypatch, lambda: report.render_report(scan, res)))
    flat = " ".join(drawn.split())
    for flag in (ResultFlag.LOW_CONFIDENCE, ResultFlag.COLOR_INPUT):
        first_words = " ".join(flag.warning.split()[:6])
        assert first_words in flat
    assert "UNCERTAIN" in flat
    assert "No heatmap was computed" in flat
    img = report.render_report(scan, res)
    # most serious first (FLAG_PRECEDENCE); NOT_OCT frames are covered in test_not_assessed.py
    assert json.loads(img.info["octviewer:result"])["flags"] == ["LOW_CONFIDENCE", "COLOR_INPUT"]


def test_report_states_the_required_facts(monkeypatch, bscan) -> None:
    scan, res = bscan
    drawn = " ".join(
        drawn_strings(monkeypatch, lambda: report.render_report(scan, res, created=WHEN))
    )
    for fact in (
        "Research use only",
        report.HEATMAP_LEGEND.split("—")[0].strip(),
        "CNV-53018-1.jpeg",
        "octviewer-test 1.2.3",
        MODEL.short_sha,
        f"octviewer {octviewer.__version__}",
        "2024-05-06 07:08",
        "Spectralis",
        "OS (left eye)",
        "2016-09-01",
        "1 of 1",
        "81.0 %",
        "DRUSEN",
    ):
        assert fact in drawn, fact


def test_volume_report_defaults_to_most_suspicious_frame_and_draws_strip(
    data_dir: Path, monkeypatch
) -> None:
    base = _frame(data_dir, "NORMAL-2633503-1.jpeg")
    frames = np.stack([base] * 7)
    scan = _scan(frames, "volume-folder")
    probs = [[0.02, 0.02, 0.02, 0.94]] * 7
    probs[4] = [0.6, 0.2, 0.1, 0.1]  # the suspicious one
    frs = tuple(_fr(i, p) for i, p in enumerate(probs))
    frs = tuple(
        _fr(4, probs[4], cam=_hot_cam(base.shape), cam_class=0) if f.frame_index == 4 else f
        for f in frs
    )
    res = ScanResult(frs, MODEL, "cpu")
    drawn = " ".join(drawn_strings(monkeypatch, lambda: report.render_report(scan, res)))
    assert "Class probability per frame" in drawn
    assert "shown: frame 5" in drawn and "5 of 7" in drawn and "(index" not in drawn
    img = report.render_report(scan, res)
    assert json.loads(img.info["octviewer:result"])["frame_index"] == 4
    single_res = ScanResult(
        (frs[4].__class__(0, CLASSES, frs[4].probabilities, frs[4].logits),), MODEL, "cpu"
    )
    single = drawn_strings(monkeypatch, lambda: report.render_report(_scan(base), single_res))
    assert "Class probability per frame" not in single  # the strip is the volume's
    assert img.size == A4_PX  # the strip takes room on the page, never a longer page
    # asking for a frame that was not analysed is a clear error
    partial = ScanResult(frs[:2], MODEL, "cpu")
    with pytest.raises(ReportError, match="not analysed"):
        report.render_report(scan, partial, frame_index=5)


def test_unwritable_destination_is_a_report_error(tmp_path: Path, bscan) -> None:
    scan, res = bscan
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="could not be written"):
        report.save_report(scan, res, blocker / "sub" / "r.png")
    assert not list(tmp_path.glob("**/.octviewer-*"))


def test_non_png_suffix_gets_png(tmp_path: Path, bscan) -> None:
    scan, res = bscan
    out = report.save_report(scan, res, tmp_path / "report.jpg")
    assert out.name == "report.jpg.png"
    with Image.open(out) as im:
        assert im.format == "PNG"


def test_summary_csv_and_json(tmp_path: Path, bscan) -> None:
    scan, res = bscan
    rows = summary.rows_for_result(
        "in/CNV-53018-1.jpeg", res, scan.n_frames, {0: "CNV-53018-1.png"}
    )
    rows.append(summary.failed_row("in/broken.jpeg", "The file is empty.", MODEL.sha256))
    c = summary.write_csv(rows, tmp_path / "s.csv", CLASSES)
    with c.open(encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [r["status"] for r in table] == ["ok", "failed"]
    assert table[0]["class"] == "CNV" and float(table[0]["p_CNV"]) == pytest.approx(0.81, abs=1e-6)
    assert table[0]["model_sha256"] == MODEL.sha256 and table[0]["device"] == "cpu"
    assert table[0]["report"] == "CNV-53018-1.png" and table[0]["frame_index"] == "0"
    assert table[1]["error"] == "The file is empty." and table[1]["class"] == ""
    j = json.loads(
        summary.write_json(rows, tmp_path / "s.json", model=MODEL, class_names=CLASSES).read_text(
            "utf-8"
        )
    )
    assert j["model"]["sha256"] == MODEL.sha256 and j["disclaimer"] == octviewer.RESEARCH_ONLY
    assert j["results"][0]["probabilities"]["NORMAL"] == pytest.approx(0.03, abs=1e-6)
    assert j["results"][1]["status"] == "failed"


def test_redact_is_case_insensitive_and_keeps_other_text() -> None:
    ident = PatientIdentity(name="DOE^JANE", patient_id="12345")
    assert (
        report.redact("doe_jane_12345_OD.dcm", ident) == "[redacted]_[redacted]_[redacted]_OD.dcm"
    )
    assert report.redact("scan.dcm", PatientIdentity()) == "scan.dcm"


def test_public_save_report_keeps_its_keywords_and_takes_options(tmp_path: Path, bscan) -> None:
    scan, res = bscan
    kw = dict(frame_index=0, include_identity=False, colormap="viridis", opacity=0.6,
              contours=(0.5,), created=WHEN, show_unreliable=False, page="letter")  # fmt: skip
    by_keywords = octviewer.save_report(scan, res, tmp_path / "a.png", **kw)
    by_options = octviewer.save_report(scan, res, tmp_path / "b.png", report.PrintOptions(**kw))
    assert _chunks(by_keywords) == _chunks(by_options)
    assert Image.open(by_keywords).size == Image.open(by_options).size == (1700, 2200)
    with pytest.raises(TypeError):
        report.save_report(scan, res, tmp_path / "c.png", report.PrintOptions(), opacity=0.2)
    with pytest.raises(TypeError):
        report.save_report(scan, res, tmp_path / "d.png", colour="red")
