"""octviewer-cli end to end, in-process: real B-scans, a tiny real bundle, real reports."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

import octviewer
from octviewer import __main__ as entry
from octviewer import cli

try:
    from helpers_models import make_tiny_bundle
except ImportError:  # run as tests.test_cli
    from tests.helpers_models import make_tiny_bundle

GOOD = ("CNV-53018-1.jpeg", "NORMAL-2633503-1.jpeg")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture
def inputs(tmp_path: Path, data_dir: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for name in GOOD:
        shutil.copy(data_dir / "report" / name, d / name)
    return d


def _run(*args: str | Path) -> int:
    return cli.main([str(a) for a in args])


def _analyze(bundle: Path, out: Path, *args: str | Path) -> int:
    return _run(
        "analyze", *args, "--model", bundle, "--out", out, "--device", "cpu", "--no-progress"
    )


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _chunks(path: Path) -> dict[str, str]:
    with Image.open(path) as im:
        im.load()
        return dict(im.text)


def test_batch_continues_past_bad_files(tmp_path: Path, inputs: Path, bundle: Path, capsys) -> None:
    from octviewer.core.model.bundle import file_sha256

    empty = inputs / "broken.jpeg"
    empty.write_bytes(b"")
    missing = inputs / "does-not-exist.png"
    out = tmp_path / "out"
    files = [inputs / GOOD[0], empty, missing, inputs / GOOD[1]]
    assert _analyze(bundle, out, *files) == cli.EXIT_SOME_FAILED

    sha = file_sha256(bundle)
    for name in GOOD:
        png = out / (Path(name).stem + ".png")
        assert png.is_file(), name
        chunks = _chunks(png)
        assert chunks["octviewer:model_sha256"] == sha
        rec = json.loads(chunks["octviewer:result"])
        assert rec["file"] == name and rec["cam_class"] == rec["class"]
        assert abs(sum(rec["probabilities"].values()) - 1.0) < 1e-4
    assert len(list(out.glob("*.png"))) == 2

    rows = _csv(out / "summary.csv")
    by_file = {Path(r["file"]).name: r for r in rows}
    assert set(by_file) == {GOOD[0], GOOD[1], "broken.jpeg", "does-not-exist.png"}
    assert by_file[GOOD[0]]["status"] == "ok" and by_file[GOOD[0]]["report"] == "CNV-53018-1.png"
    assert by_file[GOOD[0]]["model_sha256"] == sha and by_file[GOOD[0]]["device"] == "cpu"
    assert {f"p_{c}" for c in ("CNV", "DME", "DRUSEN", "NORMAL")} <= set(rows[0])
    for bad in ("broken.jpeg", "does-not-exist.png"):
        assert by_file[bad]["status"] == "failed" and by_file[bad]["error"]
    doc = json.loads((out / "summary.json").read_text("utf-8"))
    assert doc["model"]["sha256"] == sha and len(doc["results"]) == 4

    err = capsys.readouterr().err
    assert "2 input(s) could not be analysed" in err
    assert "broken.jpeg" in err and "does-not-exist.png" in err


def test_all_good_exit_zero_json_only_and_cam_class(
    tmp_path: Path, inputs: Path, bundle: Path
) -> None:
    out = tmp_path / "out"
    code = _analyze(
        bundle, out, *(inputs / n for n in GOOD), "--summary", "json", "--cam-class", "dme"
    )
    assert code == cli.EXIT_OK
    assert not (out / "summary.csv").exists()
    doc = json.loads((out / "summary.json").read_text("utf-8"))
    assert [r["status"] for r in doc["results"]] == ["ok", "ok"]
    for name in GOOD:
        rec = json.loads(_chunks(out / (Path(name).stem + ".png"))["octviewer:result"])
        assert rec["cam_class"] == "DME"


def test_folder_is_one_scan_recursive_is_each_file(
    tmp_path: Path, inputs: Path, bundle: Path
) -> None:
    # a folder of same-size B-scans is an image stack: one volume, one report
    stack = tmp_path / "stack"
    stack.mkdir()
    for k in range(3):
        shutil.copy(inputs / GOOD[0], stack / f"bscan_{k + 1}.jpeg")
    out = tmp_path / "vol"
    assert _analyze(bundle, out, stack) == cli.EXIT_OK
    reports = list(out.glob("*.png"))
    assert len(reports) == 1 and reports[0].name.startswith("stack_frame")
    rows = _csv(out / "summary.csv")
    assert [r["frame_index"] for r in rows] == ["0", "1", "2"]
    assert {r["n_frames"] for r in rows} == {"3"}
    assert sum(1 for r in rows if r["report"]) == 1

    per = tmp_path / "per"
    assert _analyze(bundle, per, stack, "--per-frame") == cli.EXIT_OK
    assert sorted(p.name for p in per.glob("*.png")) == [
        f"stack_frame{i:03d}.png"
        for i in (1, 2, 3)  # frame numbers, as a person counts
    ]

    each = tmp_path / "each"
    assert _analyze(bundle, each, inputs, "--recursive") == cli.EXIT_OK
    assert sorted(p.name for p in each.glob("*.png")) == sorted(Path(n).stem + ".png" for n in GOOD)


def test_frame_option(tmp_path: Path, inputs: Path, bundle: Path, capsys) -> None:
    out = tmp_path / "out"
    assert _analyze(bundle, out, inputs / GOOD[0], "--frame", "3") == cli.EXIT_SOME_FAILED
    assert "Frame 3 does not exist: this scan has 1 frame(s) (1 to 1)" in capsys.readouterr().err
    assert _analyze(bundle, out, inputs / GOOD[0], "--frame", "0") == cli.EXIT_USAGE
    assert "--frame must be 1 or more" in capsys.readouterr().err
    assert _analyze(bundle, out, inputs / GOOD[0], "--frame", "1") == cli.EXIT_OK


def test_unexpected_error_is_logged_and_batch_goes_on(
    tmp_path: Path, inputs: Path, bundle: Path, monkeypatch, caplog
) -> None:
    real_load = octviewer.load

    def flaky(path, **kw):
        if Path(path).name == GOOD[0]:
            raise RuntimeError("simulated bug")
        return real_load(path, **kw)

    monkeypatch.setattr(octviewer, "load", flaky)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="octviewer.cli"):
        assert _analyze(bundle, out, *(inputs / n for n in GOOD)) == cli.EXIT_SOME_FAILED
    assert any(r.exc_info and "simulated bug" in str(r.exc_info[1]) for r in caplog.records)
    assert (out / "NORMAL-2633503-1.png").is_file()
    rows = {Path(r["file"]).name: r for r in _csv(out / "summary.csv")}
    assert rows[GOOD[0]]["status"] == "failed" and "RuntimeError" in rows[GOOD[0]]["error"]


def test_usage_and_model_errors_exit_2(tmp_path: Path, inputs: Path, bundle: Path, capsys) -> None:
    img = inputs / GOOD[0]
    assert _analyze(bundle, tmp_path / "o", img, "--cam-class", "GLAUCOMA") == cli.EXIT_USAGE
    assert "Its classes are: CNV, DME, DRUSEN, NORMAL" in capsys.readouterr().err
    garbage = tmp_path / "model.safetensors"
    garbage.write_bytes(b"not a model at all" * 10)
    assert _analyze(garbage, tmp_path / "o", img) == cli.EXIT_USAGE
    assert "cannot use the model" in capsys.readouterr().err
    assert _analyze(tmp_path / "nope.safetensors", tmp_path / "o", img) == cli.EXIT_USAGE
    assert _run("analyze") == cli.EXIT_USAGE  # no PATH
    assert _run("frobnicate") == cli.EXIT_USAGE
    assert _analyze(bundle, tmp_path / "o", img, "--opacity", "3") == cli.EXIT_USAGE
    assert not (tmp_path / "o").exists()


def test_help_documents_options(capsys) -> None:
    assert _run("analyze", "--help") == 0
    text = capsys.readouterr().out
    for opt in (
        "--model",
        "--out",
        "--per-frame",
        "--frame",
        "--cam-class",
        "--device",
        "--int8",
        "--include-identity",
        "--summary",
        "--recursive",
        "ONE scan",
    ):
        assert opt in text, opt


def test_model_info(bundle: Path, capsys) -> None:
    from octviewer.core.model.bundle import file_sha256

    assert _run("model-info", "--model", bundle) == 0
    text = capsys.readouterr().out
    for fact in (
        "tiny-test-model",
        "0.0.1",
        "mirage_vit",
        "CNV, DME, DRUSEN, NORMAL",
        "test only",
        file_sha256(bundle),
        "Provenance:",
        "made_by",
    ):
        assert fact in text, fact
    assert _run("model-info", "--model", bundle, "--json") == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sha256"] == file_sha256(bundle) and d["class_names"] == [
        "CNV",
        "DME",
        "DRUSEN",
        "NORMAL",
    ]


def test_model_info_errors(tmp_path: Path, capsys) -> None:
    assert _run("model-info", "--model", tmp_path / "missing.safetensors") == cli.EXIT_USAGE
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    assert _run("model-info", "--model", bad) == cli.EXIT_USAGE


def test_python_dash_m_dispatches_subcommands(bundle: Path, capsys) -> None:
    assert entry.main(["model-info", "--model", str(bundle)]) == 0
    assert "tiny-test-model" in capsys.readouterr().out


def test_identity_stays_out_of_names_summary_and_logs(
    tmp_path: Path, inputs: Path, bundle: Path, monkeypatch, caplog
) -> None:
    import dataclasses

    from octviewer.core.scan import PatientIdentity

    named = inputs / "Zyxwood_Q_PX99817.jpeg"
    shutil.copy(inputs / GOOD[0], named)
    real_load = octviewer.load
    ident = PatientIdentity(name="ZYXWOOD^QUENTIN", patient_id="PX99817", birth_date="19411203")
    monkeypatch.setattr(
        octviewer, "load", lambda p, **kw: dataclasses.replace(real_load(p, **kw), identity=ident)
    )
    out = tmp_path / "out"
    # INFO and above (what -v shows); readers may name the file at DEBUG before they know who it is
    with caplog.at_level(logging.INFO):
        assert _analyze(bundle, out, named, "-v") == cli.EXIT_OK
    everything = " ".join(p.name for p in out.iterdir())
    everything += (out / "summary.csv").read_text("utf-8") + (out / "summary.json").read_text(
        "utf-8"
    )
    everything += " ".join(r.getMessage() for r in caplog.records)
    cache = Path(os.environ["OCTVIEWER_CACHE_DIR"])  # the result cache: hashes, no names
    everything += " ".join(f.read_text("utf-8") for f in cache.rglob("*.json"))
    assert list(cache.rglob("*.json"))
    for secret in ("Zyxwood", "PX99817", "19411203"):
        assert secret.lower() not in everything.lower(), secret
    assert _analyze(bundle, tmp_path / "id", named, "--include-identity") == cli.EXIT_OK
    png = tmp_path / "id" / "Zyxwood_Q_PX99817.png"
    assert "PX99817" in _chunks(png)["octviewer:patient"]


def test_folder_of_independent_scans_gives_one_report_each(
    tmp_path: Path, bundle: Path, capsys
) -> None:
    vendor = Path(__file__).parent / "data" / "io" / "vendor"
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("Willis_B_716_0.vol", "circular-valid.vol"):
        shutil.copy(vendor / name, folder / name)
    out = tmp_path / "out"
    assert _analyze(bundle, out, folder) == cli.EXIT_OK
    assert sorted(p.name for p in out.glob("*.png")) == ["Willis_B_716_0.png", "circular-valid.png"]
    # the circular .vol's header holds a birth date (1938-07-31): not in its report, nor summary
    chunks = _chunks(out / "circular-valid.png")
    assert not any("1938" in v for v in chunks.values())
    assert "1938" not in (out / "summary.csv").read_text("utf-8")


def test_unclear_folder_names_the_flag(tmp_path: Path, inputs: Path, bundle: Path, capsys) -> None:
    from PIL import Image

    folder = tmp_path / "unclear"
    folder.mkdir()
    for k in range(2):
        shutil.copy(inputs / GOOD[0], folder / f"oct_{k + 1}.jpeg")
    for name, side in (("slo.png", 300), ("fundus.png", 400)):
        Image.new("L", (side, side), 90).save(folder / name)
    assert _analyze(bundle, tmp_path / "out", folder) == cli.EXIT_SOME_FAILED
    err = capsys.readouterr().err
    assert "cannot tell" in err and "--recursive" in err


def test_a_second_run_reads_the_result_cache_and_no_cache_recomputes(
    tmp_path: Path, inputs: Path, bundle: Path, monkeypatch, capsys
) -> None:
    from octviewer.core.engine import Engine

    calls: list[int] = []
    real = Engine.analyze

    def counted(self, scan, *args, **kw):
        calls.append(scan.n_frames)
        return real(self, scan, *args, **kw)

    monkeypatch.setattr(Engine, "analyze", counted)
    scans = [inputs / n for n in GOOD]
    assert _analyze(bundle, tmp_path / "a", *scans) == cli.EXIT_OK
    assert len(calls) == 2 and "from the cache" not in capsys.readouterr().out
    assert _analyze(bundle, tmp_path / "b", *scans) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert len(calls) == 2 and out.count("(result from the cache, computed 20") == 2
    first, again = _csv(tmp_path / "a" / "summary.csv"), _csv(tmp_path / "b" / "summary.csv")
    assert [r["class"] for r in first] == [r["class"] for r in again]
    png = tmp_path / "b" / "NORMAL-2633503-1.png"
    assert _chunks(png)["octviewer:cached_at"].startswith("20")  # the report says so too
    assert _analyze(bundle, tmp_path / "c", *scans, "--no-cache") == cli.EXIT_OK
    assert len(calls) == 4 and "from the cache" not in capsys.readouterr().out


def test_one_frame_of_a_cached_volume_is_a_hit(tmp_path: Path, bundle: Path, capsys) -> None:
    from test_result_cache import write_volume

    vol = write_volume(tmp_path / "vol.tif", n=4)
    assert _analyze(bundle, tmp_path / "all", vol) == cli.EXIT_OK
    assert len(_csv(tmp_path / "all" / "summary.csv")) == 4
    capsys.readouterr()
    assert _analyze(bundle, tmp_path / "one", vol, "--frame", "3") == cli.EXIT_OK
    assert "(result from the cache, computed" in capsys.readouterr().out
    rows = _csv(tmp_path / "one" / "summary.csv")
    assert len(rows) == 1 and rows[0]["frame_index"] == "2"


def test_frame_numbers_read_one_based_and_indices_stay_zero_based(
    tmp_path: Path, bundle: Path, capsys
) -> None:
    """A person reads frame 3 of 4 (console, report, file name, --frame); the machine fields
    named *_index hold 2 (CSV, JSON summary, the report's result chunk)."""
    from test_result_cache import write_volume

    vol = write_volume(tmp_path / "vol.tif", n=4)
    out = tmp_path / "out"
    assert _analyze(bundle, out, vol, "--frame", "3") == cli.EXIT_OK
    said = capsys.readouterr().out
    assert "(frame 3 of 4)" in said and "frame 2 " not in said
    assert [p.name for p in out.glob("*.png")] == ["vol_frame003.png"]
    assert _csv(out / "summary.csv")[0]["frame_index"] == "2"
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert doc["results"][0]["frame_index"] == 2 and "frame" not in doc["results"][0]
    record = json.loads(_chunks(out / "vol_frame003.png")["octviewer:result"])
    assert record["frame_index"] == 2 and "frame" not in record
