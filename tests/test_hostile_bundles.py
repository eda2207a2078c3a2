"""Damaged and hostile model bundles (issue 13): every one is refused with an octviewer error
that names the problem, before anything is built or run; nothing foreign escapes, nothing
hangs, and no NaN reaches a result. The property-based part (hypothesis) mutates the
safetensors header and the configuration of a real tiny bundle."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_models import TINY_VIT, make_tiny_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import octviewer
from octviewer.core.inference import AnalysisRequest
from octviewer.core.model.bundle import read_bundle_config
from octviewer.core.model.header import read_header
from octviewer.core.model.schema import SchemaError, loads_bounded, validate_config
from octviewer.core.scan import Modality, Scan, ScanMetadata
from octviewer.errors import AnalysisError, ModelError, ModelFormatError

RAW = {"1e400": "1e400", "-1e400": "-1e400", "NaN": "NaN"}  # JSON tokens Python accepts


def _dumps(value: Any) -> str:
    """JSON with the raw tokens of ``RAW`` (as the strings ``"RAW:1e400"``) unquoted."""
    text = json.dumps(value)
    for token in RAW:
        text = text.replace(f'"RAW:{token}"', token)
    return text


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header_text: str, body: bytes) -> bytes:
    raw = header_text.encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def rewrite(
    src: Path,
    dst: Path,
    *,
    header: Callable[[dict[str, Any]], None] | None = None,
    config: Callable[[dict[str, Any]], None] | None = None,
    body: Callable[[bytes], bytes] | None = None,
) -> Path:
    """A copy of bundle ``src`` with its header, configuration or tensor bytes edited."""
    head, data = _split(src.read_bytes())
    cfg = json.loads(head["__metadata__"]["octviewer.config"])
    if config is not None:
        config(cfg)
    head["__metadata__"]["octviewer.config"] = _dumps(cfg)
    if header is not None:
        header(head)
    dst.write_bytes(_join(_dumps(head), body(data) if body else data))
    return dst


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    return {dt: make_tiny_bundle(d / f"{dt}.safetensors", dtype=dt) for dt in ("float32", "int8")}


def _scan() -> Scan:
    frames = (np.random.default_rng(0).random((1, 64, 64)) * 255).astype(np.uint8)
    return Scan(frames, ScanMetadata(source_paths=(), format="test", modality=Modality.OCT_BSCAN))


def _refused(path: Path, match: str | None = None) -> ModelError:
    with pytest.raises(ModelError, match=match) as info:
        octviewer.load_model(path, device="cpu")
    return info.value


# --- the findings of issue 13, one by one ---------------------------------------------------
@pytest.mark.parametrize("where", ["header", "config"])
def test_deeply_nested_json_is_refused(
    bundles: dict[str, Path], tmp_path: Path, where: str
) -> None:
    head, body = _split(bundles["float32"].read_bytes())
    bomb = "[" * 100_000
    if where == "header":
        text = '{"__metadata__": {}, "x": ' + bomb + "}"
    else:
        head["__metadata__"]["octviewer.config"] = '{"a": ' + bomb + "}"
        text = json.dumps(head)
    p = tmp_path / "nest.safetensors"
    p.write_bytes(_join(text, body))
    assert "nested too deeply" in str(_refused(p))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("data_offsets", {}),
        ("data_offsets", ["RAW:NaN", 4]),
        ("data_offsets", [0, "RAW:1e400"]),
        ("data_offsets", [0, 3]),  # does not fit the shape
        ("shape", ["RAW:1e400"]),
        ("shape", [-1]),
        ("dtype", ["F32"]),  # unhashable
        ("dtype", "F128"),
    ],
)
def test_damaged_tensor_entry(
    bundles: dict[str, Path], tmp_path: Path, field: str, value: Any
) -> None:
    def edit(h: dict[str, Any]) -> None:
        h["cls_token"][field] = value

    p = rewrite(bundles["float32"], tmp_path / "e.safetensors", header=edit)
    err = _refused(p, match="damaged")
    assert "cls_token" in str(err) and isinstance(err, ModelFormatError)


@pytest.mark.parametrize("shape", [[], {}, [0], [2**40]])
def test_int8_scale_shape(bundles: dict[str, Path], tmp_path: Path, shape: Any) -> None:
    def edit(h: dict[str, Any]) -> None:
        name = next(k for k in h if k.startswith("__int8_scale__."))
        h[name]["shape"] = shape

    _refused(rewrite(bundles["int8"], tmp_path / "s.safetensors", header=edit))


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda c: c["preprocess"].update(size=["RAW:1e400", 64]), "preprocess.size"),
        (lambda c: c["preprocess"].update(std=0), "preprocess.std"),
        (lambda c: c.update(cam_target_layer=None), "cam_target_layer"),
        (lambda c: c.update(cam_target_layer=3), "cam_target_layer"),
        (lambda c: c.update(cam_target_layer=["blocks"]), "cam_target_layer"),
        (lambda c: c.update(cam_target_layer="__class__"), "cam_target_layer"),
        (lambda c: c.update(temperature="RAW:NaN"), "temperature"),
        (lambda c: c.update(class_names=["A"]), "class_names"),
        (lambda c: c.update(provenance=[1]), "provenance"),
        (lambda c: c.update(ood="x"), "ood"),
        (lambda c: c.update(training_domain={"a": "b" * 300_000}), "training_domain"),
        (lambda c: c["arch_kwargs"].update(patch_size=0), "patch_size"),
        (lambda c: c["arch_kwargs"].update(num_heads=0), "num_heads"),
        (lambda c: c["arch_kwargs"].update(embed_dim=-1), "embed_dim"),
        (lambda c: c["arch_kwargs"].update(img_size=[]), "img_size"),
        (lambda c: c["arch_kwargs"].update(mlp_ratio="RAW:1e400"), "mlp_ratio"),
        (lambda c: c["arch_kwargs"].update(depth=[1e9, 1e9]), "depth"),
        (lambda c: c["arch_kwargs"].update(depth=1_000_000), "depth"),  # was a hang
        (lambda c: c["preprocess"].pop("size"), "input size"),  # 512 default vs 64 network
        (
            lambda c: c.update(
                arch_kwargs={
                    "members": [{"architecture": "timm/test_resnet", "arch_kwargs": [1]}] * 2
                },
                architecture="ensemble",
            ),
            "members",
        ),
    ],
)
def test_invalid_configuration_names_the_field(
    bundles: dict[str, Path], tmp_path: Path, edit: Callable[[dict[str, Any]], None], names: str
) -> None:
    p = rewrite(bundles["float32"], tmp_path / "c.safetensors", config=edit)
    err = _refused(p)
    assert names in str(err) and "Re-create the bundle" in str(err)
    with pytest.raises(ModelFormatError):
        read_bundle_config(p)  # refused before any network is built


def test_optional_mappings_of_the_lead_are_accepted(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["ood"] = {"method": "mahalanobis", "threshold": 3.2, "rates": [0.01, 0.05]}
        c["training_domain"] = {"manufacturers": ["Heidelberg"], "scan_type": "b-scan"}

    def extra_tensor(h: dict[str, Any]) -> None:  # an `__ood__.` statistic stored after the weights
        end = max(v["data_offsets"][1] for k, v in h.items() if k != "__metadata__")
        h["__ood__.mean"] = {"dtype": "F32", "shape": [2], "data_offsets": [end, end + 8]}

    p = rewrite(bundles["float32"], tmp_path / "ood.safetensors", config=edit)
    assert read_bundle_config(p).name == "tiny-test-model"
    q = rewrite(p, tmp_path / "ood2.safetensors", header=extra_tensor, body=lambda b: b + bytes(8))
    assert read_bundle_config(q).name == "tiny-test-model"  # the header checks pass it
    head = read_header(q)
    assert head.tensors["__ood__.mean"]["shape"] == [2]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 3e38])
def test_non_finite_weights_are_refused(
    bundles: dict[str, Path], tmp_path: Path, value: float
) -> None:
    head, _ = _split(bundles["float32"].read_bytes())
    start = head["cls_token"]["data_offsets"][0]

    def poison(b: bytes) -> bytes:
        return b[:start] + struct.pack("<f", value) + b[start + 4 :]

    p = rewrite(bundles["float32"], tmp_path / "nan.safetensors", body=poison)
    assert "cls_token" in str(_refused(p, match="not numbers|absurdly large"))


def test_cam_target_only_resolves_real_layers() -> None:
    from octviewer.core.model.architectures import create_model, get_submodule

    model = create_model("mirage_vit", 4, meta=True, **TINY_VIT)
    assert get_submodule(model, "blocks.-1.norm1") is model.blocks[-1].norm1
    for bad in ("__class__", "forward", "blocks.99", "blocks.-1.norm1.weight", "", None, 3):
        with pytest.raises(ModelFormatError):
            get_submodule(model, bad)  # type: ignore[arg-type]


def test_non_finite_output_is_an_error_not_a_result(bundles: dict[str, Path]) -> None:
    import torch

    engine = octviewer.load_model(bundles["float32"], device="cpu")
    with torch.no_grad():
        engine.model.head.bias.fill_(float("nan"))  # damage that slipped past the file checks
    with pytest.raises(AnalysisError, match="invalid class probabilities"):
        engine.analyze(_scan(), AnalysisRequest(cam=False))
    with pytest.raises(AnalysisError, match="invalid"):
        engine.analyze(_scan(), AnalysisRequest(cam=True))


def test_foreign_inference_errors_keep_their_cause(bundles: dict[str, Path]) -> None:
    engine = octviewer.load_model(bundles["float32"], device="cpu")

    def broken(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("Input height (512) doesn't match model (64).")

    engine._cam.forward = broken  # type: ignore[method-assign]
    with pytest.raises(AnalysisError, match=r"AssertionError: Input height \(512\)"):
        engine.analyze(_scan())


def test_schema_accepts_what_save_bundle_writes(bundles: dict[str, Path]) -> None:
    d = json.loads(read_bundle_config(bundles["int8"]).to_json())
    validate_config(d)
    d["arch_kwargs"]["depth"] = 65
    with pytest.raises(SchemaError, match="depth"):
        validate_config(d)


def test_loads_bounded_limits() -> None:
    with pytest.raises(SchemaError, match="more than"):
        loads_bounded("[]" + " " * 100, what="x", max_bytes=10)
    with pytest.raises(SchemaError, match="levels deep"):
        loads_bounded("[" * 20 + "]" * 20, what="x")
    assert loads_bounded('{"a": [1, {"b": 2}]}', what="x") == {"a": [1, {"b": 2}]}


# --- property-based: any mutation of header or configuration -----------------------------
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["RAW:1e400", "RAW:-1e400", "RAW:NaN", "__class__", "", "x" * 300]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(min_value=-5, max_value=10**10), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.recursive(st.integers(), lambda c: st.lists(c, max_size=2), max_leaves=6),
)
CONFIG_KEYS = st.sampled_from(
    ["name", "version", "architecture", "class_names", "temperature", "confidence_threshold",
     "cam_target_layer", "weights_dtype", "provenance", "metrics", "preprocess", "arch_kwargs",
     "preprocess.size", "preprocess.interpolation", "preprocess.normalization",
     "preprocess.mean", "preprocess.std", "arch_kwargs.embed_dim", "arch_kwargs.depth",
     "arch_kwargs.num_heads", "arch_kwargs.img_size", "arch_kwargs.patch_size",
     "arch_kwargs.mlp_ratio", "arch_kwargs.qkv_bias", "arch_kwargs.reg_tokens"]
)  # fmt: skip
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _outcome(path: Path) -> str:
    """Load and analyse: 'ok' with finite results, or 'refused' with an octviewer error."""
    try:
        engine = octviewer.load_model(path, device="cpu")
        result = engine.analyze(_scan())
    except (ModelError, AnalysisError) as exc:
        assert len(str(exc)) > 30  # a sentence, not a bare exception name
        return "refused"
    for frame in result.frames:
        assert np.isfinite(frame.probabilities).all() and np.isfinite(frame.cam).all()
    return "ok"


@FUZZ
@given(key=CONFIG_KEYS, value=HOSTILE, dtype=st.sampled_from(["float32", "int8"]))
def test_any_config_value(
    bundles: dict[str, Path], tmp_path: Path, key: str, value: Any, dtype: str
) -> None:
    def edit(c: dict[str, Any]) -> None:
        outer, _, inner = key.partition(".")
        if inner:
            c[outer][inner] = value
        else:
            c[outer] = value

    _outcome(rewrite(bundles[dtype], tmp_path / "h.safetensors", config=edit))


@FUZZ
@given(
    data=st.data(),
    field=st.sampled_from(["data_offsets", "shape", "dtype"]),
    value=HOSTILE,
    dtype=st.sampled_from(["float32", "int8"]),
)
def test_any_header_entry(
    bundles: dict[str, Path],
    tmp_path: Path,
    data: st.DataObject,
    field: str,
    value: Any,
    dtype: str,
) -> None:
    names = sorted(k for k in _split(bundles[dtype].read_bytes())[0] if k != "__metadata__")
    name = data.draw(st.sampled_from(names))

    def edit(h: dict[str, Any]) -> None:
        h[name][field] = value

    _outcome(rewrite(bundles[dtype], tmp_path / "t.safetensors", header=edit))


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8)
)
def test_any_byte_flips(
    bundles: dict[str, Path], tmp_path: Path, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(bundles["float32"].read_bytes())
    head_len = 8 + struct.unpack("<Q", data[:8])[0]
    for where, byte in flips:
        data[where % (head_len + 64)] = byte  # the header and the first tensor bytes
    p = tmp_path / "f.safetensors"
    p.write_bytes(bytes(data))
    _outcome(p)
