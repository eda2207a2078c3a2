"""Official MIRAGE weight files: both layouts, key mapping parity, refusals, unsafe pickles.

The state dicts use the real MIRAGE key names and shapes at a narrow width (D=64, depth 2,
patch 32, 4x4 position grid = 128x128 input); a hand-written MIRAGE forward (global token
appended *after* the patch tokens, LayerNorm, mean of the patch tokens) checks that the timm
model reproduces the authors' encoder and head.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from octviewer.core.model.architectures import create_model
from octviewer.core.model.mirage import (
    _detect,
    create_from_official,
    load_into,
    load_official_weights,
    map_mirage_keys,
)
from octviewer.errors import ModelFormatError, ModelMismatchError, UnsafeModelFileError

D, DEPTH, HEADS, P, G = 64, 2, 1, 32, 4  # 64 wide -> 1 head (D // 64), as the loader infers


def mirage_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    sd = {
        "input_adapters.bscan.proj.weight": r(D, 1, P, P),
        "input_adapters.bscan.proj.bias": r(D),
        "input_adapters.bscan.pos_emb": r(1, D, G, G, scale=0.5),
        "input_adapters.slo.proj.weight": r(D, 1, P, P),
        "input_adapters.slo.pos_emb": r(1, D, G, G),
        "input_adapters.bscanlayermap.proj.weight": r(D, 13, P, P),
        "output_adapters.bscan.out_proj.weight": r(P * P, D),
        "global_tokens": r(1, 1, D, scale=0.5),
    }
    for i in range(DEPTH):
        e = f"encoder.{i}."
        sd |= {
            e + "norm1.weight": 1 + r(D), e + "norm1.bias": r(D),
            e + "attn.qkv.weight": r(3 * D, D), e + "attn.qkv.bias": r(3 * D),
            e + "attn.proj.weight": r(D, D), e + "attn.proj.bias": r(D),
            e + "norm2.weight": 1 + r(D), e + "norm2.bias": r(D),
            e + "mlp.fc1.weight": r(4 * D, D), e + "mlp.fc1.bias": r(4 * D),
            e + "mlp.fc2.weight": r(D, 4 * D), e + "mlp.fc2.bias": r(D),
        }  # fmt: skip
    return sd


def reference_forward(sd: dict, norm_w, norm_b, head_w, head_b, x: torch.Tensor) -> torch.Tensor:
    """The authors' encoder + classification head, written from MIRAGE.md."""
    t = F.conv2d(
        x, sd["input_adapters.bscan.proj.weight"], sd["input_adapters.bscan.proj.bias"], stride=P
    )
    t = t.flatten(2).transpose(1, 2) + sd["input_adapters.bscan.pos_emb"].flatten(2).transpose(1, 2)
    t = torch.cat([t, sd["global_tokens"].expand(x.shape[0], -1, -1)], dim=1)  # global token LAST
    for i in range(DEPTH):
        e = f"encoder.{i}."
        h = F.layer_norm(t, (D,), sd[e + "norm1.weight"], sd[e + "norm1.bias"], eps=1e-6)
        q, k, v = F.linear(h, sd[e + "attn.qkv.weight"], sd[e + "attn.qkv.bias"]).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D // HEADS), dim=-1) @ v
        t = t + F.linear(a, sd[e + "attn.proj.weight"], sd[e + "attn.proj.bias"])
        h = F.layer_norm(t, (D,), sd[e + "norm2.weight"], sd[e + "norm2.bias"], eps=1e-6)
        h = F.linear(
            F.gelu(F.linear(h, sd[e + "mlp.fc1.weight"], sd[e + "mlp.fc1.bias"])),
            sd[e + "mlp.fc2.weight"],
            sd[e + "mlp.fc2.bias"],
        )
        t = t + h
    t = F.layer_norm(t, (D,), norm_w, norm_b, eps=1e-6)
    return F.linear(t[:, : G * G].mean(1), head_w, head_b)  # mean of the PATCH tokens


