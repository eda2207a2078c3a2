"""Static int8 for CNN ensembles: every member's convolutional backbone in int8, calibrated
once by ``octviewer-train int8`` and stored in the bundle's configuration (``config.int8``).

Why this form (torch 2.14, x86 CPUs): ``torch.ao.quantization`` FX graph mode
(``prepare_fx``/``convert_fx`` with the ``x86`` qconfig mapping) gives quantised convolutions
that run on fbgemm/oneDNN kernels shipped inside torch: no C++ compiler at run time, which the
packaged app does not have (PT2E + ``X86InductorQuantizer`` lowers through ``torch.compile``
and inductor's C++ code generation). ``torch.ao.quantization`` is deprecated in favour of
torchao in torch 2.14 but still works; its warnings are silenced here.

What is quantised: ``member.forward_features`` of each ensemble member, i.e. everything before
the CAM layer ``stack``. The members' heads (global pooling and the classifier) stay float32,
so the one-pass Grad-CAM (gradients from ``stack`` on) and the OOD feature hooks on the
classifier inputs work unchanged.

Calibration block (``config.int8``, JSON, checked by :mod:`.schema`)::

    {"method": "static-fx", "backend": "x86", "images": 256, "views": 2,
     "ranges": {"members.0": {"activation_post_process_0": [lo, hi], ...}, ...}}

``ranges`` are the activation ranges the calibration's histogram observers chose (8-bit
search); at load the same graph is prepared with min/max observers set to these ranges, so the
quantisation parameters are those of the calibration and no image is needed: 8-bit activations
on CPUs with VNNI, 7-bit (torch's overflow-safe x86 default) on the others
(:func:`reduce_range_here`). A graph whose observers do not
match the stored names (another torch version) falls back to the dynamic path, with the reason
logged.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from octviewer.core.model.config import ModelConfig

log = logging.getLogger(__name__)

METHOD = "static-fx"
BACKEND = "x86"
_OBSERVER_PREFIX = "activation_post_process_"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.ao's deprecation and observer warnings (deprecated in 2.14, still working)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantiz.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*observer.*", category=UserWarning)
        yield


def _features_module(member: torch.nn.Module) -> torch.nn.Module:
    """A module whose forward is ``member.forward_features`` (what FX traces)."""
    from torch import nn

    class Features(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.forward_features(x)

    return Features(member).eval()


def reduce_range_here() -> bool:
    """7-bit activations (``reduce_range``) unless this CPU has VNNI: without it, fbgemm's
    AVX2 kernels add pairs of u8 x s8 products in int16, which full 8-bit activations can
    overflow (torch's x86 default is 7-bit everywhere for that reason). With VNNI (AVX512-VNNI,
    AVX-VNNI, AMX) 8-bit activations are exact and, measured here, about 3x closer to fp32."""
    import torch

    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    try:
        return not (callable(probe) and bool(probe()))
    except (RuntimeError, AttributeError):
        return True


def _qconfig_mapping(calibrating: bool, reduce_range: bool) -> Any:
    """The x86 mapping: histogram observers while calibrating (8-bit search), min/max
    observers filled from the stored ranges at load (8 or 7 bits: :func:`reduce_range_here`);
    unsigned activations, per-channel symmetric int8 weights."""
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import (
        HistogramObserver,
        MinMaxObserver,
        default_per_channel_weight_observer,
    )

    observer = HistogramObserver if calibrating else MinMaxObserver
    qconfig = QConfig(
        activation=observer.with_args(reduce_range=reduce_range),
        weight=default_per_channel_weight_observer,
    )
    return get_default_qconfig_mapping(BACKEND).set_global(qconfig)


def prepare(
    member: torch.nn.Module,
    size: tuple[int, int],
    *,
    calibrating: bool,
    reduce_range: bool = False,
) -> Any:
    """The member's backbone traced and fused, with observers (a ``GraphModule``).
    Calibration searches 8-bit ranges; the same ranges serve 7-bit activations at load."""
    import torch
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = BACKEND
    # No stack traces on the graph's nodes: recording them imports torch.export and inductor
    # (seconds, and networkx, which the packaged app leaves out) for nothing we use.
    import torch.fx.config as fx_config

    before = getattr(fx_config, "do_not_emit_stack_traces", False)
    fx_config.do_not_emit_stack_traces = True  # read by the tracer prepare_fx creates
    try:
        with _quiet():
            return prepare_fx(
                _features_module(member),
                _qconfig_mapping(calibrating, reduce_range and not calibrating),
                (torch.zeros(1, 1, *size),),
            )
    finally:
        fx_config.do_not_emit_stack_traces = before


def _observers(prepared: torch.nn.Module) -> dict[str, Any]:
    return {n: m for n, m in prepared.named_children() if n.startswith(_OBSERVER_PREFIX)}


def observed_ranges(prepared: torch.nn.Module) -> dict[str, list[float]]:
    """The activation ranges a calibrated ``prepare(..., calibrating=True)`` graph chose."""
    import math

    out: dict[str, list[float]] = {}
    for name, obs in _observers(prepared).items():
        search = getattr(obs, "_non_linear_param_search", None)
        with _quiet():
            lo, hi = search() if callable(search) else (obs.min_val, obs.max_val)
        pair = [float(lo), float(hi)]
        if not all(math.isfinite(v) for v in pair):
            raise ValueError(f"activation {name} saw no data during calibration")
        out[name] = pair
    return out


def load_ranges(prepared: torch.nn.Module, ranges: dict[str, list[float]]) -> None:
    """Set a ``prepare(..., calibrating=False)`` graph's observers to stored ranges."""
    import torch

    obs = _observers(prepared)
    if set(obs) != set(ranges):
        missing = sorted(set(obs) - set(ranges))[:2]
        extra = sorted(set(ranges) - set(obs))[:2]
        raise ValueError(
            f"the stored calibration does not fit this torch's graph ({len(obs)} activations, "
            f"{len(ranges)} stored; e.g. missing {missing}, unknown {extra})"
        )
    for name, (lo, hi) in ranges.items():
        obs[name].min_val = torch.tensor(float(lo))
        obs[name].max_val = torch.tensor(float(hi))


