"""[7] The default path: ``Engine(bundle)`` with no arithmetic named (the fastest validated for
the bundle on this machine, :mod:`octviewer.core.arithmetic`) against a bare fp32 forward of the
same weights, paired in one run. Called by ``benchmarks/bench_engine.py --only default``.

Goals (issue 27): one B-scan prediction + CAM <= 0.6x one bare fp32 forward, a 49-frame volume
<= 0.55x the bare fp32 forwards; for the default model also <= 100 ms and <= 5 s.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What bench_engine's random-weight bundles record: random weights cannot be validated on
#: data, so this stamp only lets the default path pick int8 for the speed goals.
BENCH_STAMP = {
    "int8": {
        "passed": True,
        "kind": "dynamic",
        "reason": "benchmark stamp: random weights (speed only; no decisions validated)",
    }
}


def bench_default(
    bundle: Path,
    args: argparse.Namespace,
    verdict: Callable[[str, bool, str], None],
    paired: Callable[..., tuple[float, float, float]],
    make_scan: Callable[[int], Any],
    load: Callable[[], str],
) -> None:
    import torch

    from octviewer.core.engine import Engine
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.preprocess import preprocess_frames

    threads = torch.get_num_threads()
    ref = Engine(bundle, threads=threads, precision="fp32", quantize=False)
    eng = Engine(bundle, threads=threads)
    is_default_model = ref.config.architecture == "ensemble"
    arith = eng.arithmetic
    print(
        f"\n[7] default path: {arith.name}{f' ({eng.int8_kind})' if eng.quantized else ''}, {load()}"
    )
    print(f"    why: {arith.reason}")
    model, one = ref.model, make_scan(1)
    x1 = preprocess_frames(one.frames, ref.config.preprocess)

    def bare1() -> None:
        with torch.inference_mode():
            model(x1)

    t_bare, t_one, r1 = paired(
        bare1, lambda: eng.analyze(one, AnalysisRequest(cam=True)), args.repeats
    )
    print(
        f"    one B-scan: bare fp32 forward {t_bare * 1000:.0f} ms, default Engine prediction+CAM "
        f"{t_one * 1000:.0f} ms (median paired ratio {r1:.2f}x)"
    )
    verdict(
        "default path prediction+CAM vs bare fp32 forward", r1 <= 0.6, f"{r1:.2f}x (target <= 0.6x)"
    )
    if is_default_model:
        verdict("default path one B-scan + CAM", t_one <= 0.1, f"{t_one * 1000:.0f} ms (<= 100 ms)")
    vol = make_scan(args.frames)
    xs = preprocess_frames(vol.frames, ref.config.preprocess)
    bs = args.batch_size

    def bare_volume() -> None:
        with torch.inference_mode():
            for i in range(0, args.frames, bs):
                model(xs[i : i + bs])

    t_b, t_v, rv = paired(
        bare_volume,
        lambda: eng.analyze(vol, AnalysisRequest(cam=False, batch_size=bs)),
        max(1, args.repeats // 3),
        warmup=False,
    )
    print(f"    {args.frames}-frame volume: bare fp32 {t_b:.2f} s, default Engine {t_v:.2f} s")
    verdict("default path volume vs bare fp32 forwards", rv <= 0.55, f"{rv:.2f}x (target <= 0.55x)")
    if is_default_model:
        verdict("default path 49-frame volume", t_v <= 5.0, f"{t_v:.2f} s (<= 5 s)")
