"""[6] int8 (``quantize=True``) against fp32 and bf16 Engines and a bare fp32 forward, one run.

Called by ``benchmarks/bench_engine.py --only int8cnn [--bundle default]``. For the default
model with its static int8 calibration, ``quantize=True`` runs int8 convolutions; a bundle
without calibration shows the dynamic (Linear-only) path. Goals (issue 17, default model): one
B-scan with heatmap <= 100 ms, a 49-frame volume <= 5 s; int8 must be faster than fp32 to be
worth keeping (CPUs without bf16), and its peak RSS must not grow. Agreement on real images:
``benchmarks/bench_precision.py --mode int8``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _engines(bundle: Path, threads: int) -> dict[str, Any]:
    from octviewer.core.engine import Engine

    return {
        "fp32": Engine(bundle, threads=threads, precision="fp32"),
        "bf16": Engine(bundle, threads=threads, precision="auto", quantize=False),
        "int8": Engine(bundle, threads=threads, quantize=True),
    }


@dataclass(frozen=True)
class VolumeInput:
    """The volume every arm analyses: the scan, its preprocessed frames (for the bare
    forwards) and the batch size."""

    scan: Any
    inputs: Any
    batch_size: int


def _volume(engines: dict[str, Any], bare: Any, volume: VolumeInput, reps: int, timed):
    """Per arm, the median total of a volume's batches and the median ratio to the bare
    forwards; the arms run batch by batch in a rotating order (load hits all alike)."""
    import torch

    from octviewer.core.inference import AnalysisRequest

    vol, xs, bs = volume.scan, volume.inputs, volume.batch_size
    n = vol.n_frames
    batches = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
    totals: list[dict[str, float]] = []
    for rep in range(reps):
        t = dict.fromkeys(["bare", *engines], 0.0)
        for k, idx in enumerate(batches):

            def run_bare(idx: list[int] = idx) -> None:
                with torch.inference_mode():
                    bare(xs[idx[0] : idx[-1] + 1])

            arms: list[tuple[str, Callable[[], object]]] = [("bare", run_bare)]
            for name, eng in engines.items():
                arms.append(
                    (
                        name,
                        lambda e=eng, i=idx: e.analyze(vol, AnalysisRequest(frames=i, cam=False)),
                    )
                )
            shift = (k + rep) % len(arms)
            for name, fn in arms[shift:] + arms[:shift]:
                t[name] += timed(fn)
        totals.append(t)
    med = {a: statistics.median(t[a] for t in totals) for a in totals[0]}
    ratio = {a: statistics.median(t[a] / t["bare"] for t in totals) for a in engines}
    return med, ratio


def _real_volume(images: Path, n: int) -> Any:
    """A volume of ``n`` real B-scans (an even spread over the sorted files, 496x512), so that
    the volume rule sees real scores; random pixels are flagged and refine every frame."""
    import numpy as np
    from PIL import Image

    from octviewer.core.scan import Modality, Scan, ScanMetadata

    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    picks = [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]
    frames = np.stack([np.asarray(Image.open(f).convert("L").resize((512, 496))) for f in picks])
    return Scan(frames, ScanMetadata((images,), "JPEG", Modality.OCT_BSCAN))


def bench_int8_cnn(bundle: Path, args: argparse.Namespace, verdict, paired, timed, make_scan):
    import torch

    from benchmarks.measure import load
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.preprocess import preprocess_frames
    from octviewer.core.volume_rule import VolumeShortcut

    threads = torch.get_num_threads()
    engines = _engines(bundle, threads)
    q = engines["int8"]
    print(
        f"\n[6] int8 ({q.int8_kind}) vs fp32 vs bf16 ({engines['bf16'].compute_dtype}), "
        f"{q.config.name} {q.config.version}, threads {threads}, {load()}"
    )
    bare, one = engines["fp32"].model, make_scan(1)
    x1 = preprocess_frames(one.frames, q.config.preprocess)

    def bare1() -> None:
        with torch.inference_mode():
            bare(x1)

    one_ms = {}
    for name, eng in engines.items():
        t_b, t_e, r = paired(
            bare1, lambda e=eng: e.analyze(one, AnalysisRequest(cam=True)), args.repeats
        )
        one_ms[name] = t_e * 1000
        print(
            f"    one B-scan prediction + CAM, {name}: {t_e * 1000:.0f} ms (bare fp32 forward "
            f"{t_b * 1000:.0f} ms; median paired ratio {r:.2f}x), {load()}"
        )
    verdict(
        "default model, one B-scan with heatmap (int8)",
        one_ms["int8"] <= 100,
        f"{one_ms['int8']:.0f} ms (target <= 100 ms; fp32 {one_ms['fp32']:.0f}, bf16 "
        f"{one_ms['bf16']:.0f})",
    )
    vol = _real_volume(args.images, args.frames) if args.images else make_scan(args.frames)
    print(
        f"    volume: {'real B-scans from ' + str(args.images) if args.images else 'random pixels'}"
    )
    xs = preprocess_frames(vol.frames, q.config.preprocess)
    volume = VolumeInput(vol, xs, args.batch_size)
    med, ratio = _volume(engines, bare, volume, max(1, args.repeats // 3), timed)
    print(
        f"    {args.frames}-frame volume, batch {args.batch_size}: bare fp32 {med['bare']:.2f} s; "
        + ", ".join(f"{a} {med[a]:.2f} s ({ratio[a]:.2f}x bare)" for a in engines)
        + f"; {load()}"
    )
    verdict(
        f"default model, {args.frames}-frame volume (int8)",
        med["int8"] <= 5.0,
        f"{med['int8']:.2f} s (target <= 5 s; {ratio['int8']:.2f}x bare fp32)",
    )
    verdict(
        "int8 faster than the fp32 Engine (volume)",
        med["int8"] < med["fp32"],
        f"int8/fp32 {med['int8'] / med['fp32']:.2f}x; int8/bf16 {med['int8'] / med['bf16']:.2f}x",
    )
    if q._has_mirror():

        def full() -> object:
            return q.analyze(vol, AnalysisRequest(cam=False, batch_size=args.batch_size))

        def rule() -> object:
            return q.analyze(
                vol,
                AnalysisRequest(cam=False, batch_size=args.batch_size, shortcut=VolumeShortcut()),
            )

        _, t_rule, r_rule = paired(full, rule, max(2, args.repeats // 3))
        verdict(
            f"default model, {args.frames}-frame volume (int8 + volume rule)",
            t_rule <= 5.0,
            f"{t_rule:.2f} s (target <= 5 s; {r_rule:.2f}x int8 without the rule, "
            f"{rule().extra['volume_rule']}), {load()}",
        )
    _rss(bundle, threads, verdict)


def _rss(bundle: Path, threads: int, verdict) -> None:
    """Peak RSS in fresh processes, as packaged (no triton); "auto": the default Engine (bf16
    here where native)."""
    from benchmarks.measure import peak, print_stages, rss_stages

    auto = rss_stages("ours", bundle, threads, True)
    int8 = rss_stages("ours", bundle, threads, True, "int8")
    print_stages("int8 Engine, one B-scan prediction + CAM, without triton:", int8)
    pa, p8 = peak(auto), peak(int8)
    verdict(
        "int8 peak RSS not above the default Engine's",
        p8 <= pa * 1.02,
        f"int8 {p8:.0f} MiB, default (precision auto) {pa:.0f} MiB",
    )
