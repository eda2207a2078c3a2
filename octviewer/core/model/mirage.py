"""The official MIRAGE weight files, read safely and mapped onto timm.

Two layouts are accepted (Morano et al. 2025, repository j-morano/MIRAGE):

- the Hugging Face hub's ``model.safetensors``: every key prefixed ``model.``;
- the GitHub release ``MIRAGE-Base.pth`` / ``MIRAGE-Large.pth``: a pickle
  ``{'model': state_dict, 'args': argparse.Namespace}``, read with ``torch.load(...,
  weights_only=True)`` and only ``argparse.Namespace`` allow-listed. Any other object in the
  pickle is refused with :class:`UnsafeModelFileError`: nothing in the file is executed.

Key mapping onto :func:`octviewer.core.model.architectures.mirage_vit`:

========================================  ==========================  ===========================
MIRAGE                                    timm                        change
========================================  ==========================  ===========================
``input_adapters.bscan.proj.*``           ``patch_embed.proj.*``      none
``input_adapters.bscan.pos_emb`` [1,D,g,g] ``pos_embed`` [1,g*g,D]     ``flatten(2).transpose(1,2)``
``global_tokens`` [1,1,D]                 ``cls_token``               none
``encoder.{i}.*``                         ``blocks.{i}.*``            none
other input adapters, ``output_adapters``  dropped
(none)                                    ``norm.*``, ``head.*``      new (fine-tuning)
========================================  ==========================  ===========================
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.errors import ModelFormatError, ModelMismatchError, UnsafeModelFileError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MIRAGE_LICENCE = "CC BY-NC-ND 4.0 (MIRAGE weights, Morano et al. 2025): non-commercial research use"
_DROPPED_PREFIXES = ("output_adapters.", "input_adapters.")  # after the bscan keys are taken
_KNOWN_HEADS = {768: 12, 1024: 16}
_BLOCK_RE = re.compile(r"^encoder\.(\d+)\.(.+)$")
_CHECK_KEY = "blocks.0.attn.qkv.weight"


@dataclass
class MirageWeights:
    """An official MIRAGE encoder, mapped to timm keys (no ``norm``/``head``: those are new).

    ``variant`` is ``mirage_base``, ``mirage_large`` or ``mirage_vit`` (another width, with
    ``arch_kwargs`` describing it). ``reference`` holds a tensor exactly as read from the file,
    used to prove after loading that the weights really arrived in the model.
    """

    variant: str
    state_dict: dict[str, torch.Tensor]
    arch_kwargs: dict[str, Any]
    source_format: str  # "safetensors" or "pth"
    path: Path
    dropped: tuple[str, ...] = ()
    reference: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return self.variant


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ModelFormatError(
            f"The weight file could not be read: {exc.strerror or exc}.", path=path
        ) from exc
    if len(head) < 9:
        raise ModelFormatError("The weight file is empty or truncated.", path=path)
    if head[:4] == b"PK\x03\x04":
        return "pth"  # torch's zip format
    if head[:1] == b"\x80":
        return "pth"  # legacy torch / bare pickle
    if head[8:9] == b"{":
        return "safetensors"
    raise ModelFormatError(
        "This is not a MIRAGE weight file (expected the hub's model.safetensors or the release "
        "MIRAGE-Base.pth / MIRAGE-Large.pth).",
        path=path,
    )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(
            f"The MIRAGE weight file is damaged or truncated ({exc}). Download it again.", path=path
        ) from exc


def _read_pth(path: Path) -> dict[str, torch.Tensor]:
    import argparse

    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if (
            "weights_only" in text.lower()
            or "global" in text.lower()
            or "unsupported" in text.lower()
        ):
            raise UnsafeModelFileError(
                "This .pth file contains program code or objects that a weight file does not "
                "need, so octviewer refused to open it (opening it could run that code). Use the "
                "official MIRAGE weights, preferably the hub's model.safetensors.",
                path=path,
            ) from exc
        raise ModelFormatError(
            f"The .pth weight file is damaged ({exc}). Download it again.", path=path
        ) from exc
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFormatError(
            f"The .pth weight file is damaged or truncated ({exc}). Download it again.", path=path
        ) from exc
    sd = obj.get("model", obj) if isinstance(obj, dict) else None
    if (
        not isinstance(sd, dict)
        or not sd
        or not all(isinstance(v, torch.Tensor) for v in sd.values())
    ):
        raise ModelFormatError(
            "This .pth file does not hold a MIRAGE state dict ({'model': weights, 'args': ...}).",
            path=path,
        )
    return sd


def _strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("model.", "module."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def map_mirage_keys(
    sd: dict[str, torch.Tensor], *, path: Path | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """MIRAGE encoder keys (prefix already stripped) to timm keys; returns (mapped, dropped)."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for k, v in sd.items():
        if k in ("input_adapters.bscan.proj.weight", "input_adapters.bscan.proj.bias"):
            out["patch_embed." + k.split(".", 2)[2]] = v
        elif k == "input_adapters.bscan.pos_emb":
            if v.ndim != 4:
                raise ModelMismatchError(
                    f"MIRAGE position table has shape {tuple(v.shape)}, expected [1, D, g, g].",
                    path=path,
                )
            out["pos_embed"] = v.flatten(2).transpose(1, 2).contiguous()
        elif k == "global_tokens":
            out["cls_token"] = v
        elif m := _BLOCK_RE.match(k):
            out[f"blocks.{m.group(1)}.{m.group(2)}"] = v
        elif k.startswith(_DROPPED_PREFIXES) and not k.startswith("input_adapters.bscan."):
            dropped.append(k)
        else:
            unknown.append(k)
    if unknown:
        raise ModelMismatchError(
            f"This weight file has entries a MIRAGE encoder does not have (e.g. {unknown[:3]}); "
            "it is not an official MIRAGE file. Use the hub's model.safetensors or the release .pth.",
            path=path,
        )
    required = ("patch_embed.proj.weight", "pos_embed", "cls_token", _CHECK_KEY)
    missing = [k for k in required if k not in out]
    if missing:
        raise ModelMismatchError(
            f"This weight file lacks parts of the MIRAGE encoder ({missing}); it is not a complete "
            "MIRAGE file. Download model.safetensors from the hub again.",
            path=path,
        )
    return out, dropped


