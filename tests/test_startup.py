"""Issue 27: the arithmetic chosen per bundle and machine, the validation record in a bundle,
the int8 network cache (rebuilt for another torch or bundle, refused when damaged) and the
launch log lines the launch benchmark reads."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_models import tiny_config
from PIL import Image
from test_hostile_bundles import rewrite
from test_int8_cnn import IMAGES, MEMBERS, SIZE, bundles  # noqa: F401 (a fixture)

import octviewer.core.device as device_mod
import octviewer.core.model.int8_static as int8_static
from octviewer.core import arithmetic
from octviewer.core.engine import Engine
from octviewer.core.model import int8_cache
from octviewer.core.model.bundle import load_bundle, read_bundle_config, save_bundle
from octviewer.core.scan import Modality, Scan, ScanMetadata
from octviewer.errors import ModelFormatError

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
PASS_INT8 = {"passed": True, "kind": "static", "activation_bits": 8, "images": 648}


def _config(**kw):
    """The configuration of test_int8_cnn's tiny two-member ensemble."""
    arch = {"members": MEMBERS, "hflip_tta": True}
    return tiny_config("ensemble", img_size=SIZE, arch_kwargs=arch, cam_target_layer="stack", **kw)


def _frames() -> np.ndarray:
    out = []
    for p in IMAGES[:2]:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("L").resize((512, 496))))
    return np.stack(out)


def _with_record(validated: dict, calibrated: bool = True):
    cfg = _config(validated=validated)
    if calibrated:
        ranges = {f"members.{k}": {"activation_post_process_0": [0.0, 1.0]} for k in range(2)}
        cfg = dataclasses.replace(
            cfg, int8={"method": "static-fx", "backend": "x86", "ranges": ranges}
        )
    return cfg


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """Set the mocked CPU: ``machine(bf16=..., vnni=...)``."""

    def set_(bf16: bool, vnni: bool) -> None:
        flags = frozenset({"avx2", *(["avx512_bf16"] if bf16 else [])})
        monkeypatch.setattr(device_mod, "cpu_flags", lambda: flags)
        monkeypatch.setattr(int8_static, "reduce_range_here", lambda: not vnni)

    return set_


@pytest.mark.parametrize(
    ("validated", "bf16", "vnni", "want"),
    [
        ({"int8": PASS_INT8}, True, True, "int8"),
        ({"int8": PASS_INT8}, False, True, "int8"),
        ({"int8": PASS_INT8}, True, False, "bfloat16"),  # validated 8-bit, this CPU is 7-bit
        ({"int8": PASS_INT8}, False, False, "float32"),
        ({"int8": {**PASS_INT8, "passed": False, "reason": "2 flips"}}, True, True, "bfloat16"),
        ({}, True, True, "bfloat16"),  # no record: as before records existed
        ({}, False, True, "float32"),
        ({"bfloat16": {"passed": False}}, True, True, "float32"),
        ({"int8": {**PASS_INT8, "kind": "dynamic"}}, True, True, "bfloat16"),
    ],
)
def test_the_fastest_validated_arithmetic_the_cpu_supports(
    machine, validated, bf16, vnni, want
) -> None:
    machine(bf16=bf16, vnni=vnni)
    got = arithmetic.choose(_with_record(validated), CPU, "auto", None)
    assert got.name == want and not got.explicit
    if want != "int8" and validated.get("int8"):
        assert "not int8" in got.reason  # the fall-back says why


