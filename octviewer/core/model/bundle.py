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
import hashlib
import json
import logging
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.core.filemode import apply_umask_to
from octviewer.core.model.config import BUNDLE_FORMAT, ModelConfig
from octviewer.core.model.int8 import SCALE_PREFIX, dequantise_int8, quantisable, quantise_int8
from octviewer.core.model.schema import SchemaError, loads_bounded, validate_config
from octviewer.core.ood import TENSOR_PREFIX as _OOD_PREFIX
from octviewer.core.results import ModelIdentity
from octviewer.errors import ModelFormatError, ModelMismatchError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from octviewer.core.ood import OODModel

log = logging.getLogger(__name__)

CONFIG_KEY = "octviewer.config"
_MAX_HEADER = 16 * 1024 * 1024  # a MIRAGE-Large int8 bundle's header is about 60 KB
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}  # fmt: skip
_DTYPES = {"float32", "float16", "bfloat16", "int8"}
_MIRAGE_HINTS = ("input_adapters.", "global_tokens", "output_adapters.", "encoder.0.")
_FINETUNE_HINT = (
    "This looks like a MIRAGE foundation-model weight file, not an octviewer model bundle: "
    "it has no classification head. Fine-tune it first with octviewer-train "
    "(e.g. `octviewer-train --init MIRAGE-Base.safetensors ...`), then open the bundle it writes."
)


@dataclass
class LoadedModel:
    """A ready-to-run network (eval mode), its configuration and its identity."""

    model: torch.nn.Module
    config: ModelConfig
    identity: ModelIdentity
    ood: OODModel | None = None  # out-of-distribution statistics, when the bundle has them


@dataclass(frozen=True)
class _Header:
    tensors: dict[str, dict[str, Any]]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_header(path: str | Path) -> _Header:
    p = Path(path)
    what = f"'{p.name}' is not an octviewer model bundle"
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelFormatError(f"{what}: the file is empty or too short.", path=p)
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > _MAX_HEADER or n + 8 > size:
                raise ModelFormatError(
                    f"{what} (it is not a .safetensors file, or it is truncated). "
                    "Choose the .safetensors bundle written by octviewer-train.",
                    path=p,
                )
            raw = fh.read(n)
    except OSError as exc:
        raise ModelFormatError(
            f"The model file could not be read: {exc.strerror or exc}.", path=p
        ) from exc
    try:
        header = loads_bounded(raw, what="the header", max_bytes=_MAX_HEADER)
    except SchemaError as exc:
        raise ModelFormatError(
            f"{what}: its header is not valid ({exc}; not a .safetensors file, or damaged).",
            path=p,
        ) from exc
    if not isinstance(header, dict):
        raise ModelFormatError(f"{what}: its header is not valid.", path=p)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFormatError(f"{what}: its header metadata is not valid.", path=p)
    tensors: dict[str, dict[str, Any]] = {}
    end = 0
    for name, info in header.items():
        problem = _entry_problem(info)
        if problem:
            raise ModelFormatError(
                f"{what}: entry '{name[:80]}' of its header is damaged ({problem}).", path=p
            )
        tensors[name] = info
        end = max(end, info["data_offsets"][1])
    if 8 + n + end > size:
        raise ModelFormatError(
            f"The model file is truncated ({size} bytes, {8 + n + end} expected): it was probably "
            "not copied or downloaded completely. Copy it again.",
            path=p,
        )
    return _Header(tensors, {str(k): v for k, v in metadata.items()}, 8 + n, size)


