"""The bundle configuration's schema: types, ranges, sizes and nesting, checked before any
network is built.

A bundle is a file from anywhere, so its configuration is hostile until proven otherwise:
:func:`loads_bounded` parses JSON with a size and nesting limit, and :func:`validate_config`
checks the decoded mapping field by field (what the dataclasses in :mod:`.config` would
otherwise accept blindly). Every failure is a :class:`SchemaError` (a ``ValueError``) whose
text names the field and what is wrong with it; :mod:`.bundle` turns it into a
``ModelFormatError``. The bounds are far above any real model (MIRAGE-Large: width 1024,
depth 24, 512x512 input) and far below what would exhaust memory or hang the build.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

#: Largest configuration JSON (a real one, with metrics and provenance, is a few KB).
MAX_CONFIG_BYTES = 1024 * 1024
#: Deepest nesting of lists/objects anywhere in a configuration or a safetensors header.
MAX_DEPTH = 16
#: Largest free-form mapping (provenance, metrics, ood, training_domain), as JSON.
MAX_MAPPING_BYTES = 256 * 1024
MAX_TEXT = 10_000
MAX_CLASSES = 1000
MAX_MEMBERS = 16
INPUT_SIZE = (16, 4096)  # model input side, pixels
VIT_BOUNDS = {"embed_dim": (1, 4096), "depth": (1, 64), "num_heads": (1, 64)}
MAX_INT8_RANGES = 2000  # activations per network (ResNet-18: 29)
MAX_INT8_RANGE = 1e6  # activation magnitude (ResNet-18 on [0, 1] images: below 100)
_INT8_NET = re.compile(r"^members\.\d{1,2}$")
_INT8_OBSERVER = re.compile(r"^activation_post_process_\d{1,6}$")
_TIMM_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,120}$")
_LAYER_PART = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*|-?\d{1,4})$")
_MAPPINGS = ("provenance", "metrics", "ood", "training_domain", "reassurance")
_VIT_FLAGS = ("qkv_bias", "class_token", "no_embed_class", "dynamic_img_size", "dynamic_img_pad")
_VIT_RATES = ("drop_rate", "attn_drop_rate", "drop_path_rate", "proj_drop_rate", "pos_drop_rate")


class SchemaError(ValueError):
    """A configuration value that breaks the schema; the text names the field."""


def loads_bounded(text: str | bytes, *, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """``json.loads`` with a size limit and a nesting limit (no RecursionError escapes)."""
    if len(text) > max_bytes:
        raise SchemaError(f"{what} is {len(text)} bytes, more than the {max_bytes} allowed")
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise SchemaError(f"{what} is nested too deeply") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{what} is not valid JSON ({exc})") from exc
    check_depth(value, what=what)
    return value


def check_depth(value: Any, *, what: str, limit: int = MAX_DEPTH) -> None:
    """Refuse lists/objects nested deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise SchemaError(f"{what} is nested more than {limit} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children)


# --- scalar checks ------------------------------------------------------------------------
def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"{field} must be a whole number, got {_show(value)}")
    if not lo <= value <= hi:
        raise SchemaError(f"{field} must be within [{lo}, {hi}], got {value}")
    return value