def test_explicit_choices_win(machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine(bf16=True, vnni=True)
    cfg = _with_record({"int8": PASS_INT8})
    assert arithmetic.choose(cfg, CPU, "auto", False).name == "bfloat16"  # --no-int8
    assert arithmetic.choose(cfg, CPU, "fp32", None).name == "float32"  # --precision fp32
    forced = arithmetic.choose(_with_record({}), CPU, "auto", True)  # --int8, not validated
    assert forced.name == "int8" and forced.explicit
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert arithmetic.choose(cfg, torch.device("cuda", 0), "auto", None).name == "bfloat16"


def test_the_engine_runs_the_chosen_arithmetic(bundles, machine, tmp_path: Path) -> None:  # noqa: F811
    machine(bf16=False, vnni=True)
    cfg = read_bundle_config(bundles["calibrated"])
    model = load_bundle(bundles["calibrated"]).model
    path = tmp_path / "validated.safetensors"
    save_bundle(path, model, dataclasses.replace(cfg, validated={"int8": PASS_INT8}))
    e = Engine(path, device="cpu", int8_cache="off")
    assert e.quantized and e.int8_kind == "static" and e.arithmetic.name == "int8"
    assert not Engine(path, device="cpu", quantize=False).quantized


def test_the_validation_record_round_trips_and_is_bounded(bundles, tmp_path: Path) -> None:  # noqa: F811
    record = {
        "int8": {**PASS_INT8, "reason": "class 1.0, abstention 1.0", "dev_abstain_flips": 0},
        "bfloat16": {"passed": True, "max_ood_score_change": 0.02},
        "float32": {"passed": True},
    }
    cfg = read_bundle_config(bundles["calibrated"])
    model = load_bundle(bundles["calibrated"]).model
    path = tmp_path / "v.safetensors"
    save_bundle(path, model, dataclasses.replace(cfg, validated=record))
    assert read_bundle_config(path).validated == record
    hostile = [
        {"int8": {"passed": "yes"}},
        {"int4": {"passed": True}},
        {"int8": {**PASS_INT8, "activation_bits": 4}},
        {"int8": {**PASS_INT8, "kind": "exec"}},
        {"int8": {**PASS_INT8, "images": float("inf")}},
        {"int8": {"passed": True, **{f"k{i}": i for i in range(100)}}},
        {"int8": {"passed": True, "note": "x" * 5000}},
        "passed",
    ]
    for bad in hostile:
        dst = rewrite(
            path, tmp_path / "bad.safetensors", config=lambda c, b=bad: c.update(validated=b)
        )
        with pytest.raises(ModelFormatError):
            read_bundle_config(dst)


def _scan() -> Scan:
    frames = _frames()[:2]
    return Scan(frames, ScanMetadata((Path("x.png"),), "PNG", Modality.OCT_VOLUME))


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt"))


def _from_cache(e: Engine) -> bool:
    return all(type(m).__name__ == "CachedMember" for m in e.model.members)


def test_the_cached_int8_network_computes_what_the_built_one_does(bundles) -> None:  # noqa: F811
    built = Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    assert not _from_cache(built) and len(_entries(int8_cache.cache_folder())) >= 1
    cached = Engine(bundles["calibrated"], device="cpu", quantize=True)
    assert _from_cache(cached) and cached.int8_kind == "static"
    a, b = built.analyze(_scan()), cached.analyze(_scan())
    for fa, fb in zip(a.frames, b.frames, strict=True):
        np.testing.assert_array_equal(fa.logits, fb.logits)
        np.testing.assert_array_equal(fa.cam, fb.cam)
        assert fa.ood_score == fb.ood_score and fa.flags == fb.flags


def test_the_cache_is_rebuilt_for_another_torch_or_bundle(
    bundles,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OCTVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    folder = int8_cache.cache_folder()
    Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    assert len(_entries(folder)) == 1
    monkeypatch.setattr(int8_cache, "torch_version", lambda: "9.99.0")  # another torch
    e = Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    assert not _from_cache(e) and len(_entries(folder)) == 2
    assert _from_cache(Engine(bundles["calibrated"], device="cpu", quantize=True))
    monkeypatch.undo()
    monkeypatch.setenv("OCTVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    other = tmp_path / "other.safetensors"  # another bundle (new SHA-256): not its network
    cfg = dataclasses.replace(read_bundle_config(bundles["calibrated"]), version="9")
    save_bundle(other, load_bundle(bundles["calibrated"]).model, cfg)
    assert not _from_cache(Engine(other, device="cpu", quantize=True, int8_cache="sync"))
    assert len(_entries(folder)) == 3


@pytest.mark.parametrize("damage", ["network", "manifest", "truncated"])
def test_a_damaged_cache_entry_is_refused_and_rebuilt(
    bundles,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    monkeypatch.setenv("OCTVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    (pt,) = _entries(int8_cache.cache_folder())
    manifest = pt.with_suffix(".json")
    if damage == "network":  # same size, other bytes
        data = bytearray(pt.read_bytes())
        data[len(data) // 2] ^= 0xFF
        pt.write_bytes(bytes(data))
    elif damage == "manifest":
        manifest.write_text(manifest.read_text().replace('"members": 2', '"members": 7'))
    else:
        pt.write_bytes(pt.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="octviewer.core.model.int8_cache"):
        e = Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    assert not _from_cache(e) and "refused" in caplog.text
    assert _from_cache(Engine(bundles["calibrated"], device="cpu", quantize=True))  # rebuilt


def test_an_entry_missing_a_member_is_refused_even_with_a_matching_sha256(
    bundles,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json
    import zipfile

    from octviewer.core.model.digest import file_sha256

    monkeypatch.setenv("OCTVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    (pt,) = _entries(int8_cache.cache_folder())
    with zipfile.ZipFile(pt) as zf:
        first = zf.read("member-0.pt")
    with zipfile.ZipFile(pt, "w") as zf:  # member 1 gone, the manifest made to agree
        zf.writestr("member-0.pt", first)
    manifest = pt.with_suffix(".json")
    facts = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**facts, "sha256": file_sha256(pt)}))
    with caplog.at_level(logging.WARNING, logger="octviewer.core.model.int8_cache"):
        e = Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    assert not _from_cache(e) and "member-1.pt" in caplog.text


def test_entries_of_an_older_cache_format_are_deleted_when_one_is_written(
    bundles,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    monkeypatch.setenv("OCTVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    folder = int8_cache.cache_folder()
    folder.mkdir(parents=True)
    old = {"format": int8_cache.FORMAT_NAME, "format_version": int8_cache.CACHE_FORMAT - 1}
    (folder / "old.json").write_text(json.dumps(old))
    (folder / "old.pt").write_bytes(b"a network of the old format")
    (folder / "foreign.json").write_text(json.dumps({"format": "something else"}))
    Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    assert not (folder / "old.pt").exists() and not (folder / "old.json").exists()
    assert (folder / "foreign.json").exists() and len(_entries(folder)) == 1


def test_a_cache_hit_imports_neither_timm_nor_torchvision(bundles, tmp_path: Path) -> None:  # noqa: F811
    import os
    import subprocess

    env = dict(os.environ, OCTVIEWER_CACHE_DIR=str(tmp_path / "c"))
    code = (
        "import sys; from octviewer.core.engine import Engine; "
        f"e = Engine({str(bundles['calibrated'])!r}, device='cpu', quantize=True, int8_cache='sync'); "
        "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))"
    )
    run = [sys.executable, "-c", code]
    first = subprocess.run(run, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    again = subprocess.run(run, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert first.stdout.strip().endswith("['timm', 'torchvision']")  # built: timm needed
    assert again.stdout.strip().endswith("[]")


def test_the_launch_log_lines_exist(tmp_path: Path) -> None:
    """The real app, launched with the samples: the lines bench_launch.py reads."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_launch import Launch, one_launch

    r = one_launch(tmp_path, Launch(("--samples",), cold=True, timeout=120))
    lines = "\n".join(r["lines"])
    assert "window shown" in lines and "first result shown" in lines and "engine ready" in lines
    assert r["window"] <= r["result"]


def test_an_entry_shipped_with_the_app_is_used_and_never_deleted(
    bundles,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """scripts/build_int8_cache.py writes entries into resources/models/int8 for the packaged
    app: a new user's empty cache falls back to them; a damaged one is refused, not deleted."""
    from octviewer.core.model.bundle import read_bundle_head
    from octviewer.core.model.int8_static import load_int8
    from octviewer.core.model.network import store_cached

    shipped = tmp_path / "shipped"
    head = read_bundle_head(bundles["calibrated"])
    loaded, hook = load_int8(bundles["calibrated"], "cpu", head.config, lambda m: "stack", head)
    assert store_cached(head, loaded, hook, shipped) is not None
    monkeypatch.setenv("OCTVIEWER_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(int8_cache, "shipped_folder", lambda: shipped)
    assert _from_cache(Engine(bundles["calibrated"], device="cpu", quantize=True))
    assert not _entries(int8_cache.cache_folder())  # nothing copied to the user's folder
    (pt,) = _entries(shipped)
    pt.write_bytes(pt.read_bytes()[:-10])
    assert not _from_cache(
        Engine(bundles["calibrated"], device="cpu", quantize=True, int8_cache="sync")
    )
    assert pt.is_file() and _entries(int8_cache.cache_folder())  # kept; built into the user's
