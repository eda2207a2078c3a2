"""The model bundle: one ``.safetensors`` file = weights + configuration JSON in its header.

Layout (safetensors): 8-byte little-endian header length ``N``, ``N`` bytes of JSON (tensor
index plus ``__metadata__``, whose key ``octviewer.config`` holds :class:`ModelConfig` as JSON),
then the raw tensor data. The SHA-256 of the file is the model's identity on every result.

- :func:`save_bundle` writes one (training), returns its SHA-256;
- :func:`read_bundle_config` reads the configuration without importing torch;
- :func:`load_bundle` builds the network on the ``meta`` device (no random initialisation) and
  assigns the weights straight from the file, strictly, piece by piece (the weights are in
  memory once, and a caller can shrink each piece, e.g. to int8, before the next is read);
  float16 weights are upcast to float32.

Weight storage (``save_bundle(dtype=...)``): float32, float16, bfloat16, or ``int8``:
weight-only quantisation of every weight matrix and convolution kernel (symmetric, one scale
per output channel, scales in float32 under ``__int8_scale__.<name>``), the 1-D tensors
(biases, norms) in float16. int8 takes a quarter of float32's space; loading dequantises to
float32, so the network computes in float32 as usual (only the rounding of the stored weights
differs, measured per bundle by ``octviewer-train ensemble``).

Out-of-distribution statistics (:mod:`octviewer.core.ood`) travel in the same file: tensors
named ``__ood__.*`` beside the weights and a JSON object in ``ModelConfig.ood``. They are not
weights: :func:`load_bundle` reads them into ``LoadedModel.ood`` (None for bundles without them).

Only tensors are read: there is no pickle anywhere in this format.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.core.filemode import apply_umask_to
from octviewer.core.model.config import ModelConfig
from octviewer.core.model.digest import file_sha256
from octviewer.core.model.header import (
    CONFIG_KEY,
    BundleHead,
    BundleHeader,
    check_config,
    header_shapes,
    read_bundle_config,
    read_bundle_head,
)
from octviewer.core.model.int8 import SCALE_PREFIX, dequantise_int8, quantisable, quantise_int8
from octviewer.core.model.schema import validate_config
from octviewer.core.model.validation import (
    BUILD_ERRORS,
    MAX_WEIGHT,
    check_input_size,
    check_state,
    check_values,
    unreadable,
)
from octviewer.core.ood import TENSOR_PREFIX as _OOD_PREFIX
from octviewer.core.results import ModelIdentity
from octviewer.errors import ModelFormatError, ModelMismatchError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from octviewer.core.ood import OODModel

__all__ = [
    "CONFIG_KEY",
    "MAX_WEIGHT",
    "BundleHead",
    "LoadedModel",
    "UnitHook",
    "check_input_size",
    "create_model_for",
    "dequantise_int8",
    "file_sha256",
    "load_bundle",
    "load_units",
    "quantise_int8",
    "read_bundle_config",
    "read_bundle_head",
    "read_tensors",
    "save_bundle",
]

log = logging.getLogger(__name__)

_DTYPES = {"float32", "float16", "bfloat16", "int8"}


@dataclass
class LoadedModel:
    """A ready-to-run network (eval mode), its configuration and its identity."""

    model: torch.nn.Module
    config: ModelConfig
    identity: ModelIdentity
    ood: OODModel | None = None  # out-of-distribution statistics, when the bundle has them


def save_bundle(
    path: str | Path,
    model: torch.nn.Module,
    config: ModelConfig,
    *,
    dtype: str = "float32",
    ood: OODModel | None = None,
) -> str:
    """Write ``model``'s weights and ``config`` as one bundle (atomically); returns its SHA-256.

    ``dtype="float16"`` halves the file, ``"int8"`` quarters it (see the module docstring);
    loading restores float32 on CPU. ``ood`` adds out-of-distribution statistics (float32
    tensors, and their JSON in ``config.ood``); without it, the config's ``ood`` is cleared.
    """
    import torch
    from safetensors.torch import save_file

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    check_config(config)
    ood_meta, ood_tensors = ood.to_bundle() if ood is not None else ({}, {})
    config = dataclasses.replace(config, weights_dtype=dtype, ood=ood_meta)
    validate_config(json.loads(config.to_json()))  # what load_bundle will check, refused now
    target = torch.float16 if dtype == "int8" else getattr(torch, dtype)
    state: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu")
        if dtype == "int8" and t.is_floating_point() and quantisable(t):
            state[k], state[SCALE_PREFIX + k] = quantise_int8(t)
            continue
        if t.is_floating_point():
            t = t.to(target)
        state[k] = t.contiguous().clone()
    for k, a in ood_tensors.items():
        state[k] = torch.from_numpy(a.copy())
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".partial")
    save_file(state, str(tmp), metadata={CONFIG_KEY: config.to_json(), "format": "pt"})
    apply_umask_to(tmp)  # safetensors writes 0600; a bundle is shared like any other file
    tmp.replace(p)
    sha = file_sha256(p)
    log.info("wrote model bundle %s (%s, sha256 %s)", p.name, config.architecture, sha[:12])
    return sha


def load_units(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The pieces :func:`load_bundle` fills one after the other: the root's children, with
    ``ModuleList``/``Sequential`` children split into their elements (a ViT's blocks, a
    ResNet's bottlenecks). Tensors owned by the root itself come first, under the name ``""``."""
    import torch

    units: list[tuple[str, torch.nn.Module]] = [("", model)]
    for name, child in model.named_children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)) and len(child):
            units.extend((f"{name}.{i}", m) for i, m in child.named_children())
        else:
            units.append((name, child))
    return units


