"""Which arithmetic an engine computes in: the fastest one validated for the bundle that this
machine supports, unless the user chose one.

A bundle records, per arithmetic, the decisions it was validated on (``ModelConfig.validated``,
written by ``octviewer-train validate``; schema in :mod:`octviewer.core.model.schema`)::

    {"int8": {"passed": true, "kind": "static", "activation_bits": 8, "images": 648, ...},
     "bfloat16": {"passed": true, ...}, "float32": {"passed": true, ...}}

Order on a CPU (fastest first): int8, when its record passed for the int8 kind this machine
builds (static convolutions from the bundle's calibration, else dynamic Linear layers) and the
activation width it uses (8-bit with VNNI, else 7-bit); bf16, on CPUs with native bf16
(AVX512-BF16/AMX) unless its record failed; fp32. A bundle without a record keeps what
octviewer did before records existed: bf16 where native, never int8. On CUDA: bf16 (fp16
where bf16 is missing); on MPS: fp32. Explicit choices win: ``quantize=True`` (``--int8``, app:
*Model > Device > int8*) runs int8 on the CPU; ``quantize=False`` never; ``precision="fp32"``
runs fp32. The choice and why the faster ones were passed over are logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from octviewer.core.device import autocast_dtype, check_precision, cpu_has_native_bf16

if TYPE_CHECKING:
    import torch

    from octviewer.core.model.config import ModelConfig

log = logging.getLogger(__name__)

#: The arithmetics a validation record names.
RECORDED = ("float32", "bfloat16", "float16", "int8")


@dataclass(frozen=True)
class Arithmetic:
    """The engine's arithmetic: ``name`` ("float32", "bfloat16", "float16" or "int8"), why,
    and whether the user asked for it."""

    name: str
    reason: str
    explicit: bool = False

    @property
    def int8(self) -> bool:
        return self.name == "int8"


def record(config: ModelConfig, name: str) -> dict[str, Any] | None:
    """The bundle's validation record for arithmetic ``name``, or None."""
    rec = (config.validated or {}).get(name)
    return rec if isinstance(rec, dict) else None


def int8_kind_here(config: ModelConfig) -> tuple[str, int | None]:
    """The int8 path this machine builds for ``config`` ("static" or "dynamic") and the
    static path's activation width here (None for dynamic)."""
    from octviewer.core.model.int8_static import calibration_for, reduce_range_here

    ranges, _ = calibration_for(config)
    if ranges is None:
        return "dynamic", None
    return "static", 7 if reduce_range_here() else 8


def int8_validated_here(config: ModelConfig) -> tuple[bool, str]:
    """Whether the bundle's int8 record passed for the int8 this machine computes; else why not."""
    rec = record(config, "int8")
    if rec is None:
        return False, "the bundle records no int8 validation"
    if rec.get("passed") is not True:
        why = str(rec.get("reason") or "no reason recorded")[:200]
        return False, f"its int8 validation did not pass ({why})"
    kind, bits = int8_kind_here(config)
    if rec.get("kind") != kind:
        return False, f"int8 was validated as {rec.get('kind')!r}; this machine builds {kind!r}"
    if bits is not None and rec.get("activation_bits") != bits:
        return False, (
            f"int8 was validated with {rec.get('activation_bits')}-bit activations; this CPU "
            f"computes {bits}-bit ones (no VNNI)"
        )
    images = f", {rec['images']} images" if isinstance(rec.get("images"), int) else ""
    return True, f"int8 validated ({kind}{images})"


def choose(
    config: ModelConfig, device: torch.device, precision: str, quantize: bool | None
) -> Arithmetic:
    """The arithmetic for ``config`` on ``device`` (see the module docstring)."""
    precision = check_precision(precision)
    if device.type != "cpu":
        if quantize:
            log.warning("int8 quantisation is a CPU option; ignored on %s", device)
        amp = autocast_dtype(device, precision)
        name = str(amp).removeprefix("torch.") if amp is not None else "float32"
        return Arithmetic(name, f"{device.type}: autocast" if amp is not None else device.type)
    if quantize:
        return Arithmetic("int8", "chosen by the user (--int8 / Model > Device)", explicit=True)
    if precision == "fp32":
        return Arithmetic("float32", "chosen by the user (--precision fp32)", explicit=True)
    passed_over = []
    if quantize is None:
        ok, why = int8_validated_here(config)
        if ok:
            return Arithmetic("int8", f"the fastest validated here: {why}")
        passed_over.append(f"not int8: {why}")
    bf16 = record(config, "bfloat16")
    if not cpu_has_native_bf16():
        passed_over.append("not bf16: this CPU has no native bf16 (AVX512-BF16/AMX)")
    elif bf16 is not None and bf16.get("passed") is not True:
        passed_over.append("not bf16: its validation did not pass")
    else:
        why = "validated" if bf16 is not None else "native on this CPU (no record)"
        return Arithmetic("bfloat16", "; ".join([f"bf16 {why}", *passed_over]))
    return Arithmetic("float32", "; ".join(passed_over) or "fp32")


def amp_dtype(name: str) -> torch.dtype | None:
    """The autocast dtype of an arithmetic (None: no autocast, for float32 and int8)."""
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(name)
