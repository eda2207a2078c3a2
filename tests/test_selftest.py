"""``octviewer --self-test`` (octviewer.selftest) run in-process on a tiny real model bundle and
real Kermany B-scans; each failure mode it must catch is provoked once."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers_models import make_tiny_bundle
from PIL import Image

from octviewer import selftest

KERMANY = Path(__file__).resolve().parent / "data" / "kermany"
SUMMARY = re.compile(
    r"^self-test: OK (\d+) scans, (\d+) reports, device=cpu, model=tiny-test-model [0-9a-f]{12}, "
    r"[0-9.]+ s$"
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    d = tmp_path / "samples"
    d.mkdir()
    for name in ("CNV-451136-6.jpeg", "NORMAL-2633503-1.jpeg"):
        shutil.copy(KERMANY / name, d / name)
    (d / "README.md").write_text("not a scan")
    return d


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = selftest.main(["--self-test", "--device", "cpu", *args])
    return rc, capsys.readouterr().out.strip().splitlines()[-1]


def test_passes_on_real_scans_and_reports_everything(
    bundle: Path, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (samples / "empty.png").write_bytes(b"")
    (samples / "expected.json").write_text(json.dumps({"empty.png": {"error": "EmptyFileError"}}))
    out, report = tmp_path / "reports", tmp_path / "st.json"
    rc, line = _run(
        capsys, "--model", str(bundle), "--samples", str(samples), "--keep", str(out),
        "--json", str(report),
    )  # fmt: skip
    assert rc == 0, line
    m = SUMMARY.match(line)
    assert m, line
    # 2 Kermany B-scans + the generated JPEG-lossless, JPEG 2000 and RLE DICOM files
    assert (int(m[1]), int(m[2])) == (5, 5)
    data = json.loads(report.read_text())
    assert data["ok"] and data["summary"] == line
    # the keyring backend is reported; none usable (as on this test machine) is no failure
    from octviewer.core.archive.credentials import keyring_backend

    assert data["keyring"] == keyring_backend()[1]
    assert data["torch"]["version"] and data["torch"]["cuda_available"] in (True, False)
    names = {c["name"]: c for c in data["cases"]}
    assert "README.md" not in names
    assert names["empty.png"]["notes"][0].startswith("failed as expected: EmptyFileError")
    assert {
        "generated_jpeg_lossless_photo.dcm",
        "generated_jpeg2000_oct.dcm",
        "generated_rle_oct.dcm",
    } <= set(names)
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 5
    with Image.open(pngs[0]) as im:
        assert set(selftest.REPORT_CHUNKS) <= set(im.text)


def test_no_model_fails_clearly(
    tmp_path: Path,
    samples: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import octviewer.resources

    monkeypatch.delenv(selftest.MODEL_ENV, raising=False)
    monkeypatch.setattr(
        octviewer.resources, "default_model_path", lambda: tmp_path / "none.safetensors"
    )
    rc, line = _run(capsys, "--samples", str(samples), "--json", str(tmp_path / "r.json"))
    assert rc == 1
    assert line.startswith("self-test: FAILED 0 scans")
    failures = json.loads((tmp_path / "r.json").read_text())["failures"]
    assert len(failures) == 1 and failures[0].startswith("no bundled model")


def test_model_from_environment_variable(
    bundle: Path, samples: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(selftest.MODEL_ENV, str(bundle))
    rc, line = _run(capsys, "--samples", str(samples))
    assert rc == 0 and SUMMARY.match(line), line


def test_a_sample_that_does_not_open_fails(
    bundle: Path, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (samples / "broken.jpeg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    rc, line = _run(
        capsys,
        "--model",
        str(bundle),
        "--samples",
        str(samples),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert rc == 1 and "FAILED" in line
    case = {c["name"]: c for c in json.loads((tmp_path / "r.json").read_text())["cases"]}[
        "broken.jpeg"
    ]
    assert case["failures"] and "could not be opened" in case["failures"][0]


def test_a_missing_dicom_decoder_fails(
    bundle: Path, samples: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pydicom.pixels

    real = pydicom.pixels.pixel_array

    def no_pylibjpeg(src, **kw):  # what a frozen app without the decoders' metadata does
        if kw.get("decoding_plugin") == "pylibjpeg":
            raise RuntimeError("Unable to decode: no pixel data decoders are available")
        return real(src, **kw)

    monkeypatch.setattr(pydicom.pixels, "pixel_array", no_pylibjpeg)
    report = samples.parent / "r.json"
    rc, line = _run(
        capsys, "--model", str(bundle), "--samples", str(samples), "--json", str(report)
    )
    assert rc == 1 and "FAILED" in line
    failures = json.loads(report.read_text())["failures"]
    assert [f.split(":")[0] for f in failures[:3]] == [
        "jpeg-lossless DICOM",
        "jpeg2000 DICOM",
        "rle DICOM",
    ]


def test_a_missing_not_oct_flag_fails(
    bundle: Path, samples: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    from octviewer.core.engine import Engine

    real = Engine.analyze

    def forgetful(self, scan, *args, **kw):  # an engine that never flags non-OCT input
        r = real(self, scan, *args, **kw)
        frames = tuple(dataclasses.replace(f, flags=frozenset()) for f in r.frames)
        return dataclasses.replace(r, frames=frames)

    monkeypatch.setattr(Engine, "analyze", forgetful)
    report = samples.parent / "r.json"
    rc, line = _run(
        capsys, "--model", str(bundle), "--samples", str(samples), "--json", str(report)
    )
    assert rc == 1 and "FAILED" in line
    data = json.loads(report.read_text())
    photo = {c["name"]: c for c in data["cases"]}["generated_jpeg_lossless_photo.dcm"]
    assert "NOT_OCT flag is False" in photo["failures"][0]
    assert data["failures"] == [
        "no non-OCT scan was analysed and flagged NOT_OCT: that check did not run"
    ]


def test_jpeg_lossless_encoder_round_trips_through_libjpeg() -> None:
    libjpeg = pytest.importorskip("libjpeg")
    img = np.asarray(Image.open(KERMANY / "DME-7939555-2.jpeg").convert("L"))
    crop = np.ascontiguousarray(img[100:300, 50:420])
    assert np.array_equal(libjpeg.decode(selftest.encode_jpeg_lossless(crop)), crop)
    flat = np.full((16, 16), 255, np.uint8)  # long runs of 0xFF bytes exercise byte stuffing
    assert np.array_equal(libjpeg.decode(selftest.encode_jpeg_lossless(flat)), flat)


def test_help_and_usage_errors_return_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert selftest.main(["--help"]) == 0
    assert selftest.main(["--no-such-option"]) == 2


def test_every_reader_is_checked_and_a_lost_one_fails(
    bundle: Path, samples: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from octviewer import selftest_readers

    report = tmp_path / "st.json"
    rc, _ = _run(capsys, "--model", str(bundle), "--samples", str(samples), "--json", str(report))
    assert rc == 0
    labels = {r["label"] for r in json.loads(report.read_text())["readers"]}
    assert {c.label for c in selftest_readers.READER_CHECKS} <= labels
    assert {"DICOMDIR", "DICOM explicit VR little endian", "DICOM JPEG 2000 lossless"} <= labels

    # a bundle that lost eyepy (as the frozen app did without skimage's stubs) must fail
    import sys

    for mod in ("eyepy", "eyepy.io", "eyepy.io.he", "eyepy.io.he.vol_reader", "eyepy.core.utils"):
        monkeypatch.setitem(sys.modules, mod, None)
    rc, line = _run(
        capsys, "--model", str(bundle), "--samples", str(samples), "--json", str(report)
    )
    assert rc == 1 and "FAILED" in line
    failures = json.loads(report.read_text())["failures"]
    assert any("Heidelberg .vol circle scan" in f and "eyepy" in f for f in failures)


def test_missing_reader_sample_fails(
    bundle: Path, samples: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from octviewer import selftest_readers

    monkeypatch.setattr(selftest_readers, "selftest_dir", lambda: tmp_path / "nothing")
    rc, line = _run(capsys, "--model", str(bundle), "--samples", str(samples))
    assert rc == 1 and "FAILED" in line