def _materialise_nonpersistent(model: torch.nn.Module, config: ModelConfig) -> None:
    """Buffers that no state dict holds (computed in ``__init__``, e.g. position indices)
    cannot come from the file: take them from one normal build of the network."""
    keys = set(model.state_dict())
    absent = [n for n, b in model.named_buffers() if b.is_meta and n not in keys]
    if not absent:
        return
    log.debug("building %s once for its non-persistent buffers %s", config.architecture, absent[:3])
    ref = create_model_for(config, meta=False)
    for name in absent:
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        module.register_buffer(attr, ref.get_buffer(name).detach().clone(), persistent=False)
    del ref


def create_model_for(config: ModelConfig, *, meta: bool) -> torch.nn.Module:
    """The network ``config`` describes; a build that fails is a :class:`ModelFormatError`."""
    from octviewer.core.model.architectures import create_model
    from octviewer.errors import ModelError

    try:
        return create_model(
            config.architecture, config.num_classes, meta=meta, **config.arch_kwargs
        )
    except ModelError:
        raise
    except BUILD_ERRORS as exc:
        log.info("building %s failed", config.architecture, exc_info=True)
        raise ModelFormatError(
            f"The network '{config.architecture}' could not be built from the bundle's "
            f"configuration ({type(exc).__name__}: {str(exc)[:200]}). "
            "Re-create the model bundle with octviewer-train."
        ) from exc


UnitHook = Callable[[str, "torch.nn.Module", "torch.nn.Module"], None]


@dataclass(frozen=True)
class _OpenBundle:
    """The bundle :func:`load_bundle` is reading: the open file, its path, its configuration
    and the dtype each tensor of the network takes."""

    fh: Any
    path: Path
    config: ModelConfig
    dtypes: dict[str, torch.dtype]


def _fill_unit(
    src: _OpenBundle, model: torch.nn.Module, prefix: str, unit: torch.nn.Module
) -> list[str]:
    """Read one :func:`load_units` piece's tensors from the open file into it (int8 ones
    dequantised, each value-checked); returns the names it filled."""
    import torch
    from safetensors import SafetensorError

    fh, dtypes, p = src.fh, src.dtypes, src.path

    if prefix:
        keys = [f"{prefix}.{k}" for k in unit.state_dict()]
    else:  # the root's own parameters and buffers (first: nothing is swapped yet)
        keys = [n for n, _ in model.named_parameters(recurse=False)]
        keys += [n for n, _ in model.named_buffers(recurse=False) if n in dtypes]
    try:
        part: dict[str, torch.Tensor] = {}
        for k in keys:
            t = fh.get_tensor(k)
            want = dtypes[k]
            if t.dtype == torch.int8 and want.is_floating_point:
                t = dequantise_int8(t, fh.get_tensor(SCALE_PREFIX + k))
            if t.is_floating_point() and want.is_floating_point and t.dtype != want:
                t = t.to(want)
            check_values(t, k, p)
            part[k[len(prefix) + 1 :] if prefix else k] = t
        if prefix:
            unit.load_state_dict(part, strict=True, assign=True)
        else:
            model.load_state_dict(part, strict=False, assign=True)
    except (SafetensorError, OSError, ValueError) as exc:
        raise unreadable(p, exc) from exc
    except RuntimeError as exc:
        raise ModelMismatchError(
            f"The weights do not fit the architecture '{src.config.architecture}' ({exc}).",
            path=p,
        ) from exc
    return keys