def _detect(sd: dict[str, torch.Tensor], path: Path) -> tuple[str, dict[str, Any]]:
    w = sd["patch_embed.proj.weight"]
    if w.ndim != 4 or w.shape[1] != 1 or w.shape[2] != w.shape[3]:
        raise ModelMismatchError(
            f"The patch embedding has shape {tuple(w.shape)}: not a one-channel MIRAGE B-scan encoder.",
            path=path,
        )
    dim, patch = int(w.shape[0]), int(w.shape[2])
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    grid = int(sd["pos_embed"].shape[1])
    side = round(grid**0.5)
    if side * side != grid or sd["pos_embed"].shape[2] != dim:
        raise ModelMismatchError(
            f"The position table {tuple(sd['pos_embed'].shape)} does not fit width {dim}.",
            path=path,
        )
    heads = _KNOWN_HEADS.get(dim, dim // 64 if dim % 64 == 0 else 0)
    if heads < 1:
        raise ModelMismatchError(
            f"Unusual MIRAGE width {dim}: the number of attention heads is unknown.", path=path
        )
    fc1 = sd.get("blocks.0.mlp.fc1.weight")
    mlp_ratio = float(fc1.shape[0]) / dim if fc1 is not None else 4.0
    kwargs: dict[str, Any] = {
        "embed_dim": dim,
        "depth": depth,
        "num_heads": heads,
        "img_size": side * patch,
        "patch_size": patch,
        "mlp_ratio": mlp_ratio,
    }
    std = patch == 32 and side * patch == 512 and mlp_ratio == 4.0
    if std and (dim, depth) == (768, 12):
        return "mirage_base", kwargs
    if std and (dim, depth) == (1024, 24):
        return "mirage_large", kwargs
    return "mirage_vit", kwargs


def load_official_weights(path: str | Path) -> MirageWeights:
    """Read an official MIRAGE weight file (hub safetensors or release .pth), mapped to timm."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"The weight file does not exist: {p}.", path=p)
    fmt = _sniff(p)
    raw = _read_safetensors(p) if fmt == "safetensors" else _read_pth(p)
    raw = _strip_prefix(raw)
    mapped, dropped = map_mirage_keys(raw, path=p)
    variant, kwargs = _detect(mapped, p)
    reference = {
        _CHECK_KEY: raw[_CHECK_KEY.replace("blocks.", "encoder.", 1)],
        "pos_embed": raw["input_adapters.bscan.pos_emb"],
    }
    log.info(
        "read MIRAGE weights %s: %s (%s, width %d, depth %d), dropped %d adapter tensors",
        p.name,
        variant,
        fmt,
        kwargs["embed_dim"],
        kwargs["depth"],
        len(dropped),
    )
    return MirageWeights(variant, mapped, kwargs, fmt, p, tuple(dropped), reference)


def load_into(model: torch.nn.Module, weights: MirageWeights) -> None:
    """Load the encoder strictly into a MIRAGE-design ViT (only ``norm``/``head`` stay new),
    then prove a tensor arrived by comparing it with the one read from the file."""
    import torch

    expected = model.state_dict()
    new = {k for k in expected if k.startswith(("norm.", "head.", "fc_norm."))}
    missing = sorted(set(expected) - set(weights.state_dict) - new)
    unexpected = sorted(set(weights.state_dict) - set(expected))
    bad_shapes = [
        k
        for k, v in weights.state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or bad_shapes:
        raise ModelMismatchError(
            f"The MIRAGE weights do not fit this network (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shapes {bad_shapes[:3]}). Use mirage_base for MIRAGE-Base and "
            "mirage_large for MIRAGE-Large.",
            path=weights.path,
        )
    model.load_state_dict(weights.state_dict, strict=False)
    got = dict(model.state_dict())
    ref_pos = weights.reference["pos_embed"].flatten(2).transpose(1, 2)
    ok = torch.equal(
        got[_CHECK_KEY].cpu(), weights.reference[_CHECK_KEY].to(got[_CHECK_KEY].dtype)
    ) and torch.equal(got["pos_embed"].cpu(), ref_pos.to(got["pos_embed"].dtype))
    if not ok:
        raise ModelMismatchError(
            "The MIRAGE weights did not arrive in the network (a check tensor differs from the file).",
            path=weights.path,
        )


def create_from_official(
    path: str | Path, num_classes: int
) -> tuple[torch.nn.Module, MirageWeights]:
    """A MIRAGE classifier ready for fine-tuning: official encoder loaded, new norm and head.

    Returns the model and the weights (``weights.variant`` / ``weights.arch_kwargs`` go into the
    bundle configuration).
    """
    from octviewer.core.model.architectures import create_model

    weights = load_official_weights(path)
    kwargs = {} if weights.variant != "mirage_vit" else dict(weights.arch_kwargs)
    model = create_model(weights.variant, num_classes, **kwargs)
    load_into(model, weights)
    return model, weights