def convert(prepared: torch.nn.Module) -> torch.nn.Module:
    """The int8 graph of a prepared one, holding nothing of the float network.

    torch.ao keeps the float modules alive twice over: the nodes' ``target_dtype_info`` meta
    holds observer constructors whose closures reference the original layers, and
    ``assert_and_get_unique_device`` is a ``functools.cache`` keyed by every (prepared,
    reference) graph it saw. Measured on the default model: 339 MiB of float32 weights stayed
    resident after loading until both are cleared (the graph's code is already generated; the
    meta is not used to run it)."""
    from torch.ao.quantization.quantize_fx import convert_fx

    with _quiet():
        out = convert_fx(prepared)
    for graph_module in (out, prepared):
        for node in graph_module.graph.nodes:
            node.meta.clear()
        graph_module.meta.clear()
    _clear_torch_cache()
    return out


def _clear_torch_cache() -> None:
    try:
        from torch.ao.quantization.fx import utils as fx_utils
    except ImportError:
        return
    clear = getattr(getattr(fx_utils, "assert_and_get_unique_device", None), "cache_clear", None)
    if callable(clear):
        clear()


def install(member: torch.nn.Module, features: torch.nn.Module) -> None:
    """Make ``member.forward_features`` the int8 graph and free the float backbone.

    The graph is registered as the submodule ``int8_features`` (``.to()``, ``named_modules``
    see it) and set as the instance's ``forward_features``, which the ensemble calls; the
    member's own head (``forward_head``, ``get_classifier``) is untouched."""
    import torch.fx

    traced = torch.fx.symbolic_trace(_features_module(member))  # before fusion: every layer
    used = {
        str(n.target).split(".")[1]
        for n in traced.graph.nodes
        if n.op == "call_module" and str(n.target).startswith("net.")
    }
    for name in used:
        if name in member._modules:
            setattr(member, name, None)  # float weights freed: the int8 graph holds copies
    member.add_module("int8_features", features)
    member.__dict__["forward_features"] = features


def calibration_for(config: ModelConfig) -> tuple[dict[str, dict[str, list[float]]] | None, str]:
    """The stored ranges per member, or None and the reason the static path does not apply."""
    block = config.int8 or {}
    if not block:
        return None, "the bundle has no int8 calibration (add it with `octviewer-train int8`)"
    if block.get("method") != METHOD or block.get("backend") != BACKEND:
        return None, (
            f"the bundle's int8 calibration is of another kind ({block.get('method')!r}, "
            f"{block.get('backend')!r}); this version knows {METHOD!r} for {BACKEND!r}"
        )
    if config.architecture != "ensemble":
        return None, "static int8 is implemented for ensembles of CNN members only"
    n = len(config.arch_kwargs.get("members") or [])
    ranges = block.get("ranges") or {}
    want = {f"members.{k}" for k in range(n)}
    if set(ranges) != want:
        return None, f"the int8 calibration covers {sorted(ranges)}, not the members {sorted(want)}"
    if "x86" not in _engines():
        return None, "this torch has no x86 quantised kernels"
    return ranges, ""


