"""All of octviewer's int8: the stored weight-only format of a bundle and the dynamic int8
Linear layers of ``Engine(quantize=True)``.

- Stored (``save_bundle(dtype="int8")``): every weight matrix and convolution kernel of at
  least ``INT8_MIN_ELEMENTS`` values is kept as symmetric per-output-channel int8, its float32
  scales under ``SCALE_PREFIX + name``; loading dequantises to float32.
- Dynamic (CPU fast path): :func:`quantize_linears` swaps each ``nn.Linear`` of a freshly
  loaded piece of the network for a dynamic int8 one; the layers after the CAM target are
  kept as float32 modules for CAM passes (int8 layers have no backward).

torch is imported inside the functions: the bundle header code imports this module without it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

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
