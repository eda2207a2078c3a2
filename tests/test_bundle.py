"""The model bundle: round trip, identity, meta-device loading and every refusal."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers_models import TINY_VIT, make_tiny_bundle, make_tiny_model, tiny_config
from safetensors.torch import save_file

from octviewer.core.model.architectures import create_model
from octviewer.core.model.bundle import (
    CONFIG_KEY,
    file_sha256,
    load_bundle,
    read_bundle_config,
    save_bundle,
)
from octviewer.errors import ModelFormatError, ModelMismatchError


def test_round_trip_identity_and_outputs(tmp_path: Path) -> None:
    cfg = tiny_config(temperature=1.7, confidence_threshold=0.6, metrics={"bacc": 0.9})
    model = make_tiny_model(cfg, seed=3)
    sha = save_bundle(tmp_path / "m.safetensors", model, cfg)
    assert sha == hashlib.sha256((tmp_path / "m.safetensors").read_bytes()).hexdigest()
    loaded = load_bundle(tmp_path / "m.safetensors")
    assert loaded.identity.sha256 == sha == file_sha256(tmp_path / "m.safetensors")
    assert loaded.config == cfg
    assert not loaded.model.training
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))
    assert read_bundle_config(tmp_path / "m.safetensors") == cfg


def test_float16_bundle_upcasts(tmp_path: Path) -> None:
    cfg = tiny_config()
    model = make_tiny_model(cfg)
    p = tmp_path / "h.safetensors"
    save_bundle(p, model, cfg, dtype="float16")
    loaded = load_bundle(p)
    assert loaded.config.weights_dtype == "float16"
    assert all(
        t.dtype == torch.float32
        for t in loaded.model.state_dict().values()
        if t.is_floating_point()
    )
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("arch", ["timm/resnet10t", "mirage_vit"])
def test_int8_bundle_dequantises_to_float32(tmp_path: Path, arch: str) -> None:
    """Weight-only int8: about a quarter of float32 on disk, float32 in memory, same outputs
    up to the rounding of the weights; a scale without its weight is refused."""
    from safetensors import safe_open

    kw = {} if arch.startswith("timm/") else {**TINY_VIT, "img_size": 64}
    cfg = tiny_config(architecture=arch, arch_kwargs=kw)
    torch.manual_seed(0)
    model = create_model(arch, 4, **kw).eval()
    f32, i8 = tmp_path / "f.safetensors", tmp_path / "q.safetensors"
    save_bundle(f32, model, cfg)
    save_bundle(i8, model, cfg, dtype="int8")

    def data_bytes(path: Path) -> int:  # the tensors, without the JSON header
        raw = path.read_bytes()
        return len(raw) - 8 - struct.unpack("<Q", raw[:8])[0]

    assert data_bytes(i8) < 0.3 * data_bytes(f32)
    with safe_open(str(i8), "pt") as fh:
        stored = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
    assert any(t.dtype == torch.int8 for t in stored.values())
    assert all(t.dtype != torch.float32 for k, t in stored.items() if "__int8_scale__" not in k)
    loaded = load_bundle(i8)
    assert loaded.config.weights_dtype == "int8"
    assert all(
        t.dtype == torch.float32
        for t in loaded.model.state_dict().values()
        if t.is_floating_point()
    )
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        ref, got = model(x), loaded.model(x)
    assert (got - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3

    key = next(k for k, t in stored.items() if t.dtype == torch.int8)
    del stored[key]
    save_file(stored, str(tmp_path / "bad.safetensors"), metadata={CONFIG_KEY: cfg.to_json()})
    with pytest.raises(ModelFormatError, match="could not be read"):
        load_bundle(tmp_path / "bad.safetensors")


def test_timm_cnn_bundle(tmp_path: Path) -> None:
    p = make_tiny_bundle(tmp_path / "r.safetensors", "timm/test_resnet")
    loaded = load_bundle(p)
    assert loaded.model(torch.rand(1, 1, 64, 64)).shape == (1, 4)


def test_meta_build_has_no_storage() -> None:
    m = create_model("mirage_base", 4, meta=True)
    assert all(p.is_meta for p in m.parameters())
    assert m.patch_embed.grid_size == (16, 16) and m.pos_embed.shape == (1, 256, 768)


def test_read_config_does_not_import_torch(tmp_path: Path) -> None:
    p = make_tiny_bundle(tmp_path / "m.safetensors")
    code = (
        "import sys; from octviewer.core.model.bundle import read_bundle_config; "
        f"c = read_bundle_config({str(p)!r}); assert c.class_names[0] == 'CNV'; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def _raw_safetensors(path: Path, header: dict, data: bytes = b"") -> Path:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


def test_not_a_safetensors_file(tmp_path: Path, data_dir: Path) -> None:
    jpeg = data_dir / "kermany" / "CNV-451136-6.jpeg"
    with pytest.raises(ModelFormatError, match="not an octviewer model bundle"):
        read_bundle_config(jpeg)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ModelFormatError):
        load_bundle(tmp_path / "empty.safetensors")
    with pytest.raises(ModelFormatError, match="does not exist"):
        load_bundle(tmp_path / "missing.safetensors")


def test_truncated_bundle(tmp_path: Path) -> None:
    p = make_tiny_bundle(tmp_path / "m.safetensors")
    data = p.read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelFormatError, match="truncated"):
        load_bundle(tmp_path / "t.safetensors")


def test_missing_and_invalid_config(tmp_path: Path) -> None:
    sd = {"w": torch.zeros(2, 2)}
    save_file(sd, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelFormatError, match="without octviewer configuration"):
        load_bundle(tmp_path / "plain.safetensors")
    save_file(sd, str(tmp_path / "bad.safetensors"), metadata={CONFIG_KEY: "{not json"})
    with pytest.raises(ModelFormatError, match="invalid"):
        read_bundle_config(tmp_path / "bad.safetensors")
    save_file(
        sd, str(tmp_path / "bad2.safetensors"), metadata={CONFIG_KEY: json.dumps({"name": "x"})}
    )
    with pytest.raises(ModelFormatError, match="invalid"):
        read_bundle_config(tmp_path / "bad2.safetensors")


def test_bare_mirage_weights_given_as_bundle(tmp_path: Path) -> None:
    sd = {
        "model.input_adapters.bscan.proj.weight": torch.zeros(8, 1, 32, 32),
        "model.global_tokens": torch.zeros(1, 1, 8),
        "model.encoder.0.norm1.weight": torch.ones(8),
    }
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelFormatError, match="octviewer-train"):
        load_bundle(tmp_path / "model.safetensors")


def test_unknown_architecture(tmp_path: Path) -> None:
    cfg = tiny_config()
    model = make_tiny_model(cfg)
    save_bundle(
        tmp_path / "u.safetensors",
        model,
        tiny_config(architecture="resnet_from_mars", arch_kwargs={}),
    )
    with pytest.raises(ModelFormatError, match="does not know"):
        load_bundle(tmp_path / "u.safetensors")


def test_wrong_class_count(tmp_path: Path) -> None:
    model = make_tiny_model(tiny_config())
    save_bundle(tmp_path / "c.safetensors", model, tiny_config(class_names=("A", "B", "C")))
    with pytest.raises(ModelMismatchError, match="declares 3 classes"):
        load_bundle(tmp_path / "c.safetensors")


def test_wrong_shapes(tmp_path: Path) -> None:
    model = make_tiny_model(tiny_config())
    other = tiny_config(
        arch_kwargs={"embed_dim": 48, "depth": 2, "num_heads": 2, "img_size": 64, "patch_size": 16}
    )
    save_bundle(tmp_path / "s.safetensors", model, other)
    with pytest.raises(ModelMismatchError, match="has shape"):
        load_bundle(tmp_path / "s.safetensors")
    deeper = tiny_config(
        arch_kwargs={"embed_dim": 32, "depth": 3, "num_heads": 2, "img_size": 64, "patch_size": 16}
    )
    save_bundle(tmp_path / "d.safetensors", model, deeper)
    with pytest.raises(ModelMismatchError, match="missing"):
        load_bundle(tmp_path / "d.safetensors")


def test_weights_arrive_piece_by_piece(tmp_path: Path) -> None:
    """load_bundle fills one piece at a time (so a caller can shrink each before the next)."""
    cfg = tiny_config()
    model = make_tiny_model(cfg, seed=5)
    save_bundle(tmp_path / "m.safetensors", model, cfg)
    seen: list[str] = []

    def on_unit(prefix: str, unit: torch.nn.Module, full: torch.nn.Module) -> None:
        seen.append(prefix)
        if prefix:
            assert not any(t.is_meta for t in unit.state_dict().values())
        if prefix == "blocks.0":  # the later pieces are not read yet
            assert full.get_submodule("head").weight.is_meta
            assert full.blocks[1].attn.qkv.weight.is_meta

    loaded = load_bundle(tmp_path / "m.safetensors", on_unit=on_unit)
    assert seen[0] == "" and "blocks.0" in seen and "blocks.1" in seen and seen[-1] == "head"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k


def test_non_persistent_buffers_come_from_a_normal_build(tmp_path: Path) -> None:
    """A timm Swin keeps its relative-position index out of the state dict: it cannot come from
    the file, and a meta-built network would be left with an empty (meta) buffer."""
    kw = {
        "img_size": 32,
        "patch_size": 4,
        "embed_dim": 8,
        "depths": (1, 1),
        "num_heads": (1, 2),
        "window_size": 4,
    }
    cfg = tiny_config(architecture="timm/swin_tiny_patch4_window7_224", arch_kwargs=kw, img_size=32)
    torch.manual_seed(0)
    model = create_model(cfg.architecture, cfg.num_classes, **kw)
    assert any(n not in model.state_dict() for n, _ in model.named_buffers())
    save_bundle(tmp_path / "s.safetensors", model, cfg)
    loaded = load_bundle(tmp_path / "s.safetensors")
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_bundle_gets_the_users_normal_file_mode(tmp_path: Path) -> None:
    """safetensors writes 0600; a bundle is shared like any other file (0644 under umask 022)."""
    import os

    old = os.umask(0o022)
    try:
        p = make_tiny_bundle(tmp_path / "shared.safetensors")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("quantize", [False, True])
def test_engine_reads_the_bundle_header_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quantize: bool
) -> None:
    from octviewer.core.engine import Engine
    from octviewer.core.model import header

    path = make_tiny_bundle(tmp_path / "m.safetensors")
    real, calls = header.read_header, []
    monkeypatch.setattr(header, "read_header", lambda p: calls.append(p) or real(p))
    Engine(path, device="cpu", quantize=quantize)
    assert len(calls) == 1
