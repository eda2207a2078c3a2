"""Engine speed and memory on the MIRAGE-Base shape (512x512, CPU). Prints numbers; not a test.

    .venv/bin/python benchmarks/bench_engine.py                  # random weights (timing only)
    .venv/bin/python benchmarks/bench_engine.py --bundle B.safetensors --images DIR   # + int8 agreement

Every ratio is against the bare timm forward measured in the same run:

- one B-scan, prediction + CAM, end to end from a decoded uint8 frame (Engine.analyze) vs one
  bare ``model(x)`` under inference_mode (target <= 1.3x); the stock route (a forward plus
  pytorch-grad-cam's GradCAM) for comparison;
- a 49-frame volume, predictions only, vs 49 bare forwards at the same batch size (<= 1.1x);
- peak RSS of one prediction + CAM in a fresh process (ru_maxrss, target <= 1.0 GB);
- int8 dynamic quantisation vs fp32 forward (>= 2.5x), and with --bundle/--images the top-1
  agreement of int8 with fp32 on real images (>= 99 %).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_scan(n_frames: int, rows: int = 496, cols: int = 512):
    from octviewer.core.scan import Modality, Scan, ScanMetadata

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(n_frames, rows, cols), dtype=np.uint8)
    md = ScanMetadata(source_paths=(Path("bench.png"),), format="PNG", modality=Modality.OCT_VOLUME)
    return Scan(frames=frames, metadata=md)


def build_random_bundle(arch: str, path: Path) -> None:
    import torch

    from octviewer.core.model.architectures import create_model
    from octviewer.core.model.bundle import save_bundle
    from octviewer.core.model.config import ModelConfig

    torch.manual_seed(0)
    model = create_model(arch, 4)
    cfg = ModelConfig(
        name=f"bench-{arch}-random",
        version="0",
        architecture=arch,
        class_names=("CNV", "DME", "DRUSEN", "NORMAL"),
    )
    save_bundle(path, model, cfg)


RSS_CODE = """
import os, resource, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, {repo!r})
sys.argv = ["x"]
from benchmarks.bench_engine import make_scan
from octviewer.core.engine import Engine
e = Engine({bundle!r}, threads={threads})
r = e.analyze(make_scan(1), cam=True)
assert r.frames[0].cam is not None
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""