def _entry_problem(info: Any) -> str | None:
    """What is wrong with one tensor entry of a safetensors header (None: nothing).

    Every tensor is checked, the ``__ood__.`` statistics and int8 scales included: a dtype
    safetensors knows, a shape of at most 8 whole non-negative sizes, and offsets that are two
    whole numbers spanning exactly ``prod(shape) * itemsize`` bytes."""
    if not isinstance(info, dict):
        return "not an object"
    dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _ITEMSIZE:
        return f"unknown dtype {str(dtype)[:20]!r}"
    if not (isinstance(shape, list) and len(shape) <= 8 and all(_whole(d) for d in shape)):
        return "shape is not a list of whole sizes"
    if not (isinstance(offs, list) and len(offs) == 2 and all(_whole(o) for o in offs)):
        return "data_offsets are not two whole numbers"
    if offs[1] < offs[0] or offs[1] - offs[0] != math.prod(shape) * _ITEMSIZE[dtype]:
        return "its data_offsets do not fit its shape and dtype"
    return None


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 48


def _looks_like_mirage(names: Any) -> bool:
    return any(
        n.split(".", 1)[-1].startswith(_MIRAGE_HINTS) or n.startswith(_MIRAGE_HINTS) for n in names
    )


def _config_from_header(header: _Header, path: Path) -> ModelConfig:
    raw = header.metadata.get(CONFIG_KEY)
    if raw is None:
        if _looks_like_mirage(header.tensors):
            raise ModelFormatError(_FINETUNE_HINT, path=path)
        raise ModelFormatError(
            f"'{path.name}' is a weights file without octviewer configuration, not a model bundle. "
            "Use a bundle written by octviewer-train.",
            path=path,
        )
    try:
        d = loads_bounded(raw, what="the configuration")
        if not isinstance(d, dict):
            raise TypeError("configuration is not a JSON object")
        fmt = d.get("format", BUNDLE_FORMAT)
        if fmt != BUNDLE_FORMAT:
            raise TypeError(f"format '{fmt}'")
        config = ModelConfig.from_dict(d)
        _validate_config(config)
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
        raise ModelFormatError(
            f"The configuration inside the model bundle is missing or invalid ({exc}). "
            "Re-create the bundle with octviewer-train.",
            path=path,
        ) from exc
    return config


def _validate_config(c: ModelConfig) -> None:
    if not isinstance(c.architecture, str) or not c.architecture:
        raise ValueError("no architecture")
    if not c.class_names or not all(isinstance(n, str) and n for n in c.class_names):
        raise ValueError("class_names must be non-empty strings")
    if len(set(c.class_names)) != len(c.class_names):
        raise ValueError("duplicate class names")
    if not isinstance(c.arch_kwargs, dict):
        raise ValueError("arch_kwargs must be an object")
    if not (isinstance(c.temperature, (int, float)) and c.temperature > 0):
        raise ValueError(f"temperature must be positive, got {c.temperature!r}")
    if not (isinstance(c.confidence_threshold, (int, float)) and 0 <= c.confidence_threshold <= 1):
        raise ValueError("confidence_threshold must be within [0, 1]")
    size = c.preprocess.size
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"invalid input size {size}")