def _num(value: Any, field: str, lo: float, hi: float, *, open_lo: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{field} must be a number, got {_show(value)}")
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (open_lo and v == lo):
        raise SchemaError(f"{field} must be a finite number within {_range(lo, hi, open_lo)}")
    return v


def _text(value: Any, field: str, *, limit: int = MAX_TEXT, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{field} must be text, got {_show(value)}")
    if len(value) > limit or (not empty and not value):
        raise SchemaError(f"{field} must be text of 1 to {limit} characters")
    return value


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{field} must be a JSON object, got {_show(value)}")
    size = len(json.dumps(value, default=str))
    if size > MAX_MAPPING_BYTES:
        raise SchemaError(f"{field} is {size} bytes as JSON, more than {MAX_MAPPING_BYTES}")
    check_depth(value, what=field)
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _range(lo: float, hi: float, open_lo: bool) -> str:
    return f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"


# --- the configuration ---------------------------------------------------------------------
def validate_config(d: Any) -> None:
    """Check a decoded bundle configuration; raises :class:`SchemaError` naming the field."""
    if not isinstance(d, dict):
        raise SchemaError(f"the configuration must be a JSON object, got {_show(d)}")
    check_depth(d, what="the configuration")
    for key in ("name", "version", "architecture", "class_names"):
        if key not in d:
            raise SchemaError(f"the configuration has no '{key}'")
    _text(d["name"], "name", limit=200)
    _text(d["version"], "version", limit=200)
    arch = _text(d["architecture"], "architecture", limit=200, empty=False)
    names = d["class_names"]
    if not isinstance(names, list) or not 2 <= len(names) <= MAX_CLASSES:
        raise SchemaError(f"class_names must be a list of 2 to {MAX_CLASSES} names")
    for i, n in enumerate(names):
        _text(n, f"class_names[{i}]", limit=200, empty=False)
    if len(set(names)) != len(names):
        raise SchemaError("class_names has duplicates")
    if "format_version" in d:
        _int(d["format_version"], "format_version", 1, 1000)
    if "temperature" in d:
        _num(d["temperature"], "temperature", 0.0, 1000.0, open_lo=True)
    if "confidence_threshold" in d:
        _num(d["confidence_threshold"], "confidence_threshold", 0.0, 1.0)
    if "cam_target_layer" in d:
        validate_layer_path(d["cam_target_layer"])
    for key in ("licence", "description"):
        if key in d:
            _text(d[key], key)
    if "weights_dtype" in d and d["weights_dtype"] not in (
        "float32",
        "float16",
        "bfloat16",
        "int8",
    ):
        raise SchemaError(f"weights_dtype {_show(d['weights_dtype'])} is not a known storage type")
    for key in _MAPPINGS:
        if key in d:
            _mapping(d[key], key)
    if "int8" in d:
        validate_int8(d["int8"])
    if isinstance(d.get("reassurance"), dict) and d["reassurance"]:
        r = d["reassurance"]
        _text(r.get("class"), "reassurance.class", limit=200, empty=False)
        if r.get("class") not in names:
            raise SchemaError("reassurance.class is not one of class_names")
        _num(r.get("min_probability"), "reassurance.min_probability", 0.0, 1.0)
    if "validated" in d:
        validate_validated(d["validated"])
    size = validate_preprocess(d.get("preprocess", {}))
    validate_arch(arch, d.get("arch_kwargs", {}), "arch_kwargs", input_size=size)


def validate_int8(block: Any) -> None:
    """The static int8 calibration block: short texts, a bounded count of images, and per
    network (``members.K``) at most ``MAX_INT8_RANGES`` activation ranges ``[lo, hi]``,
    finite, ordered and within ``MAX_INT8_RANGE``."""
    b = _mapping(block, "int8")
    for key in ("method", "backend", "torch"):
        if key in b:
            _text(b[key], f"int8.{key}", limit=40)
    for key in ("images", "views"):
        if key in b:
            _int(b[key], f"int8.{key}", 0, 10_000_000)
    if "measured" in b:
        _mapping(b["measured"], "int8.measured")
    ranges = b.get("ranges", {})
    if not isinstance(ranges, dict) or len(ranges) > MAX_MEMBERS:
        raise SchemaError(f"int8.ranges must be a JSON object of at most {MAX_MEMBERS} networks")
    for net, obs in ranges.items():
        if not _INT8_NET.match(net):
            raise SchemaError(f"int8.ranges has a bad network name {_show(net)}")
        if not isinstance(obs, dict) or not 1 <= len(obs) <= MAX_INT8_RANGES:
            raise SchemaError(
                f"int8.ranges.{net} must map 1 to {MAX_INT8_RANGES} activations to ranges"
            )
        for name, pair in obs.items():
            where = f"int8.ranges.{net}.{str(name)[:40]}"
            if not _INT8_OBSERVER.match(name):
                raise SchemaError(f"{where} is not an activation name")
            if not isinstance(pair, list) or len(pair) != 2:
                raise SchemaError(f"{where} must be [low, high], got {_show(pair)}")
            lo = _num(pair[0], where, -MAX_INT8_RANGE, MAX_INT8_RANGE)
            hi = _num(pair[1], where, -MAX_INT8_RANGE, MAX_INT8_RANGE)
            if lo > hi:
                raise SchemaError(f"{where} has low {lo:g} above high {hi:g}")


VALIDATED_ARITHMETICS = ("float32", "bfloat16", "float16", "int8")
MAX_VALIDATED_KEYS = 64


def validate_validated(block: Any) -> None:
    """The validation record (``octviewer-train validate``): per arithmetic a JSON object
    with ``passed`` (true/false), optional ``reason`` (text), ``kind`` ("static"/"dynamic"),
    ``activation_bits`` (7 or 8), and at most 64 facts: counts and rates (finite numbers),
    short texts or small objects. Anything else is refused (the engine trusts ``passed``)."""
    b = _mapping(block, "validated")
    for name, rec in b.items():
        where = f"validated.{str(name)[:40]}"
        if name not in VALIDATED_ARITHMETICS:
            raise SchemaError(f"{where} is not an arithmetic ({', '.join(VALIDATED_ARITHMETICS)})")
        if not isinstance(rec, dict) or len(rec) > MAX_VALIDATED_KEYS:
            raise SchemaError(
                f"{where} must be a JSON object of at most {MAX_VALIDATED_KEYS} facts"
            )
        if not isinstance(rec.get("passed"), bool):
            raise SchemaError(f"{where}.passed must be true or false")
        if "kind" in rec and rec["kind"] not in ("static", "dynamic"):
            raise SchemaError(f"{where}.kind must be 'static' or 'dynamic'")
        if "activation_bits" in rec:
            _int(rec["activation_bits"], f"{where}.activation_bits", 7, 8)
        for key, value in rec.items():
            field = f"{where}.{str(key)[:40]}"
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, (int, float)):
                _num(value, field, -1e12, 1e12)
            elif isinstance(value, str):
                _text(value, field, limit=2000)
            else:
                _mapping(value, field)


def validate_layer_path(value: Any) -> str:
    """A dotted module path such as ``blocks.-1.norm1`` (no private or special attributes)."""
    path = _text(value, "cam_target_layer", limit=200, empty=False)
    bad = [p for p in path.split(".") if not _LAYER_PART.match(p)]
    if bad:
        raise SchemaError(
            f"cam_target_layer {path!r} is not a layer path (bad part {bad[0]!r}); "
            "expected names and indices such as 'blocks.-1.norm1'"
        )
    return path


def validate_preprocess(p: Any) -> tuple[int, int] | None:
    """The preprocessing block; returns the declared input size (None when absent)."""
    if not isinstance(p, dict):
        raise SchemaError(f"preprocess must be a JSON object, got {_show(p)}")
    size = None
    if "size" in p:
        s = p["size"]
        if not isinstance(s, list) or len(s) != 2:
            raise SchemaError(f"preprocess.size must be [rows, cols], got {_show(s)}")
        size = (
            _int(s[0], "preprocess.size[0]", *INPUT_SIZE),
            _int(s[1], "preprocess.size[1]", *INPUT_SIZE),
        )
    if "interpolation" in p and p["interpolation"] not in (
        "bilinear",
        "bicubic",
        "nearest",
        "area",
    ):
        raise SchemaError(f"preprocess.interpolation {_show(p['interpolation'])} is not known")
    if "normalization" in p and p["normalization"] not in ("minmax", "meanstd"):
        raise SchemaError(f"preprocess.normalization {_show(p['normalization'])} is not known")
    if "mean" in p:
        _num(p["mean"], "preprocess.mean", -1e3, 1e3)
    if "std" in p:
        _num(p["std"], "preprocess.std", 0.0, 1e3, open_lo=True)
    return size


def validate_arch(arch: str, kw: Any, field: str, *, input_size: tuple[int, int] | None) -> None:
    """``arch_kwargs`` for ``arch``: bounded widths and depths, known types, matching size."""
    if not isinstance(kw, dict):
        raise SchemaError(f"{field} must be a JSON object, got {_show(kw)}")
    if arch in ("mirage_base", "mirage_large", "mirage_vit"):
        _validate_vit(arch, kw, field, input_size)
    elif arch == "ensemble":
        _validate_ensemble(kw, field, input_size)
    elif arch.startswith("timm/"):
        if not _TIMM_NAME.match(arch[5:]):
            raise SchemaError(f"architecture {arch!r} is not a valid timm model name")
        _validate_free_kwargs(kw, field)
    # other names: refused by create_model with the list of known architectures


def _validate_vit(arch: str, kw: dict[str, Any], field: str, size: tuple[int, int] | None) -> None:
    fixed = arch != "mirage_vit"  # the variants' widths come from the code, not the file
    for key, (lo, hi) in VIT_BOUNDS.items():
        if key in kw and not fixed:
            _int(kw[key], f"{field}.{key}", lo, hi)
        elif not fixed:
            raise SchemaError(f"{field} has no '{key}' (needed by 'mirage_vit')")
    if not fixed and kw["embed_dim"] % kw["num_heads"]:
        raise SchemaError(f"{field}.embed_dim must be a multiple of num_heads")
    img = kw.get("img_size", 512)
    sides = img if isinstance(img, list) and len(img) == 2 else [img]
    img_hw = tuple(_int(v, f"{field}.img_size", *INPUT_SIZE) for v in sides)
    img_hw = img_hw * 2 if len(img_hw) == 1 else img_hw
    patch = _int(kw.get("patch_size", 32), f"{field}.patch_size", 1, min(img_hw))
    if img_hw[0] % patch or img_hw[1] % patch:
        raise SchemaError(f"{field}.img_size {img} is not a multiple of patch_size {patch}")
    if "mlp_ratio" in kw:
        _num(kw["mlp_ratio"], f"{field}.mlp_ratio", 0.0, 16.0, open_lo=True)
    for key in _VIT_FLAGS:
        if key in kw and not isinstance(kw[key], bool):
            raise SchemaError(f"{field}.{key} must be true or false, got {_show(kw[key])}")
    for key in _VIT_RATES:
        if key in kw:
            _num(kw[key], f"{field}.{key}", 0.0, 0.99)
    known = {*VIT_BOUNDS, "img_size", "patch_size", "mlp_ratio", *_VIT_FLAGS, *_VIT_RATES}
    _validate_free_kwargs({k: v for k, v in kw.items() if k not in known}, field)
    have = (size or (512, 512), img_hw)
    if have[0] != have[1] and not kw.get("dynamic_img_size"):
        raise SchemaError(
            f"the input size {have[0][0]}x{have[0][1]} (preprocess.size"
            f"{'' if size else ', absent: default'}) does not match the network's "
            f"{img_hw[0]}x{img_hw[1]} ({field}.img_size)"
        )


def _validate_ensemble(kw: dict[str, Any], field: str, size: tuple[int, int] | None) -> None:
    members = kw.get("members")
    if not isinstance(members, list) or not 2 <= len(members) <= MAX_MEMBERS:
        raise SchemaError(f"{field}.members must be a list of 2 to {MAX_MEMBERS} networks")
    if "hflip_tta" in kw and not isinstance(kw["hflip_tta"], bool):
        raise SchemaError(f"{field}.hflip_tta must be true or false")
    for i, spec in enumerate(members):
        where = f"{field}.members[{i}]"
        if not isinstance(spec, dict):
            raise SchemaError(f"{where} must be a JSON object, got {_show(spec)}")
        arch = _text(spec.get("architecture"), f"{where}.architecture", limit=200, empty=False)
        if arch == "ensemble":
            raise SchemaError(f"{where} is itself an ensemble")
        validate_arch(arch, spec.get("arch_kwargs") or {}, f"{where}.arch_kwargs", input_size=size)


def _validate_free_kwargs(kw: dict[str, Any], field: str) -> None:
    """Keyword arguments of a timm model: small scalars or short lists of them."""
    for key, value in kw.items():
        where = f"{field}.{key}"
        items = value if isinstance(value, list) else [value]
        if len(items) > 16:
            raise SchemaError(f"{where} has {len(items)} items, more than 16")
        hi = 64 if "depth" in key else 8192  # a block count builds Python objects: keep it small
        for v in items:
            if v is None or isinstance(v, bool):
                continue
            if isinstance(v, int):
                _int(v, where, -hi, hi)
            elif isinstance(v, float):
                _num(v, where, -1e6, 1e6)
            elif isinstance(v, str):
                _text(v, where, limit=200)
            else:
                raise SchemaError(f"{where} must be a number, text or a list of them")
