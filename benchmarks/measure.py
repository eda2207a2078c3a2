"""What the benchmarks share: machine load, timing (single and paired ABBA), verdict lines
and their summary, a random test volume, and peak RSS of an analysis in a fresh process."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

VERDICTS: list[str] = []


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.2f} {b:.2f} {c:.2f}"


def verdict(name: str, ok: bool, detail: str) -> None:
    line = f"{'PASS' if ok else 'FAIL'}  {name}: {detail}"
    VERDICTS.append(line)
    print(f"    => {line}")


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def paired(
    fa: Callable[[], object], fb: Callable[[], object], repeats: int, *, warmup: bool = True
) -> tuple[float, float, float]:
    """Median time of ``fa``, of ``fb`` and median of the per-pair ratios ``tb / ta``; the two
    run alternately (ABBA) so that a change of machine load hits both alike."""
    if warmup:
        fa()
        fb()
    ta, tb, ratios = [], [], []
    for i in range(repeats):
        if i % 2 == 0:
            a, b = timed(fa), timed(fb)
        else:
            b, a = timed(fb), timed(fa)
        ta.append(a)
        tb.append(b)
        ratios.append(b / a)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def make_scan(n_frames: int, rows: int = 496, cols: int = 512):
    from octviewer.core.scan import Modality, Scan, ScanMetadata

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(n_frames, rows, cols), dtype=np.uint8)
    md = ScanMetadata(source_paths=(Path("bench.png"),), format="PNG", modality=Modality.OCT_VOLUME)
    return Scan(frames=frames, metadata=md)


# --- [3] memory, each route in a fresh process ---------------------------------------------

RSS_CODE = r"""
import json, os, resource, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
route, bundle, threads, no_triton = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
sys.path.insert(0, {repo!r})
if no_triton:
    sys.modules["triton"] = None  # as in the packaged app (build.spec excludes triton)
stages = []

def mark(name):
    d = {{}}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    d[k] = int(v.split()[0]) / 1024.0
    except OSError:  # not Linux: ru_maxrss only (bytes on macOS, KiB elsewhere)
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        d["VmHWM"] = r / (1 << 20) if sys.platform == "darwin" else r / 1024.0
    stages.append((name, d))

mark("python")
import torch
torch.set_num_threads(threads)
mark("import torch")
if route != "torch":
    import timm
    mark("import timm")
if route == "ours":
    from benchmarks.measure import make_scan
    from octviewer.core.engine import Engine
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.model.bundle import file_sha256
    mark("import octviewer engine")
    e = Engine(bundle, threads=threads, quantize=True if "int8" in sys.argv[5:] else None)
    mark("Engine(): meta build + weights + SHA-256")
    file_sha256(bundle)
    mark("  (SHA-256 again, 1 MiB blocks)")
    scan = make_scan(1)
    e.analyze(scan, AnalysisRequest(cam=False))
    mark("prediction only (inference_mode)")
    r = e.analyze(scan, AnalysisRequest(cam=True))
    assert r.frames[0].cam is not None
    mark("prediction + CAM (one pass)")
elif route == "bare":
    from safetensors.torch import load_file
    from octviewer.core.model.architectures import create_model
    from octviewer.core.model.bundle import read_bundle_config
    cfg = read_bundle_config(bundle)
    m = create_model(cfg.architecture, cfg.num_classes, meta=True, **cfg.arch_kwargs)
    m.load_state_dict(load_file(bundle), strict=True, assign=True)
    mark("timm model + weights (load_file, mmap)")
    x = torch.rand(1, 1, *cfg.preprocess.size)
    with torch.inference_mode():
        m(x)
    mark("bare forward (inference_mode)")
print("RSS_JSON " + json.dumps(stages))
"""


def rss_stages(
    route: str, bundle: Path, threads: int, no_triton: bool, *extra: str
) -> list[tuple[str, dict[str, float]]]:
    code = RSS_CODE.format(repo=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code, route, str(bundle), str(threads), str(int(no_triton)), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RSS_JSON "):
            return [(n, d) for n, d in json.loads(line[9:])]
    raise RuntimeError(f"RSS probe '{route}' failed:\n{out.stderr[-3000:]}")


def peak(stages: list[tuple[str, dict[str, float]]]) -> float:
    return max(d.get("VmHWM", 0.0) for _, d in stages)


def print_stages(title: str, stages: list[tuple[str, dict[str, float]]]) -> None:
    print(f"    {title}")
    prev = 0.0
    for name, d in stages:
        hwm = d.get("VmHWM", 0.0)
        extra = (
            f"  (now {d['VmRSS']:.0f}: anon {d['RssAnon']:.0f} + file {d['RssFile']:.0f})"
            if "RssAnon" in d
            else ""
        )
        print(f"      {name:42s} peak {hwm:6.0f} MiB  (+{hwm - prev:4.0f}){extra}")
        prev = hwm


def summary() -> None:
    print(f"\nSummary ({load()}):")
    for line in VERDICTS:
        print(f"  {line}")
