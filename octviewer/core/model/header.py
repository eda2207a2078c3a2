"""Reading a bundle's safetensors header without torch: the tensor index, checked entry by
entry, and the :class:`ModelConfig` in its metadata (key ``CONFIG_KEY``), validated."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octviewer.core.model.card import finetune_command
from octviewer.core.model.config import BUNDLE_FORMAT, ModelConfig
from octviewer.core.model.int8 import SCALE_PREFIX
from octviewer.core.model.schema import SchemaError, loads_bounded
from octviewer.core.ood import TENSOR_PREFIX as _OOD_PREFIX
from octviewer.errors import ModelFormatError

CONFIG_KEY = "octviewer.config"
_MAX_HEADER = 16 * 1024 * 1024  # a MIRAGE-Large int8 bundle's header is about 60 KB
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}  # fmt: skip
_MIRAGE_HINTS = ("input_adapters.", "global_tokens", "output_adapters.", "encoder.0.")
FINETUNE_HINT = (
    "This looks like a MIRAGE foundation-model weight file, not an octviewer model bundle: "
    "it has no classification head. Fine-tune it first with octviewer-train "
    f"(`{finetune_command('model.safetensors', 'labelled_scans/')}`), then open the bundle it writes."
)


@dataclass(frozen=True)
class BundleHeader:
    tensors: dict[str, dict[str, Any]]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def read_header(path: str | Path) -> BundleHeader:
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
    return BundleHeader(tensors, {str(k): v for k, v in metadata.items()}, 8 + n, size)


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


def looks_like_mirage(names: Any) -> bool:
    return any(
        n.split(".", 1)[-1].startswith(_MIRAGE_HINTS) or n.startswith(_MIRAGE_HINTS) for n in names
    )


def _config_from_header(header: BundleHeader, path: Path) -> ModelConfig:
    raw = header.metadata.get(CONFIG_KEY)
    if raw is None:
        if looks_like_mirage(header.tensors):
            raise ModelFormatError(FINETUNE_HINT, path=path)
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
        check_config(config)
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
        raise ModelFormatError(
            f"The configuration inside the model bundle is missing or invalid ({exc}). "
            "Re-create the bundle with octviewer-train.",
            path=path,
        ) from exc
    return config


def check_config(c: ModelConfig) -> None:
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


@dataclass(frozen=True)
class BundleHead:
    """A bundle's parsed and checked header with its configuration: read once per load (the
    engine reads it, then hands it to :func:`~octviewer.core.model.bundle.load_bundle`)."""

    path: Path
    header: BundleHeader
    config: ModelConfig


def read_bundle_head(path: str | Path) -> BundleHead:
    """Parse the safetensors header and the configuration in it (no torch import)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"The model file does not exist: {p}. Check the path.", path=p)
    header = read_header(p)
    return BundleHead(p, header, _config_from_header(header, p))


def read_bundle_config(path: str | Path) -> ModelConfig:
    """The bundle's :class:`ModelConfig`, read from the safetensors header (no torch import)."""
    return read_bundle_head(path).config


def header_shapes(header: BundleHeader, p: Path) -> dict[str, tuple[int, ...]]:
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
