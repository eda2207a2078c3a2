"""[5] of ``benchmarks/bench_engine.py --only bf16``: a bf16 ("auto") Engine against a bare fp32
forward of the same weights, in the same run.

Goals (issue 17): MIRAGE-B one B-scan prediction + CAM <= 0.6x one bare fp32 forward, a
49-frame volume <= 0.55x 49 bare fp32 forwards, top-1 agreement >= 99 %; the default model one
B-scan with heatmap <= 100 ms and a 49-frame volume <= 5 s. The volume runs alternate batch by
batch with the bare forwards (load hits both alike). Agreement on real images:
``benchmarks/bench_precision.py``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import load


@dataclass(frozen=True)
class Bf16Arms:
    """The two arms and the harness: the fp32 Engine (its network gives the bare forwards),
    the bf16 ("auto") Engine, the options, and ``benchmarks.measure``'s verdict, paired and
    timed."""

    ref: Any
    fast: Any
    args: argparse.Namespace
    verdict: Callable[..., None]
    paired: Callable[..., tuple[float, float, float]]
    timed: Callable[[Callable[[], object]], float]

    @property
    def default(self) -> bool:
        """The default model (an ensemble): its goals are absolute times."""
        return self.ref.config.architecture == "ensemble"


def bench_bf16(bundle: Path, args: argparse.Namespace, verdict, paired, timed, make_scan) -> None:
    """[5] bf16 ("auto") Engine against a bare fp32 forward of the same weights, same run
    (the goals: the module docstring)."""
    import torch

    from octviewer.core.engine import Engine

    threads = torch.get_num_threads()
    ref = Engine(bundle, threads=threads, precision="fp32")
    fast = Engine(bundle, threads=threads, precision="auto", quantize=False)
    arms = Bf16Arms(ref, fast, args, verdict, paired, timed)
    print(f"\n[5] bf16 ('auto': {fast.compute_dtype}) vs bare fp32, {ref.config.name}, {load()}")
    _one_bscan(arms, make_scan(1))
    vol = make_scan(args.frames)
    t_bv, t_fv, same = _volume(arms, vol)
    if fast._has_mirror():  # the volume rule on top (whole volume: it picks frames per volume)
        _volume_rule(arms, vol, t_bv, t_fv)
    n = args.frames
    verdict(
        "bf16 top-1 agreement with fp32 (random frames)",
        same / n >= 0.99,
        f"{same}/{n} (random pixels; real images: benchmarks/bench_precision.py)",
    )


def _one_bscan(arms: Bf16Arms, one: Any) -> None:
    """One B-scan: the bf16 Engine's prediction + CAM against one bare fp32 forward."""
    import torch

    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.preprocess import preprocess_frames

    ref, fast, verdict = arms.ref, arms.fast, arms.verdict
    model = ref.model
    x1 = preprocess_frames(one.frames, ref.config.preprocess)

    def bare1() -> None:
        with torch.inference_mode():
            model(x1)

    t_bare, t_fast, r1 = arms.paired(
        bare1, lambda: fast.analyze(one, AnalysisRequest(cam=True)), arms.args.repeats
    )
    print(
        f"    one B-scan: bare fp32 forward {t_bare * 1000:.0f} ms, bf16 Engine prediction+CAM "
        f"{t_fast * 1000:.0f} ms (median paired ratio {r1:.2f}x)"
    )
    if arms.default:
        verdict(
            "default model, one B-scan with heatmap (bf16)",
            t_fast <= 0.1,
            f"{t_fast * 1000:.0f} ms (target <= 100 ms; {r1:.2f}x a bare fp32 forward)",
        )
    else:
        verdict(
            "bf16 prediction+CAM vs bare fp32 forward", r1 <= 0.6, f"{r1:.2f}x (target <= 0.6x)"
        )


def _volume(arms: Bf16Arms, vol: Any) -> tuple[float, float, int]:
    """A volume, predictions only, batch by batch against the bare fp32 forwards: the median
    bare and bf16 times and how many frames got the same top-1 class."""
    import torch

    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.preprocess import preprocess_frames

    ref, fast, args, timed = arms.ref, arms.fast, arms.args, arms.timed
    model, bs = ref.model, args.batch_size
    xs = preprocess_frames(vol.frames, ref.config.preprocess)
    batches = [list(range(i, min(i + bs, args.frames))) for i in range(0, args.frames, bs)]
    totals, same = [], 0
    for rep in range(max(1, args.repeats // 3)):
        tb = tf = 0.0
        top32, top16 = [], []
        for k, idx in enumerate(batches):

            def bare_b(idx: list[int] = idx, top: list[int] = top32) -> None:
                with torch.inference_mode():
                    top.extend(model(xs[idx[0] : idx[-1] + 1]).argmax(1).tolist())

            def fast_b(idx: list[int] = idx, top: list[int] = top16) -> None:
                r = fast.analyze(vol, AnalysisRequest(frames=idx, cam=False, batch_size=bs))
                top.extend(f.predicted_index for f in r.frames)

            first, second = (bare_b, fast_b) if (k + rep) % 2 == 0 else (fast_b, bare_b)
            t1, t2 = timed(first), timed(second)
            tb, tf = (tb + t1, tf + t2) if first is bare_b else (tb + t2, tf + t1)
        totals.append((tb, tf))
        same = sum(a == b for a, b in zip(top32, top16, strict=True))
    t_bv = statistics.median(t[0] for t in totals)
    t_fv = statistics.median(t[1] for t in totals)
    rv = statistics.median(t[1] / t[0] for t in totals)
    print(
        f"    {args.frames}-frame volume, batch {bs}: bare fp32 {t_bv:.2f} s, bf16 Engine "
        f"predictions {t_fv:.2f} s ({rv:.2f}x, {len(totals)} alternating runs), {load()}"
    )
    if arms.default:
        arms.verdict(
            f"default model, {args.frames}-frame volume (bf16)",
            t_fv <= 5.0,
            f"{t_fv:.2f} s (target <= 5 s; {rv:.2f}x bare fp32)",
        )
    else:
        arms.verdict(
            "bf16 volume vs bare fp32 forwards", rv <= 0.55, f"{rv:.2f}x (target <= 0.55x)"
        )
    return t_bv, t_fv, same


def _volume_rule(arms: Bf16Arms, vol: Any, t_bv: float, t_fv: float) -> None:
    """The volume rule on the bf16 Engine, paired with the same Engine without it."""
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.volume_rule import VolumeShortcut

    fast, args, bs = arms.fast, arms.args, arms.args.batch_size

    def rule_run() -> object:
        return fast.analyze(
            vol, AnalysisRequest(cam=False, batch_size=bs, shortcut=VolumeShortcut())
        )

    def full_run() -> object:
        return fast.analyze(vol, AnalysisRequest(cam=False, batch_size=bs))

    t_full, t_sc, r_sc = arms.paired(full_run, rule_run, max(2, args.repeats // 3))
    what = rule_run().extra["volume_rule"]
    t_est = t_fv * r_sc  # the rule's paired ratio applied to the bf16 volume time above
    print(
        f"    + volume rule ({what}): {t_sc:.2f} s vs {t_full:.2f} s without it (median "
        f"paired ratio {r_sc:.2f}x), so about {t_est / t_bv:.2f}x the bare fp32 forwards, "
        f"{load()}"
    )
    arms.verdict(
        f"default model, {args.frames}-frame volume (bf16 + volume rule)",
        t_sc <= 5.0,
        f"{t_sc:.2f} s (target <= 5 s; {r_sc:.2f}x bf16 without the rule)",
    )