def peak_rss_mb(bundle: Path, threads: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            RSS_CODE.format(repo=str(REPO), bundle=str(bundle), threads=threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def agreement(bundle: Path, images: Path, threads: int) -> tuple[int, int]:
    from PIL import Image

    from octviewer.core.engine import Engine
    from octviewer.core.scan import Modality, Scan, ScanMetadata

    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    fp32 = Engine(bundle, threads=threads)
    int8 = Engine(bundle, threads=threads, quantize=True)
    same = 0
    for f in files:
        arr = np.asarray(Image.open(f).convert("L"))
        scan = Scan(arr, ScanMetadata((f,), "JPEG", Modality.OCT_BSCAN))
        a = fp32.analyze(scan, cam=False).frames[0].predicted_index
        b = int8.analyze(scan, cam=False).frames[0].predicted_index
        same += int(a == b)
    return same, len(files)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--arch", default="mirage_base")
    ap.add_argument("--bundle", type=Path, help="a trained bundle (for int8 agreement)")
    ap.add_argument("--images", type=Path, help="folder of real B-scans (for int8 agreement)")
    ap.add_argument("--threads", type=int, default=None, help="default: octviewer's policy")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--no-stock", action="store_true", help="skip the pytorch-grad-cam reference")
    args = ap.parse_args()

    import torch

    from octviewer.core.device import default_threads
    from octviewer.core.engine import Engine
    from octviewer.core.preprocess import preprocess_frames

    threads = args.threads or default_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads={threads}, arch={args.arch}")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if bundle is None or args.arch != "mirage_base":
            bundle = Path(tmp) / "bench.safetensors"
            t = time.perf_counter()
            build_random_bundle(args.arch, bundle)
            print(f"built random {args.arch} bundle in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        eng = Engine(bundle, threads=threads)
        print(f"Engine load (meta device + safetensors + sha256): {time.perf_counter() - t:.2f} s")
        model = eng.model
        one = make_scan(1)
        x1 = preprocess_frames(one.frames, eng.config.preprocess)

        def bare1() -> None:
            with torch.inference_mode():
                model(x1)

        t_bare = median_time(bare1, args.repeats)
        t_ours = median_time(lambda: eng.analyze(one, cam=True), args.repeats)
        print(f"\n[1] bare forward 1x1x512x512: {t_bare * 1000:.0f} ms")
        print(
            f"    Engine.analyze prediction+CAM (from uint8 frame): {t_ours * 1000:.0f} ms = {t_ours / t_bare:.2f}x  (target <= 1.3x)"
        )
        if not args.no_stock:
            from pytorch_grad_cam import GradCAM
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            gh, gw = model.patch_embed.grid_size
            npt = model.num_prefix_tokens

            def reshape(t: torch.Tensor) -> torch.Tensor:
                return t[:, npt:].reshape(t.shape[0], gh, gw, t.shape[2]).permute(0, 3, 1, 2)

            def stock() -> None:
                with torch.inference_mode():
                    c = int(model(x1).argmax())
                with GradCAM(model, [model.blocks[-1].norm1], reshape_transform=reshape) as cam:
                    cam(x1.clone(), targets=[ClassifierOutputTarget(c)])

            t_stock = median_time(stock, max(1, args.repeats // 2))
            print(
                f"    stock route (forward + pytorch-grad-cam GradCAM): {t_stock * 1000:.0f} ms = {t_stock / t_bare:.2f}x"
            )

        vol = make_scan(args.frames)
        bs = args.batch_size
        xs = preprocess_frames(vol.frames, eng.config.preprocess)

        def bare_vol() -> None:
            with torch.inference_mode():
                for i in range(0, args.frames, bs):
                    model(xs[i : i + bs])

        reps = max(1, args.repeats // 3)
        t_bv = median_time(bare_vol, reps, warmup=0)
        t_ov = median_time(lambda: eng.analyze(vol, cam=False, batch_size=bs), reps, warmup=0)
        print(f"\n[2] {args.frames} bare forwards (batch {bs}): {t_bv:.2f} s")
        print(
            f"    Engine.analyze {args.frames}-frame volume, predictions only: {t_ov:.2f} s = {t_ov / t_bv:.2f}x  (target <= 1.1x)"
        )

        rss = peak_rss_mb(bundle, threads)
        print(
            f"\n[3] peak RSS, fresh process, one prediction+CAM: {rss:.0f} MB  (target <= 1024 MB)"
        )

        q = Engine(bundle, threads=threads, quantize=True)

        def int8_1() -> None:
            with torch.inference_mode():
                q.model(x1)

        t_q = median_time(int8_1, args.repeats)
        t_qc = median_time(lambda: q.analyze(one, cam=True), args.repeats)
        print(
            f"\n[4] int8 forward: {t_q * 1000:.0f} ms; fp32/int8 speed-up {t_bare / t_q:.2f}x  (target >= 2.5x)"
        )
        print(
            f"    int8 Engine.analyze prediction+CAM: {t_qc * 1000:.0f} ms ({t_bare / t_qc:.2f}x faster than one fp32 bare forward)"
        )
        if args.bundle and args.images:
            same, n = agreement(args.bundle, args.images, threads)
            print(
                f"    top-1 agreement int8 vs fp32 on {n} images: {same}/{n} = {100.0 * same / max(n, 1):.1f} %  (target >= 99 %)"
            )
        else:
            print("    (int8 agreement: pass --bundle TRAINED.safetensors --images DIR)")

        if threads != 2 and (os.cpu_count() or 1) >= 2:
            torch.set_num_threads(2)
            t2 = median_time(bare1, args.repeats)
            torch.set_num_threads(threads)
            print(
                f"\n[5] thread policy: bare forward with 2 threads {t2 * 1000:.0f} ms vs {threads} thread(s) {t_bare * 1000:.0f} ms (idle machine; a busy neighbour hurts 2 threads most)"
            )


if __name__ == "__main__":
    main()
