"""Reopening a 49-frame volume: cold (analysed) against cached (read from the result cache).
Prints numbers; not a test.

The volume is a multi-page TIFF of 49 real Kermany B-scans (``tests/data/kermany``, cycled and
cropped to a common size) in a temporary folder, with a temporary cache folder. "Reopen" is
what the window does with a file: read it, then its analysis job (``viewer/work.analyse``: the
cache lookup, else the engine's volume pass, stored), then the heatmap of the frame on screen
(the cache holds no heatmaps).

    python benchmarks/bench_cache.py [--model BUNDLE] [--repeats 5] [--int8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KERMANY = sorted((ROOT / "tests" / "data" / "kermany").glob("*.jpeg"))


def write_volume(path: Path, n: int = 49) -> Path:
    import tifffile

    import octviewer

    frames = [octviewer.load(p).frames[0] for p in KERMANY]
    rows, cols = min(f.shape[0] for f in frames), min(f.shape[1] for f in frames)
    stack = np.stack([frames[i % len(frames)][:rows, :cols] for i in range(n)])
    tifffile.imwrite(path, stack, photometric="minisblack")  # 3 or 4 pages are not RGB(A)
    return path


def main(argv: list[str] | None = None) -> int:
    import octviewer
    from octviewer.core.engine import Engine
    from octviewer.core.result_cache import ResultCache
    from octviewer.viewer.jobs import JobContext
    from octviewer.viewer.work import analyse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="bundle (default: the bundled one)")
    ap.add_argument("--repeats", type=int, default=5, help="cached reopens timed (median)")
    ap.add_argument("--cold", type=int, default=2, help="cold reopens timed (median)")
    ap.add_argument("--int8", action="store_true", help="int8 arithmetic on the CPU")
    a = ap.parse_args(argv)

    engine = Engine(a.model, device="cpu", quantize=a.int8)
    with tempfile.TemporaryDirectory() as tmp:
        volume = write_volume(Path(tmp) / "volume.tif")
        mb = volume.stat().st_size / 1e6
        cache = ResultCache(Path(tmp) / "cache")

        def reopen() -> tuple[float, float, bool]:
            t0 = time.perf_counter()
            scan = octviewer.load(volume)
            result = analyse(engine, scan, JobContext(0, "bench"), cache)
            shown = time.perf_counter() - t0
            fr = result.frames[0]
            engine.cam(scan, fr.frame_index, fr.predicted_index)  # the frame on screen
            engine.clear_cache()
            return shown, time.perf_counter() - t0, "cached_at" in result.extra

        reopen()  # warm imports, the engine's first pass
        cache.clear()
        cold = []
        for _ in range(max(1, a.cold)):
            cache.clear()
            cold.append(reopen())
        cached = [reopen() for _ in range(max(1, a.repeats))]
        assert not any(c[2] for c in cold) and all(c[2] for c in cached)
        entries, size = cache.usage()

    def med(rows: list[tuple[float, float, bool]], i: int) -> float:
        return statistics.median(r[i] for r in rows)

    print(f"{engine} · 49-frame volume {mb:.1f} MB on disk")
    for label, i in (("result shown", 0), ("result + heatmap of the shown frame", 1)):
        c, h = med(cold, i), med(cached, i)
        print(f"reopen, {label}: cold {c:.2f} s, cached {h:.3f} s, ratio {c / h:.0f}x")
    print(f"cache entry: {entries} file, {size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
