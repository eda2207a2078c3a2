"""Where inference runs: device choice, mixed precision and the CPU thread policy.

Thread policy, measured on a 2-core machine (see ``benchmarks/bench_engine.py`` and the MIRAGE
notes): with a busy neighbour process, spinning OpenMP threads on every core made a MIRAGE-Base
forward 6x slower, while one thread or passive OpenMP waiting stayed near 2x. So:

- ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it (:func:`prepare_environment`; it only
  takes effect if it runs before torch is imported — the GUI and CLI call it first);
- by default never all cores: 1 thread up to 2 usable CPUs, n-1 up to 4, then half the logical
  CPUs (about the physical cores) capped at 4; an explicit ``threads`` or ``OMP_NUM_THREADS``
  wins.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from octviewer.errors import AnalysisError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_MAX_DEFAULT_THREADS = 4
_malloc_trim: Any = None  # None: not looked up yet; False: unavailable


def prepare_environment() -> None:
    """Set passive OpenMP waiting unless configured; call before ``import torch``."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def release_free_memory() -> None:
    """Give memory that was freed back to the operating system now (glibc's ``malloc_trim``).

    glibc keeps freed blocks in its heaps; after many large short-lived tensors (e.g. float32
    weights replaced by int8 ones while a model loads) that is hundreds of MB counted against
    the process until something else reuses it. A no-op where glibc is not the C library.
    """
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            fn = getattr(libc, "malloc_trim", None)
            if fn is not None:
                fn.argtypes = [ctypes.c_size_t]
                fn.restype = ctypes.c_int
                _malloc_trim = fn
        except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl)
            pass
    if _malloc_trim:
        _malloc_trim(0)


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads(cpus: int | None = None) -> int:
    """The default number of intra-op threads for ``cpus`` usable CPUs (never all of 2-4)."""
    n = usable_cpus() if cpus is None else max(1, int(cpus))
    if n <= 2:
        return 1
    if n <= _MAX_DEFAULT_THREADS:
        return n - 1
    return max(1, min(_MAX_DEFAULT_THREADS, n // 2))


def configure_threads(threads: int | None = None) -> int:
    """Apply the thread policy to torch; returns the thread count in use."""
    import torch

    if threads is not None:
        n = max(1, int(threads))
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # the user decided
    else:
        n = default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def choose_device(preference: str = "auto") -> torch.device:
    """``"auto"``: CUDA, then Apple MPS, then CPU. Otherwise the named device, if present."""
    import torch

    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError as exc:
        raise AnalysisError(
            f"'{preference}' is not a device name. Use 'auto', 'cpu', 'cuda' or 'mps'."
        ) from exc
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (dev.index is None or dev.index < torch.cuda.device_count()),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }.get(dev.type, False)
    if not available:
        raise AnalysisError(
            f"The device '{preference}' is not available on this computer. "
            "Choose 'auto' (the best available) or 'cpu'."
        )
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision for a device: bf16 on CUDA when supported, else fp16; none on CPU/MPS."""
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None