def load_bundle(
    path: str | Path,
    *,
    device: str = "cpu",
    on_unit: UnitHook | None = None,
    head: BundleHead | None = None,
) -> LoadedModel:
    """Read a bundle: configuration, network (built on ``meta``, weights assigned), identity.

    Memory: the tensors are read one :func:`load_units` piece at a time with ``pread`` (not
    memory-mapped: the file is not held open or locked while the app runs, and a bundle on a
    removed drive cannot crash the process later) straight into the meta-built network, so the
    weights are in memory once. ``on_unit(name, unit, model)`` is called after each piece has
    its weights (on the CPU, eval mode) and may replace its layers, e.g. by int8 ones: then the
    float32 weights of a piece are freed before the next is read. ``head``: the header the
    caller already parsed (:func:`read_bundle_head`), so that it is read once per load.
    """
    import torch
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if head is None or head.path != p:
        head = read_bundle_head(p)
    config, header = head.config, head.header
    model = create_model_for(config, meta=True)
    check_input_size(model, config, p)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_state(header_shapes(header, p), expected, config, p)
    _materialise_nonpersistent(model, config)
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    done: set[str] = set()
    try:
        fh = safe_open(str(p), framework="pt", device="cpu", backend="pread")
    except (SafetensorError, OSError, ValueError) as exc:
        raise unreadable(p, exc) from exc
    with fh:
        src = _OpenBundle(fh, p, config, dtypes)
        for prefix, unit in load_units(model):
            keys = _fill_unit(src, model, prefix, unit)
            done.update(keys)
            if on_unit is not None:
                on_unit(prefix, unit, model)
        ood = _read_ood(fh, header, config, p)
    leftovers = sorted(set(expected) - done)
    leftovers += [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftovers:
        raise ModelMismatchError(
            f"The weights do not fit the architecture '{config.architecture}': "
            f"{leftovers[:3]} were not filled from the bundle. Re-create it with octviewer-train.",
            path=p,
        )
    model = model.to(torch.device(device)).eval()
    identity = ModelIdentity(
        name=config.name,
        version=config.version,
        sha256=file_sha256(p),
        architecture=config.architecture,
        licence=config.licence,
    )
    log.info("loaded model %s on %s", identity, device)
    return LoadedModel(model=model, config=config, identity=identity, ood=ood)


def read_tensors(
    head: BundleHead, names: list[str]
) -> tuple[dict[str, torch.Tensor], OODModel | None]:
    """Some of a bundle's weights (float32; int8-stored ones dequantised; each value-checked)
    and its out-of-distribution statistics, without building the network."""
    from safetensors import SafetensorError, safe_open

    p = head.path
    out: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(p), framework="pt", device="cpu", backend="pread") as fh:
            for k in names:
                if k not in head.header.tensors:
                    raise ValueError(f"the bundle has no tensor {k!r}")
                t = fh.get_tensor(k)
                if SCALE_PREFIX + k in head.header.tensors:
                    t = dequantise_int8(t, fh.get_tensor(SCALE_PREFIX + k))
                if not t.is_floating_point():
                    raise ValueError(f"tensor {k!r} is not a floating-point weight")
                out[k] = t.float()
                check_values(out[k], k, p)
            ood = _read_ood(fh, head.header, head.config, p)
    except (SafetensorError, OSError, ValueError) as exc:
        raise unreadable(p, exc) from exc
    return out, ood


def _read_ood(fh: Any, header: BundleHeader, config: ModelConfig, p: Path) -> OODModel | None:
    """The bundle's out-of-distribution statistics, or None when it has none."""
    from safetensors import SafetensorError

    from octviewer.core.ood import OODModel

    names = [k for k in header.tensors if k.startswith(_OOD_PREFIX)]
    if not config.ood and not names:
        return None
    tensors: dict[str, np.ndarray] = {}
    try:
        for k in names:
            tensors[k] = fh.get_tensor(k).float().numpy()
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise unreadable(p, exc) from exc
    try:
        return OODModel.from_bundle(config.ood, tensors)
    except ModelFormatError as exc:
        raise ModelFormatError(str(exc), path=p) from exc
