"""The report page (octviewer.core.report.pdf): one fixed page, vector text with embedded
fonts, the research-only, identity and not-assessed rules; and the PNG report, the same page
rasterised.

Results are built by hand around real B-scans (tests/data), so no model is needed, except for
the command-line test, which runs the tiny real bundle.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

import octviewer
from octviewer import cli
from octviewer.core.report import pdf as rp
from octviewer.core.report import render_report
from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult
from octviewer.core.scan import Modality, PatientIdentity, Scan, ScanMetadata

try:
    from helpers_models import make_tiny_bundle
except ImportError:  # run from the repository root as a package
    from tests.helpers_models import make_tiny_bundle

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
MODEL = ModelIdentity("octviewer-test", "1.2.3", "f00dbabe" * 8, "mirage_vit", "test only")
IDENTITY = PatientIdentity(name="Zyxwood^Quentin", patient_id="QX-770012", birth_date="19411203")
WHEN = dt.datetime(2024, 5, 6, 7, 8, tzinfo=dt.timezone.utc)
A4_PT, LETTER_PT = (595.3, 841.9), (612.0, 792.0)


def _scan(frames: np.ndarray, name: str = "QX-770012_scan.png") -> Scan:
    meta = ScanMetadata(source_paths=(Path(name),), format="PNG", modality=Modality.OCT_BSCAN)
    return Scan(frames, meta, identity=IDENTITY)


def _result(shape: tuple[int, int], flags: frozenset = frozenset()) -> ScanResult:
    p = np.asarray([0.812, 0.1, 0.058, 0.03], np.float32)
    cam = np.zeros(shape, np.float32)
    cam[shape[0] // 3 : shape[0] // 2, shape[1] // 2 :] = 1.0
    fr = FrameResult(0, CLASSES, p, np.log(p), flags, cam, 0)
    return ScanResult((fr,), MODEL, "cpu", 0.1)


def _bscan(data_dir: Path) -> np.ndarray:
    return np.asarray(Image.open(data_dir / "report" / "CNV-53018-1.jpeg").convert("L"))


def _pages(data: bytes) -> list[tuple[tuple[float, float], str]]:
    doc = pdfium.PdfDocument(data)
    try:
        out = []
        for i in range(len(doc)):
            page = doc[i]
            text = page.get_textpage().get_text_range()
            out.append(((round(page.get_width(), 1), round(page.get_height(), 1)), text))
        return out
    finally:
        doc.close()


def test_a4_page_states_what_the_png_report_states(data_dir: Path) -> None:
    frame = _bscan(data_dir)
    data = rp.render_pdf(_scan(frame), _result(frame.shape), rp.PrintOptions(created=WHEN))
    [(size, text)] = _pages(data)
    assert size == A4_PT
    assert octviewer.RESEARCH_ONLY.upper() in text and octviewer.RESEARCH_ONLY in text
    assert "octviewer-test 1.2.3" in text and MODEL.short_sha in text
    assert "CNV 81.2 %" in text.replace("  ", " ")
    assert "Heatmap for class CNV" in text
    assert b"/FontFile2" in data, "the TrueType fonts are not embedded"
    # de-identified by default: neither the page nor the document's metadata names the patient
    assert "QX-770012" not in text and b"QX-770012" not in data and "Zyxwood" not in text
    assert "[redacted]_scan.png" in text


def test_letter_and_identity_on_request(data_dir: Path) -> None:
    frame = _bscan(data_dir)
    opts = rp.PrintOptions(page="Letter", include_identity=True, created=WHEN)
    [(size, text)] = _pages(rp.render_pdf(_scan(frame), _result(frame.shape), opts))
    assert size == LETTER_PT
    assert "QX-770012" in text and "Patient (included on request)" in text


def test_not_assessed_page_has_no_class_and_no_probabilities(data_dir: Path) -> None:
    frame = _bscan(data_dir)
    res = _result(frame.shape, frozenset({ResultFlag.NOT_OCT}))
    [(_, text)] = _pages(rp.render_pdf(_scan(frame), res, rp.PrintOptions(created=WHEN)))
    assert "NOT ASSESSED" in text and "No heatmap: this frame is not assessed." in text
    assert "81.2 %" not in text and "Heatmap for class" not in text
    [(_, shown)] = _pages(
        rp.render_pdf(_scan(frame), res, rp.PrintOptions(show_unreliable=True, created=WHEN))
    )
    assert "Model output (unreliable, not assessed)" in shown and "81.2 %" in shown
    assert "UNRELIABLE" in shown


@pytest.mark.parametrize("shape", [(120, 90), (2600, 3900), (1900, 300)])
def test_any_input_size_gives_the_same_page(data_dir: Path, shape: tuple[int, int]) -> None:
    """Large, tiny and odd-shaped inputs are scaled into their panels: one page, fixed size."""
    frame = np.asarray(Image.fromarray(_bscan(data_dir)).resize((shape[1], shape[0])))
    opts = rp.PrintOptions(created=WHEN)
    data = rp.render_pdf(_scan(frame), _result(frame.shape), opts)
    [(size, _)] = _pages(data)
    assert size == A4_PT
    png = render_report(_scan(frame), _result(frame.shape), opts, dpi=100)
    assert png.size == (827, 1170)  # 210 x 297 mm at 100 dpi
    assert (
        png.info["octviewer:page"] == "A4" and png.info["octviewer:model"] == "octviewer-test 1.2.3"
    )


def test_vendor_scan_page_shows_localizer_with_scan_line(data_dir: Path) -> None:
    pytest.importorskip("eyepy", reason="needs the vendor extra: pip install -e '.[vendor]'")
    scan = octviewer.load(data_dir / "io" / "vendor" / "circular-valid.vol")
    assert scan.localizer is not None and not scan.is_volume
    res = _result(scan.shape)
    data = rp.render_pdf(scan, res, rp.PrintOptions(created=WHEN))
    [(_, text)] = _pages(data)
    assert "Localizer" in text and "Green: where this B-scan was taken." in text
    page = np.asarray(rp.pdf_to_png(data, 72)[0]).astype(int)
    green = (page[..., 1] > 200) & (page[..., 0] < 120) & (page[..., 2] > 90) & (page[..., 2] < 180)
    assert green.sum() > 50, "the scan line is not drawn on the localizer"


def test_cli_writes_pdf_beside_png(tmp_path: Path, data_dir: Path, capsys) -> None:
    bundle = make_tiny_bundle(tmp_path / "tiny.safetensors")
    src = data_dir / "report" / "CNV-53018-1.jpeg"
    out = tmp_path / "out"
    code = cli.main(
        ["analyze", str(src), "--model", str(bundle), "--out", str(out), "--device", "cpu",
         "--no-progress", "--pdf", "--page-png", "--page", "letter"]
    )  # fmt: skip
    assert code == 0
    pdf = out / "CNV-53018-1.pdf"
    assert (out / "CNV-53018-1.png").is_file() and pdf.is_file()
    [(size, text)] = _pages(pdf.read_bytes())
    assert size == LETTER_PT and octviewer.RESEARCH_ONLY in text
    # the PNG report is the same Letter page (8.5 x 11 in at 200 dpi); --page-png, deprecated,
    # writes nothing more and says so
    with Image.open(out / "CNV-53018-1.png") as page:
        assert page.size == (1700, 2200)
        assert page.text["octviewer:page"] == "Letter"
    assert not (out / "CNV-53018-1_page.png").exists()
    assert "--page-png is deprecated" in capsys.readouterr().err


def test_page_names_are_read_as_the_command_line_spells_them() -> None:
    from octviewer.errors import ReportError

    assert (
        rp.PrintOptions(page="letter").page == "Letter" and rp.PrintOptions(page="a4").page == "A4"
    )
    with pytest.raises(ReportError, match="choose A4 or Letter"):
        rp.PrintOptions(page="A3")
