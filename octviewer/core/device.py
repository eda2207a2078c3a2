"""Where inference runs: device choice, mixed precision and the CPU thread policy.

Thread policy, measured on a 2-core machine (see ``benchmarks/bench_engine.py`` and the MIRAGE
notes): with a busy neighbour process, spinning OpenMP threads on every core made a MIRAGE-Base
forward 6x slower, while one thread or passive OpenMP waiting stayed near 2x. So:

- ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it (:func:`prepare_environment`; it only
  takes effect if it runs before torch is imported — the GUI and CLI call it first);
- by default never all cores: 1 thread up to 2 usable CPUs, n-1 up to 4, then half the logical
  CPUs (about the physical cores) capped at 4; an explicit ``threads`` or ``OMP_NUM_THREADS``
  wins.

Precision: bf16 autocast on CUDA, and on CPUs that compute bf16 natively (AVX512-BF16 or
AMX, read from the CPU flags); plain fp32 elsewhere and whenever ``precision="fp32"``.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path
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


def freeze_heap() -> None:
    """Take every object alive now out of the cyclic garbage collector's full passes
    (``gc.freeze``); objects made later are collected as usual.

    The viewer calls it once a model is ready: torch, timm, Qt's wrappers and the network are
    about 410,000 objects that every automatic full collection walks, 370 ms measured on the
    GUI thread (the longest stall of a session with many scans open); after the freeze a full
    collection of what the session adds takes milliseconds. The cost: cyclic garbage that
    exists at the freeze is never collected (a few objects of start-up).
    """
    import gc

    gc.freeze()


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


#: how much a background job's thread yields to the window's (Linux nice steps)
BACKGROUND_NICENESS = 5


def lower_thread_priority(niceness: int = BACKGROUND_NICENESS) -> bool:
    """Make the calling thread (and the OpenMP threads it starts later) yield the CPU to the
    GUI thread: raise its nice value by ``niceness`` (Linux, where nice is per thread; the
    change lasts for the thread's life). Returns whether it was applied; elsewhere a no-op.

    On two cores the model's thread and two file-reading threads beside the GUI thread made
    the window wait for a core while it drew (stalls of 50 ms in the soak); at nice 5 the
    scheduler gives the GUI thread about three times their weight when it wakes."""
    import sys
    import threading

    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + niceness))
    except OSError:  # a sandbox that forbids it: the job runs as before
        log.debug("could not lower the priority of a worker thread", exc_info=True)
        return False
    return True


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


PRECISIONS = ("auto", "fp32")
#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic: AVX512-BF16 (Cooper Lake, Zen 4
#: and later) or AMX (Sapphire Rapids and later). Without them oneDNN emulates bf16 with
#: AVX512/AVX2 conversions, which is slower than fp32, so bf16 is not used there.
_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@cache
def cpu_flags() -> frozenset[str]:
    """CPU feature flags: those of ``/proc/cpuinfo`` (Linux) and those torch's cpuinfo reports
    as present (``avx512_bf16``, ``amx_bf16``... on Windows and macOS too). Empty when neither
    answers, and then no bf16 (fp32 is always correct)."""
    found: set[str] = set()
    try:
        with Path("/proc/cpuinfo").open(encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    found.update(value.split())
                    break
    except OSError:  # not Linux
        pass
    try:
        import torch

        caps = torch._C._cpu._get_cpu_capability()  # private: guarded, optional
        found.update(k for k, v in caps.items() if v is True)
    except (AttributeError, RuntimeError, TypeError):
        pass
    return frozenset(found)


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX) and torch can use it."""
    import torch

    if not _BF16_CPU_FLAGS & cpu_flags():
        return False
    mkldnn = getattr(torch.backends, "mkldnn", None)
    return bool(mkldnn is not None and mkldnn.is_available())


def check_precision(precision: str) -> str:
    """``precision`` normalised ("auto" or "fp32"); AnalysisError for anything else."""
    p = (precision or "auto").strip().lower()
    if p not in PRECISIONS:
        raise AnalysisError(
            f"'{precision}' is not a precision setting. Use 'auto' (bf16 where the hardware "
            "computes it natively) or 'fp32' (always full precision)."
        )
    return p


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Mixed precision for a device, ``None`` for plain fp32.

    ``"auto"``: bf16 on CUDA when supported, else fp16; bf16 on a CPU with native bf16
    (:func:`cpu_has_native_bf16`); fp32 on other CPUs and on MPS. ``"fp32"``: never.
    """
    import torch

    if check_precision(precision) == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None