def _engines() -> list[str]:
    import torch

    return list(torch.backends.quantized.supported_engines)


class StaticInt8Unavailable(RuntimeError):
    """The static path could not be built for this bundle here; the caller falls back."""


class StaticInt8:
    """The ``load_bundle`` hook of the static int8 path: each member is quantised as soon as
    its float weights are in (so the float backbone is freed before the next is read).

    Same interface as :class:`~octviewer.core.model.int8.DynamicInt8` for the engine; nothing
    is swapped for CAM passes (the heads after ``stack`` are float32)."""

    kind = "static"

    def __init__(
        self,
        ranges: dict[str, dict[str, list[float]]],
        size: tuple[int, int],
        reduce_range: bool | None = None,
    ) -> None:
        """``reduce_range``: 7-bit activations (None: as this CPU needs, :func:`reduce_range_here`)."""
        self._ranges = ranges
        self._size = size
        self.reduce_range = reduce_range_here() if reduce_range is None else reduce_range
        self.activation_bits = 7 if self.reduce_range else 8
        self.cam_target: str | None = None
        self.fp32_tail: dict[str, torch.nn.Module] = {}
        self.done: set[str] = set()

    def on_unit(self, prefix: str, unit: torch.nn.Module, model: torch.nn.Module) -> None:
        from octviewer.core.device import release_free_memory

        if prefix not in self._ranges:
            return
        try:
            prepared = prepare(unit, self._size, calibrating=False, reduce_range=self.reduce_range)
            load_ranges(prepared, self._ranges[prefix])
            features = convert(prepared)
        except (
            ValueError,
            RuntimeError,
            TypeError,
            AttributeError,
            NotImplementedError,
            ImportError,  # a frozen app without a module torch.fx wants: fall back, not crash
        ) as exc:
            # torch.fx's TraceError is a ValueError: a member FX cannot trace, or a graph
            # whose activations are not those the calibration stored
            raise StaticInt8Unavailable(f"{prefix}: {str(exc)[:300]}") from exc
        install(unit, features)
        del prepared, features
        self.done.add(prefix)
        gc.collect()  # the float layers sit in the fx graphs' reference cycles
        release_free_memory()

    def finish(self, model: torch.nn.Module) -> None:
        missing = set(self._ranges) - self.done
        if missing:
            raise StaticInt8Unavailable(f"members {sorted(missing)} were not quantised")

    @contextlib.contextmanager
    def cam_ready(self, model: torch.nn.Module) -> Iterator[None]:
        yield


def load_int8(
    path: Any,
    device: str,
    config: ModelConfig,
    cam_target_of: Any,
    head: Any = None,
    reduce_range: bool | None = None,
) -> tuple[Any, Any]:
    """``load_bundle`` with int8: the static path when the bundle carries a calibration that
    fits, else the dynamic Linear-only path (:class:`~.int8.DynamicInt8`), the reason logged.
    ``head``: the caller's parsed header (``read_bundle_head``), passed on to ``load_bundle``.
    Returns ``(loaded, hook)``; ``hook.kind`` is ``"static"`` or ``"dynamic"``."""
    from octviewer.core.model.bundle import load_bundle
    from octviewer.core.model.int8 import DynamicInt8

    size = tuple(config.preprocess.size)
    ranges, reason = calibration_for(config)
    if ranges is not None:
        static = StaticInt8(ranges, size, reduce_range)
        try:
            loaded = load_bundle(path, device=device, on_unit=static.on_unit, head=head)
            static.finish(loaded.model)
            log.info(
                "int8: static int8 backbones (%d members, %d-bit activations)",
                len(static.done),
                static.activation_bits,
            )
            return loaded, static
        except StaticInt8Unavailable as exc:
            reason = f"the static int8 graph could not be built ({exc})"
    log.info("int8: dynamic int8 Linear layers only; %s", reason)
    dynamic = DynamicInt8(cam_target_of, size)
    loaded = load_bundle(path, device=device, on_unit=dynamic.on_unit, head=head)
    dynamic.finish(loaded.model)
    return loaded, dynamic
