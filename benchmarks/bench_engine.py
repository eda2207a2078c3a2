"""Engine speed and memory on the MIRAGE-Base shape (512x512, CPU). Prints numbers; not a test.

    .venv/bin/python benchmarks/bench_engine.py                  # random weights (timing only)
    .venv/bin/python benchmarks/bench_engine.py --bundle B.safetensors --images DIR   # + int8 agreement
    .venv/bin/python benchmarks/bench_engine.py --only rss       # just the memory part

Every target gets a PASS/FAIL line, each against a baseline measured in the same run:

[1] one B-scan, prediction + CAM, end to end from a decoded uint8 frame (Engine.analyze) vs one
    bare ``model(x)`` under inference_mode (target <= 1.3x); the stock route (a forward plus
    pytorch-grad-cam's GradCAM) for comparison;
[2] a 49-frame volume, predictions only, vs 49 bare forwards at the same batch size (<= 1.1x);
[3] peak RSS of one prediction + CAM in a fresh process (<= 1.0 GB = 1024 MiB), stage by stage,
    (MiB; 1 GiB taken as the target)
    next to a bare timm forward of the same weights and ``import torch`` alone, each in its own
    fresh process; once as installed and once without triton, as the packaged app is built
    (build.spec excludes it);
[4] int8 dynamic quantisation vs fp32 forward (>= 2.5x), same process and thread count, and the
    MIRAGE goals through int8 (one B-scan + CAM <= 0.6x, a volume <= 0.55x the bare fp32 forwards),
    measured alternately so load from other processes hits both arms alike; with
    --bundle/--images the top-1 agreement of int8 with fp32 on real images (>= 99 %);
[5] bf16 (``precision="auto"`` on a CPU with AVX512-BF16/AMX) against a bare fp32 forward: one
    B-scan with CAM (MIRAGE <= 0.6x; default model <= 100 ms), a volume (MIRAGE <= 0.55x;
    default model 49 frames <= 5 s) (``benchmarks/bench_bf16.py``);
    ``benchmarks/bench_precision.py`` has its agreement, probability and OOD-score change on
    real images.
[7] ``--only default``: the default path (``Engine(bundle)``, the fastest validated arithmetic;
    the random-weight bundle carries a benchmark stamp, ``bench_default.BENCH_STAMP``) against a
    bare fp32 forward: one B-scan + CAM <= 0.6x, a 49-frame volume <= 0.55x
    (``benchmarks/bench_default.py``); [3]'s "ours" route is the default path too.
[6] ``--only int8cnn``: int8 (static int8 convolutions when the bundle carries a calibration)
    vs fp32 vs bf16 Engines and a bare fp32 forward (``benchmarks/bench_int8.py``): one B-scan
    with CAM (default model <= 100 ms), a 49-frame volume (<= 5 s), peak RSS.

Timings on a shared machine: every figure is a median of alternating repeats, printed with the
load average at the time. Peak RSS is the process's own high-water mark (``VmHWM``):
``getrusage(RUSAGE_SELF).ru_maxrss`` of a child started from a big process reports the
*parent's* size on Linux (the high-water mark survives ``execve``), which is how an earlier
version of this script measured 1854 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from benchmarks.measure import (  # noqa: E402
    load,
    make_scan,
    paired,
    peak,
    print_stages,
    rss_stages,
    summary,
    timed,
    verdict,
)

RSS_TARGET_MB = 1024.0


def build_random_bundle(arch: str, path: Path) -> None:
    import torch

    from octviewer.core.model.architectures import create_model
    from octviewer.core.model.bundle import save_bundle
    from octviewer.core.model.config import ModelConfig

    torch.manual_seed(0)
    model = create_model(arch, 4)
    from benchmarks.bench_default import BENCH_STAMP

    cfg = ModelConfig(
        name=f"bench-{arch}-random",
        version="0",
        architecture=arch,
        class_names=("CNV", "DME", "DRUSEN", "NORMAL"),
        validated=BENCH_STAMP,  # random weights: a stamp, so the default path may pick int8
    )
    save_bundle(path, model, cfg)


def bench_rss(bundle: Path, threads: int) -> None:
    print(f"\n[3] peak RSS in fresh processes (VmHWM), {load()}")
    results: dict[tuple[str, bool], float] = {}
    for no_triton in (False, True):
        label = "as installed" if not no_triton else "without triton, as packaged"
        floor = rss_stages("torch", bundle, threads, no_triton)
        bare = rss_stages("bare", bundle, threads, no_triton)
        ours = rss_stages("ours", bundle, threads, no_triton)
        print(f"  -- {label} --")
        print_stages("import torch alone (this torch build's floor):", floor)
        print_stages("bare timm forward of the same weights:", bare)
        print_stages("octviewer Engine, one B-scan prediction + CAM:", ours)
        p_floor, p_bare, p_ours = peak(floor), peak(bare), peak(ours)
        results[("ours", no_triton)] = p_ours
        print(
            f"    peak: ours {p_ours:.0f} MiB ({p_ours * 1.048576:.0f} MB) = {p_ours / p_bare:.2f}x "
            f"bare ({p_bare:.0f} MiB); import torch alone {p_floor:.0f} MiB"
        )
        verdict(
            f"peak RSS prediction+CAM ({label})",
            p_ours <= RSS_TARGET_MB,
            f"{p_ours:.0f} MiB vs target {RSS_TARGET_MB:.0f} MiB (1 GiB); bare forward "
            f"{p_bare:.0f} MiB (ours/bare {p_ours / p_bare:.2f}x); import torch alone "
            f"{p_floor:.0f} MiB",
        )
    q = rss_stages("ours", bundle, threads, True, "int8")
    print_stages("int8 Engine (quantize=True), prediction + CAM, without triton:", q)
    print(f"    int8 peak {peak(q):.0f} MiB")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--arch", default="mirage_base")
    ap.add_argument(
        "--bundle",
        help="a bundle to time and check ('default': the bundled model; "
        "without it: random MIRAGE-Base weights, timing only)",
    )
    ap.add_argument("--images", type=Path, help="folder of real B-scans (int8 agreement)")
    ap.add_argument("--max-images", type=int, default=0, help="agreement on at most N images")
    ap.add_argument("--threads", type=int, default=None, help="default: octviewer's policy")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--no-stock", action="store_true", help="skip the pytorch-grad-cam reference")
    ap.add_argument(
        "--only",
        choices=("speed", "volume", "rss", "int8", "agreement", "bf16", "int8cnn", "default"),
        action="append",
        help="run only these parts (repeatable)",
    )
    return ap


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    parts = set(args.only or ("speed", "volume", "rss", "int8", "agreement", "bf16", "default"))
    if args.bundle == "default":
        from octviewer.resources import default_model_path

        args.bundle = default_model_path()
        if not args.bundle.is_file():
            ap.error(f"no default model at {args.bundle}")
    elif args.bundle:
        args.bundle = Path(args.bundle)

    import torch

    from octviewer.core.device import default_threads

    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    if args.bundle:
        from octviewer.core.model.bundle import file_sha256, read_bundle_config

        c = read_bundle_config(args.bundle)
        what = f"bundle {args.bundle.name} ({c.name} {c.version}, {c.architecture}, sha256 "
        what += f"{file_sha256(args.bundle)[:12]})"
    else:
        what = f"random {args.arch} weights"
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads={threads}, {what}, {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if bundle is None:
            bundle = Path(tmp) / "bench.safetensors"
            t = time.perf_counter()
            build_random_bundle(args.arch, bundle)
            print(f"built random {args.arch} bundle in {time.perf_counter() - t:.1f} s")

        if "rss" in parts:  # first, while this process is small
            bench_rss(bundle, threads)
        if "bf16" in parts:  # bf16 where the CPU has it, vs a bare fp32 forward
            from benchmarks.bench_bf16 import bench_bf16

            bench_bf16(bundle, args, verdict, paired, timed, make_scan)
        if "default" in parts:  # what the app and CLI run when no arithmetic is named
            from benchmarks.bench_default import bench_default

            bench_default(bundle, args, verdict, paired, make_scan, load)
        if "int8cnn" in parts:  # int8 (static for calibrated CNN ensembles) vs fp32 and bf16
            from benchmarks.bench_int8 import bench_int8_cnn

            bench_int8_cnn(bundle, args, verdict, paired, timed, make_scan)
        if not parts & {"speed", "volume", "int8"}:
            if "agreement" in parts:
                from benchmarks.bench_against_bare import run_agreement

                run_agreement(args, threads)
            return summary()

        _against_bare(parts, args, bundle, threads)
    summary()


def _against_bare(parts: set[str], args: argparse.Namespace, bundle: Path, threads: int) -> None:
    """[1], [2], [4] (:mod:`benchmarks.bench_against_bare`) on one fp32 Engine."""
    import torch

    from benchmarks.bench_against_bare import (
        FloatRun,
        bench_int8_dynamic,
        bench_speed,
        bench_volume,
        run_agreement,
    )
    from octviewer.core.engine import Engine
    from octviewer.core.preprocess import preprocess_frames

    t = time.perf_counter()
    eng = Engine(bundle, threads=threads, quantize=False)
    print(
        f"\nEngine load (meta build + weights + SHA-256): {time.perf_counter() - t:.2f} s, {load()}"
    )
    model = eng.model
    one = make_scan(1)
    x1 = preprocess_frames(one.frames, eng.config.preprocess)

    def bare1() -> None:
        with torch.inference_mode():
            model(x1)

    run = FloatRun(args, bundle, threads, eng, one, x1, bare1)
    if "speed" in parts:
        bench_speed(run)
    if "volume" in parts:
        bench_volume(run)
    if "int8" in parts:
        bench_int8_dynamic(run)
    if "agreement" in parts:
        run_agreement(args, threads)


if __name__ == "__main__":
    main()