def write_hub(path: Path, sd: dict) -> Path:
    save_file({"model." + k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def write_release(path: Path, sd: dict) -> Path:
    torch.save({"model": sd, "args": argparse.Namespace(model="mirage_base", input_size=512)}, path)
    return path


@pytest.mark.parametrize("layout", ["hub", "release"])
def test_both_layouts_map_and_match_the_authors_forward(tmp_path: Path, layout: str) -> None:
    sd = mirage_state_dict()
    path = (
        write_hub(tmp_path / "model.safetensors", sd)
        if layout == "hub"
        else write_release(tmp_path / "MIRAGE.pth", sd)
    )
    w = load_official_weights(path)
    assert w.variant == "mirage_vit" and w.source_format == (
        "safetensors" if layout == "hub" else "pth"
    )
    assert w.arch_kwargs == {
        "embed_dim": D,
        "depth": DEPTH,
        "num_heads": HEADS,
        "img_size": G * P,
        "patch_size": P,
        "mlp_ratio": 4.0,
    }
    assert len(w.dropped) == 4 and all(
        k.startswith(("input_adapters.slo", "input_adapters.bscanlayermap", "output_adapters"))
        for k in w.dropped
    )
    torch.manual_seed(0)
    model, _w2 = create_from_official(path, num_classes=4)
    torch.testing.assert_close(model.blocks[1].mlp.fc2.weight, sd["encoder.1.mlp.fc2.weight"])
    torch.testing.assert_close(model.cls_token, sd["global_tokens"])
    x = torch.rand(2, 1, G * P, G * P)
    with torch.no_grad():
        got = model(x)
        ref = reference_forward(
            sd, model.norm.weight, model.norm.bias, model.head.weight, model.head.bias, x
        )
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    assert model.norm.eps == 1e-6 and model.blocks[0].norm1.eps == 1e-6


def test_base_and_large_detected_from_shapes() -> None:
    for arch, dim, depth in (("mirage_base", 768, 12), ("mirage_large", 1024, 24)):
        sd = {
            k: torch.empty(v.shape, device="meta")
            for k, v in create_model(arch, 4, meta=True).state_dict().items()
        }
        mirage = {"input_adapters.bscan.proj.weight": sd["patch_embed.proj.weight"],
                  "input_adapters.bscan.proj.bias": sd["patch_embed.proj.bias"],
                  "input_adapters.bscan.pos_emb": torch.empty(1, dim, 16, 16, device="meta"),
                  "global_tokens": sd["cls_token"]}  # fmt: skip
        mirage |= {
            k.replace("blocks.", "encoder.", 1): v for k, v in sd.items() if k.startswith("blocks.")
        }
        mapped, _ = map_mirage_keys(mirage)
        variant, kw = _detect(mapped, Path("x"))
        assert variant == arch and kw["depth"] == depth and kw["img_size"] == 512
        assert kw["num_heads"] == (12 if dim == 768 else 16)


def test_load_into_checks_the_weights_arrived(tmp_path: Path) -> None:
    w = load_official_weights(write_hub(tmp_path / "model.safetensors", mirage_state_dict()))
    wrong = create_model("mirage_vit", 4, embed_dim=D, depth=DEPTH + 1, num_heads=1, img_size=128)
    with pytest.raises(ModelMismatchError, match="do not fit"):
        load_into(wrong, w)
    w.reference["blocks.0.attn.qkv.weight"] = w.reference["blocks.0.attn.qkv.weight"] + 1
    ok_shape = create_model("mirage_vit", 4, **{k: v for k, v in w.arch_kwargs.items()})
    with pytest.raises(ModelMismatchError, match="did not arrive"):
        load_into(ok_shape, w)


def test_unknown_or_missing_keys_refused(tmp_path: Path) -> None:
    sd = mirage_state_dict()
    sd["decoder.whatever"] = torch.zeros(3)
    with pytest.raises(ModelMismatchError, match="not an official MIRAGE"):
        load_official_weights(write_hub(tmp_path / "a.safetensors", sd))
    sd = mirage_state_dict()
    del sd["global_tokens"]
    with pytest.raises(ModelMismatchError, match="lacks"):
        load_official_weights(write_hub(tmp_path / "b.safetensors", sd))
    sd = mirage_state_dict()
    sd["input_adapters.bscan.proj.weight"] = torch.zeros(D, 3, P, P)
    with pytest.raises(ModelMismatchError, match="one-channel"):
        load_official_weights(write_hub(tmp_path / "c.safetensors", sd))


def test_garbage_and_truncated_files(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ModelFormatError):
        load_official_weights(data_dir / "kermany" / "CNV-451136-6.jpeg")
    p = write_hub(tmp_path / "model.safetensors", mirage_state_dict())
    (tmp_path / "t.safetensors").write_bytes(p.read_bytes()[:5000])
    with pytest.raises(ModelFormatError):
        load_official_weights(tmp_path / "t.safetensors")
    r = write_release(tmp_path / "r.pth", mirage_state_dict())
    (tmp_path / "t.pth").write_bytes(r.read_bytes()[:5000])
    with pytest.raises(ModelFormatError):
        load_official_weights(tmp_path / "t.pth")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    zipped = tmp_path / "evil.pth"
    torch.save({"model": mirage_state_dict(), "args": _Evil(marker)}, zipped)
    with pytest.raises(UnsafeModelFileError, match="refused"):
        load_official_weights(zipped)
    raw = tmp_path / "evil_raw.pth"
    raw.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(UnsafeModelFileError):
        load_official_weights(raw)
    assert not marker.exists()
    # the payload is real: unpickling it unsafely would have created the marker
    pickle.loads(raw.read_bytes())
    assert marker.exists()