def read_bundle_config(path: str | Path) -> ModelConfig:
    """The bundle's :class:`ModelConfig`, read from the safetensors header (no torch import)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"The model file does not exist: {p}. Check the path.", path=p)
    return _config_from_header(_read_header(p), p)


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
    _validate_config(config)
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


def _check_state(
    shapes: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[int, ...]],
    config: ModelConfig,
    p: Path,
) -> None:
    """Names and shapes of the file's tensors (from its header) against the network's."""
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        if missing and _looks_like_mirage(unexpected):
            raise ModelFormatError(_FINETUNE_HINT, path=p)
        raise ModelMismatchError(
            f"The weights in this bundle do not fit its declared architecture "
            f"'{config.architecture}' ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"e.g. {(missing or unexpected)[:3]}). The bundle is damaged or was edited: "
            "re-create it with octviewer-train.",
            path=p,
        )
    for k, ref in expected.items():
        got = shapes[k]
        if got != ref:
            head_like = k.split(".")[0] in ("head", "fc", "classifier") or k.startswith("head.")
            if head_like and got and got[0] != config.num_classes:
                raise ModelMismatchError(
                    f"The bundle declares {config.num_classes} classes "
                    f"({', '.join(config.class_names)}) but its classifier has {got[0]} outputs. "
                    "The bundle is inconsistent: re-create it with octviewer-train.",
                    path=p,
                )
            raise ModelMismatchError(
                f"The weights in this bundle do not fit its declared architecture "
                f"'{config.architecture}': '{k}' has shape {got}, expected {ref}. "
                "Re-create the bundle with octviewer-train.",
                path=p,
            )


def _header_shapes(header: _Header, p: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from the (already checked) header; int8 tensors must have their scales.
    The out-of-distribution statistics (``__ood__.*``) are not weights: left out here."""
    shapes = {
        k: tuple(v["shape"]) for k, v in header.tensors.items() if not k.startswith(_OOD_PREFIX)
    }
    for k, v in header.tensors.items():
        problem = None
        if k.startswith(_OOD_PREFIX):
            continue
        if k.startswith(SCALE_PREFIX):
            weight = shapes.get(k[len(SCALE_PREFIX) :])
            if weight is None or len(shapes[k]) != 1 or not weight or weight[0] != shapes[k][0]:
                problem = f"int8 scale '{k}' does not match a weight"
            elif v["dtype"] != "F32":
                problem = f"int8 scale '{k}' is not float32"
            del shapes[k]
        elif v["dtype"] == "I8" and SCALE_PREFIX + k not in header.tensors:
            problem = f"int8 tensor '{k}' has no scale"
        if problem:
            raise ModelFormatError(
                f"The weights in the model bundle could not be read (damaged header: {problem}). "
                "Copy it again or re-create it with octviewer-train.",
                path=p,
            )
    return shapes


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
    except _BUILD_ERRORS as exc:
        log.info("building %s failed", config.architecture, exc_info=True)
        raise ModelFormatError(
            f"The network '{config.architecture}' could not be built from the bundle's "
            f"configuration ({type(exc).__name__}: {str(exc)[:200]}). "
            "Re-create the model bundle with octviewer-train."
        ) from exc


#: What torch/timm raise on settings they cannot build (a zero width, a huge ratio...).
_BUILD_ERRORS = (
    TypeError,
    ValueError,
    AssertionError,
    RuntimeError,
    ZeroDivisionError,
    IndexError,
    KeyError,
    AttributeError,
    OverflowError,
    MemoryError,
)


def check_input_size(model: torch.nn.Module, config: ModelConfig, p: Path) -> None:
    """One forward pass on the ``meta`` device (shapes only, no memory, no arithmetic) with the
    input size the bundle's preprocessing produces: the network must accept it and give one
    logit per class. Catches a ``preprocess.size`` that the network cannot take at load time,
    instead of at the first analysis."""
    import torch

    rows, cols = config.preprocess.size
    try:
        with torch.inference_mode(), torch.device("meta"):  # constants made in forward too
            out = model(torch.empty((1, 1, rows, cols)))
    except NotImplementedError:  # an operation without a meta kernel: checked at analysis
        log.debug("meta forward of %s not possible; input size not checked", config.architecture)
        return
    except _BUILD_ERRORS as exc:
        raise ModelMismatchError(
            f"The network '{config.architecture}' does not accept the {rows}x{cols} input its "
            f"bundle's preprocessing produces ({type(exc).__name__}: {str(exc)[:200]}). "
            "The bundle is inconsistent: re-create it with octviewer-train.",
            path=p,
        ) from exc
    if tuple(getattr(out, "shape", ())) != (1, config.num_classes):
        raise ModelMismatchError(
            f"The network '{config.architecture}' gives outputs of shape "
            f"{tuple(getattr(out, 'shape', ()))} for one image, not one per class "
            f"({config.num_classes}). Re-create the bundle with octviewer-train.",
            path=p,
        )


