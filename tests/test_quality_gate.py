"""The image-quality gate end to end: the device's own index (Spectralis Q rewritten below 15
in a real .vol) and the pixel check through the real engine, the window (headline, Scan
panel), the report and the CLI summary with its imageability line."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ui_helpers import shown_window, tiny_engine

from octviewer.core.inference import AnalysisRequest
from octviewer.core.quality import QualityProblem
from octviewer.core.results import ResultFlag
from training.data.degrade import degrade

TIMEOUT = 60000
HEADER_SIZE, BSCAN_QUALITY_AT = 2048, 56  # HSF-OCT-103: file header, B-scan header's Quality


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return tiny_engine(tmp_path_factory)


def _low_q_vol(src: Path, tmp_path: Path, q: float) -> Path:
    data = bytearray(src.read_bytes())
    slo_x, slo_y = struct.unpack_from("<II", data, 48)
    at = HEADER_SIZE + slo_x * slo_y + BSCAN_QUALITY_AT
    data[at : at + 4] = struct.pack("<f", q)
    out = tmp_path / f"q{q:g}.vol"
    out.write_bytes(bytes(data))
    return out


def _blinked_png(data_dir: Path, tmp_path: Path) -> Path:
    clean = np.asarray(
        Image.open(data_dir / "io" / "kermany" / "NORMAL-351109-1.jpeg").convert("L")
    )
    bad = np.clip(degrade(clean, "blink", 0.35, seed=2), 0, 255).astype(np.uint8)
    out = tmp_path / "blinked.png"
    Image.fromarray(bad).save(out)
    return out


def test_a_spectralis_q_below_15_withholds_the_frame(
    engine, data_dir: Path, tmp_path: Path
) -> None:
    import octviewer

    src = data_dir / "io" / "vendor" / "Willis_B_716_0.vol"
    good = engine.analyze(octviewer.load(src), AnalysisRequest(cam=False)).frames[0]
    assert good.quality.device_index == pytest.approx(44.58, abs=0.01)
    assert QualityProblem.DEVICE_INDEX not in good.quality.problems
    low = engine.analyze(
        octviewer.load(_low_q_vol(src, tmp_path, 9.0)), AnalysisRequest(cam=False)
    ).frames[0]
    assert low.withholding_flag is ResultFlag.LOW_QUALITY
    assert QualityProblem.DEVICE_INDEX in low.quality.problems
    assert "Spectralis Q" in low.reason and "15" in low.reason
    assert low.quality.summary.startswith("Spectralis Q 9 (minimum 15)")


def test_the_report_states_the_quality_verdict(engine, data_dir: Path, tmp_path: Path) -> None:
    import octviewer
    from octviewer.core.report import render_report

    scan = octviewer.load(_blinked_png(data_dir, tmp_path))
    res = engine.analyze(scan, AnalysisRequest(cam=True))
    img = render_report(scan, res)
    record = json.loads(img.info["octviewer:result"])
    assert record["assessable"] is False and record["class"] is None
    assert record["quality"]["acceptable"] is False
    assert record["quality"]["problems"] == ["MISSING_ASCANS"]
    assert img.info["octviewer:flags"].startswith("LOW_QUALITY")
    assert "A-scans" in img.info["octviewer:reason"]


def test_the_cli_prints_the_imageability_and_fills_the_quality_columns(
    engine, data_dir: Path, tmp_path: Path, capsys
) -> None:
    from octviewer import cli

    clean = data_dir / "io" / "kermany" / "NORMAL-351109-1.jpeg"
    blinked = _blinked_png(data_dir, tmp_path)
    out = tmp_path / "out"
    code = cli.main(
        ["analyze", str(clean), str(blinked), "--model", str(engine.path), "--out", str(out),
         "--device", "cpu", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert (
        "Imageability: 1 of 2 analysed frame(s) assessable (50.0 %); 1 below image quality."
        in printed
    )
    with (out / "summary.csv").open(encoding="utf-8") as fh:
        rows = {Path(r["file"]).name: r for r in csv.DictReader(fh)}
    assert rows["blinked.png"]["quality"] == "low"
    assert rows["blinked.png"]["quality_problems"] == "MISSING_ASCANS"
    assert rows["blinked.png"]["p_NORMAL"] == ""  # not assessed: no numbers
    assert rows[clean.name]["quality"] == "ok" and rows[clean.name]["p_NORMAL"] != ""


@pytest.mark.gui
def test_the_window_shows_the_verdict_where_a_clinician_looks(
    qtbot, engine, data_dir: Path, tmp_path: Path
) -> None:
    window = shown_window(qtbot, tmp_path)
    try:
        window.controller.set_engine(engine)
        c = window.controller
        with qtbot.waitSignal(c.result_ready, timeout=TIMEOUT):
            (uid,) = window.open_paths([_blinked_png(data_dir, tmp_path)])
        window.show_entry(uid)
        rp = window.result_panel
        assert rp.prediction.text() == "Not assessed"
        assert rp.confidence.text().startswith("Image quality too low: A-scans are missing")
        assert "image quality: signal" in rp.scan_info.text()
        assert "too low: missing A-scans" in rp.scan_info.text()
        item = window.scan_list.item(window.scan_list.currentRow()).text()
        assert "not assessed: image quality too low" in item
    finally:
        window.close()
