"""All of octviewer's int8: the stored weight-only format of a bundle and the dynamic int8
Linear layers of ``Engine(quantize=True)``.

- Stored (``save_bundle(dtype="int8")``): every weight matrix and convolution kernel of at
  least ``INT8_MIN_ELEMENTS`` values is kept as symmetric per-output-channel int8, its float32
  scales under ``SCALE_PREFIX + name``; loading dequantises to float32.
- Dynamic (CPU fast path): :func:`quantize_linears` swaps each ``nn.Linear`` of a freshly
  loaded piece of the network for a dynamic int8 one; the layers that run after the CAM target
  (traced on the meta device, :func:`modules_run_after`) are kept as float32 modules for CAM
  passes (int8 layers have no backward).

torch is imported inside the functions: the bundle header code imports this module without it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SCALE_PREFIX = "__int8_scale__."
INT8_MIN_ELEMENTS = 256  # smaller tensors are not worth a scale vector: float16


def quantisable(t: torch.Tensor) -> bool:
    return t.ndim >= 2 and t.numel() >= INT8_MIN_ELEMENTS


def quantise_int8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: ``(q, scale)`` with ``t ~= q * scale[:, None, ...]``."""
    import torch

    flat = t.detach().float().reshape(t.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(flat / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(t.shape).contiguous(), scale.contiguous()


def dequantise_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (q.float().reshape(q.shape[0], -1) * scale.float()[:, None]).reshape(q.shape)


def quantize_linears(
    prefix: str, unit: torch.nn.Module, model: torch.nn.Module, keep_fp32: set[str]
) -> dict[str, torch.nn.Module]:
    """Swap each ``nn.Linear`` of ``unit`` (named ``prefix`` in ``model``) for a dynamic int8
    one. Returns the float32 layers named in ``keep_fp32`` (by full name), kept for CAM passes;
    the float32 weights of the others are freed at once."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    kept: dict[str, torch.nn.Module] = {}
    for name, layer in list(unit.named_modules()):
        if type(layer) is not torch.nn.Linear:  # quantize_dynamic's own rule (exact type)
            continue
        full = f"{prefix}.{name}" if name else prefix
        holder = torch.nn.Sequential(layer).eval()
        with warnings.catch_warnings():  # deprecated in torch 2.14 (torchao), still works
            warnings.filterwarnings("ignore", message=".*quantiz.*", category=UserWarning)
            warnings.filterwarnings(
                "ignore",
                message="torch.ao.quantization is deprecated",
                category=DeprecationWarning,
            )
            quantize_dynamic(holder, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        model.set_submodule(full, holder[0])
        if full in keep_fp32:
            kept[full] = layer.eval()
        else:
            # quantize_dynamic leaves the float layer in a reference cycle: free its
            # weights now rather than at the next garbage collection.
            for pname in [n for n, _ in layer.named_parameters(recurse=False)]:
                delattr(layer, pname)
    return kept


def modules_run_after(
    model: torch.nn.Module, target: str, size: tuple[int, int]
) -> set[str] | None:
    """Names of the modules whose forward starts after ``target``'s has finished, traced by
    one forward of the (still meta-device) network on a meta input of ``size``; None when the
    network cannot be traced on meta (then the registration order is all there is).

    The registration order alone is wrong for an ensemble: its CAM layer ``stack`` is
    registered after the members, but each member's classifier runs after it."""
    import torch

    names = {m: n for n, m in model.named_modules()}
    finished = [False]
    after: set[str] = set()

    def pre(module: torch.nn.Module, _inp: object) -> None:
        if finished[0]:
            after.add(names[module])

    def post(_m: torch.nn.Module, _inp: object, _out: object) -> None:
        finished[0] = True

    handles = [m.register_forward_pre_hook(pre) for m in names]
    handles.append(model.get_submodule(target).register_forward_hook(post))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, *size, device="meta"))
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        log.debug("int8: the network could not be traced on meta (%s)", exc)
        return None
    finally:
        for h in handles:
            h.remove()
    return after if finished[0] else None


class DynamicInt8:
    """The int8 state of ``Engine(quantize=True)``: :meth:`on_unit` is the ``load_bundle`` hook,
    :meth:`cam_ready` puts the kept float32 layers in place for a CAM pass.

    ``cam_target_of(model)`` names the CAM layer; the Linear layers after it (``fp32_tail``)
    keep a float32 copy, because int8 layers have no backward."""

    kind = "dynamic"

    def __init__(
        self, cam_target_of: Callable[[torch.nn.Module], str], input_size: tuple[int, int]
    ) -> None:
        self._cam_target_of = cam_target_of
        self._input_size = input_size
        self.cam_target: str | None = None  # resolved on the first on_unit call
        self.tail_names: set[str] | None = None
        self.fp32_tail: dict[str, torch.nn.Module] = {}
        self.int8_tail: dict[str, torch.nn.Module] = {}

    def on_unit(self, prefix: str, unit: torch.nn.Module, model: torch.nn.Module) -> None:
        """``load_bundle`` hook: swap each ``nn.Linear`` of a freshly loaded piece for a dynamic
        int8 one, so its float32 weights are freed before the next piece is read (peak memory
        about the int8 model, not float32 + int8 copies). The Linear layers after the CAM target
        also stay as float32 modules, swapped in for CAM passes (int8 layers have no backward).
        """
        from octviewer.core.device import release_free_memory
        from octviewer.core.model.architectures import resolve_module_name

        if self.tail_names is None:  # first call: the network is complete, still on meta
            self.cam_target = self._cam_target_of(model)
            target = resolve_module_name(model, self.cam_target)
            names = [n for n, _ in model.named_modules()]
            self.tail_names = set(names[names.index(target) + 1 :])
            self.tail_names |= modules_run_after(model, target, self._input_size) or set()
        if not prefix:  # the root piece: only the root's own tensors are filled
            return
        self.fp32_tail.update(quantize_linears(prefix, unit, model, self.tail_names))
        release_free_memory()  # else the freed float32 weights stay in the C heap (~300 MB)

    def finish(self, model: torch.nn.Module) -> None:
        """After loading: remember the int8 layers the float32 tail replaces during CAM passes."""
        self.int8_tail = {n: model.get_submodule(n) for n in self.fp32_tail}

    @contextlib.contextmanager
    def cam_ready(self, model: torch.nn.Module) -> Iterator[None]:
        """For a CAM pass on an int8 model, put the fp32 layers after the target in place."""
        if not self.fp32_tail:
            yield
            return
        for n, m in self.fp32_tail.items():
            model.set_submodule(n, m)
        try:
            yield
        finally:
            for n, m in self.int8_tail.items():
                model.set_submodule(n, m)