def _unreadable(p: Path, exc: BaseException) -> ModelFormatError:
    return ModelFormatError(
        f"The weights in the model bundle could not be read ({exc}). The file is damaged: "
        "copy it again or re-create it with octviewer-train.",
        path=p,
    )


#: Largest weight magnitude accepted. Trained weights, norms and running statistics of
#: networks fed [0, 1] images stay far below; a flipped exponent bit gives about 1e38.
MAX_WEIGHT = 1e8


def _check_values(t: torch.Tensor, name: str, p: Path) -> None:
    """A damaged bundle is refused, not run: NaN/Inf or absurd magnitudes in a weight."""
    import torch

    if not t.is_floating_point() or t.numel() == 0:
        return
    if not bool(torch.isfinite(t).all()):
        problem = "values that are not numbers (NaN or infinite"
    elif float(t.abs().max()) > MAX_WEIGHT:
        problem = f"absurdly large values (above {MAX_WEIGHT:g}"
    else:
        return
    raise ModelFormatError(
        f"The weights in the model bundle contain {problem}, in '{name}'): the file is "
        "damaged. Copy it again or re-create it with octviewer-train.",
        path=p,
    )


UnitHook = Callable[[str, "torch.nn.Module", "torch.nn.Module"], None]


def load_bundle(
    path: str | Path, *, device: str = "cpu", on_unit: UnitHook | None = None
) -> LoadedModel:
    """Read a bundle: configuration, network (built on ``meta``, weights assigned), identity.

    Memory: the tensors are read one :func:`load_units` piece at a time with ``pread`` (not
    memory-mapped: the file is not held open or locked while the app runs, and a bundle on a
    removed drive cannot crash the process later) straight into the meta-built network, so the
    weights are in memory once. ``on_unit(name, unit, model)`` is called after each piece has
    its weights (on the CPU, eval mode) and may replace its layers, e.g. by int8 ones: then the
    float32 weights of a piece are freed before the next is read.
    """
    import torch
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    config = read_bundle_config(p)
    header = _read_header(p)
    model = create_model_for(config, meta=True)
    check_input_size(model, config, p)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_state(_header_shapes(header, p), expected, config, p)
    _materialise_nonpersistent(model, config)
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    done: set[str] = set()
    try:
        fh = safe_open(str(p), framework="pt", device="cpu", backend="pread")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(p, exc) from exc
    with fh:
        for prefix, unit in load_units(model):
            if prefix:
                keys = [f"{prefix}.{k}" for k in unit.state_dict()]
            else:  # the root's own parameters and buffers (first: nothing is swapped yet)
                keys = [n for n, _ in model.named_parameters(recurse=False)]
                keys += [n for n, _ in model.named_buffers(recurse=False) if n in expected]
            try:
                part: dict[str, torch.Tensor] = {}
                for k in keys:
                    t = fh.get_tensor(k)
                    want = dtypes[k]
                    if t.dtype == torch.int8 and want.is_floating_point:
                        t = dequantise_int8(t, fh.get_tensor(SCALE_PREFIX + k))
                    if t.is_floating_point() and want.is_floating_point and t.dtype != want:
                        t = t.to(want)
                    _check_values(t, k, p)
                    part[k[len(prefix) + 1 :] if prefix else k] = t
                if prefix:
                    unit.load_state_dict(part, strict=True, assign=True)
                else:
                    model.load_state_dict(part, strict=False, assign=True)
            except (SafetensorError, OSError, ValueError) as exc:
                raise _unreadable(p, exc) from exc
            except RuntimeError as exc:
                raise ModelMismatchError(
                    f"The weights do not fit the architecture '{config.architecture}' ({exc}).",
                    path=p,
                ) from exc
            del part
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


def _read_ood(fh: Any, header: _Header, config: ModelConfig, p: Path) -> OODModel | None:
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
        raise _unreadable(p, exc) from exc
    try:
        return OODModel.from_bundle(config.ood, tensors)
    except ModelFormatError as exc:
        raise ModelFormatError(str(exc), path=p) from exc
