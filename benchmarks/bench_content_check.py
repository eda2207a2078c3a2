"""The "is this a B-scan?" content check on the real development set (prints numbers; not a test).

1. Per-file verdict on every file of ``../shared/data/ood``, ``dicom`` and ``vendor`` (and the
   SLO that comes with a ``.vol``): what ``octviewer.load`` now calls it, the check's kind, score
   and features.
2. False rejections over the 648 Kermany B-scans, with the lowest value of each feature.
3. Milliseconds per frame (median of wall and CPU time over the Kermany images).

    python benchmarks/bench_content_check.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
FEATURES = ("skew", "polarity", "lateral")


def _row(name: str, verdict, modality: str) -> str:  # type: ignore[no-untyped-def]
    feats = " ".join(f"{k}={verdict.features[k]:.2f}" for k in FEATURES if k in verdict.features)
    return f"{name:38s} {modality:40s} {verdict.kind:9s} {verdict.score:+6.2f}  {feats}"


def dev_set(data: Path) -> None:
    from octviewer import load
    from octviewer.core.content import check_frame, check_frames
    from octviewer.errors import OCTViewerError

    print(f"{'file':38s} {'modality after load':40s} {'kind':9s} {'score':>6s}  features")
    for folder in ("ood", "dicom", "vendor"):
        for path in sorted((data / folder).iterdir()):
            if path.name.endswith(".md"):
                continue
            try:
                scan = load(path)
            except OCTViewerError as exc:
                print(f"{folder}/{path.name:32s} not opened: {type(exc).__name__}")
                continue
            verdict = check_frames(scan.frames)
            print(_row(f"{folder}/{path.name}", verdict, scan.metadata.modality.value))
            if scan.localizer is not None:
                slo = check_frame(scan.localizer.image)
                print(_row(f"{folder}/{path.name} (its SLO)", slo, "-"))


def kermany(data: Path) -> None:
    from PIL import Image

    from octviewer.core.content import check_frame

    paths = sorted((data / "kermany").glob("*/*.jpeg"))
    frames = [np.asarray(Image.open(p).convert("L")) for p in paths]
    for f in frames[:5]:
        check_frame(f)  # warm up
    wall, cpu, verdicts = [], [], []
    for f in frames:
        t0, c0 = time.perf_counter(), time.process_time()
        verdicts.append(check_frame(f))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    rejected = [p.name for p, v in zip(paths, verdicts, strict=True) if not v.is_bscan]
    print(f"\nKermany: {len(rejected)} of {len(paths)} rejected {rejected if rejected else ''}")
    keys = [k for k in verdicts[0].features]
    for k in keys:
        vals = np.array([v.features.get(k, np.nan) for v in verdicts])
        print(
            f"  {k:15s} min {np.nanmin(vals):.3f}  1st percentile {np.nanpercentile(vals, 1):.3f}"
        )
    scores = np.array([v.score for v in verdicts])
    print(f"  score           min {scores.min():+.2f}  median {np.median(scores):+.2f}")
    print(
        f"ms per frame: median wall {1000 * statistics.median(wall):.1f}, "
        f"median CPU {1000 * statistics.median(cpu):.1f} (frames {frames[0].shape} and similar)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not a.data.is_dir():
        print(f"{a.data} is not present: this benchmark needs the real-data corpus")
        return 1
    dev_set(a.data)
    kermany(a.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
