"""Reader and report timings (prints numbers; not a test).

1. One Kermany JPEG B-scan: ``octviewer.load`` against a bare Pillow decode (target <= 50 ms).
2. All 648 Kermany JPEGs in ``../shared/data/kermany`` when present (target <= 50 ms each).
3. Rendering one annotated PNG report (target <= 0.5 s), against a bare Pillow resize+save.

    python benchmarks/bench_io_report.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "kermany"
SAMPLE = ROOT / "resources" / "samples" / "CNV-1016042-1.jpeg"


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm imports and caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    import octviewer
    from octviewer.core import report
    from octviewer.core.heatmap import Heatmap
    from octviewer.core.results import FrameResult, ModelIdentity, ScanResult

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args(argv)

    def bare() -> None:
        with Image.open(SAMPLE) as im:
            np.asarray(im.convert("L"))

    load_ms = _median_ms(lambda: octviewer.load(SAMPLE), a.repeats)
    bare_ms = _median_ms(bare, a.repeats)
    print(
        f"JPEG B-scan load: {load_ms:.1f} ms (bare Pillow decode {bare_ms:.1f} ms, ratio "
        f"{load_ms / bare_ms:.2f}x; target <= 50 ms)"
    )

    paths = sorted(SHARED.glob("*/*.jpeg"))
    if paths:
        t0 = time.perf_counter()
        for p in paths:
            octviewer.load(p)
        per = 1000 * (time.perf_counter() - t0) / len(paths)
        print(f"{len(paths)} Kermany JPEGs: {per:.1f} ms each (target <= 50 ms)")
    else:
        print(f"{SHARED} not found: the 648-image pass is skipped")

    scan = octviewer.load(SAMPLE)
    rows, cols = scan.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    cam = np.exp(-(((yy - rows / 2) / 60) ** 2 + ((xx - cols / 2) / 90) ** 2)).astype(np.float32)
    names = ("CNV", "DME", "DRUSEN", "NORMAL")
    frame = FrameResult(
        frame_index=0,
        class_names=names,
        probabilities=np.array([0.81, 0.1, 0.05, 0.04], np.float32),
        logits=np.zeros(4, np.float32),
        heatmap=Heatmap.of_array(cam),
        cam_class=0,
    )
    model = ModelIdentity("bench", "0", "0" * 64, "none", "")
    result = ScanResult(frames=(frame,), model=model, device="cpu")

    def bare_png() -> None:
        buf = io.BytesIO()
        Image.fromarray(scan.frames[0]).resize((cols * 2, rows * 2)).save(buf, "PNG")

    render_ms = _median_ms(lambda: report.render_report(scan, result), max(3, a.repeats // 4))
    bare_png_ms = _median_ms(bare_png, max(3, a.repeats // 4))
    print(
        f"PNG report render: {render_ms:.0f} ms (bare Pillow resize+PNG {bare_png_ms:.0f} ms, "
        f"ratio {render_ms / bare_png_ms:.1f}x; target <= 500 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
