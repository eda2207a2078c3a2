"""The image-quality check (:mod:`octviewer.core.quality`) on the real development set.

1. False flags on clean B-scans per source: Kermany (648), OCTDL (4 classes and other
   findings), every frame of the Spectralis ``.vol`` files, with each figure's range.
2. Catch rate per degradation kind and strength (``training/data/degrade.py``), on every 4th
   Kermany and OCTDL B-scan: "caught" = refused, "named" = refused for the expected reason.
3. The device's own quality (Spectralis Q, eyepy's parsed B-scan header) of every ``.vol``
   frame and the gate's verdict with it.
4. Milliseconds per frame (median wall time) for 512x496 and 1024x496 frames.

    python benchmarks/bench_quality.py [--data ../shared/data] [--step 4]
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
STRENGTHS = {
    "weak": (0.5, 0.8, 0.9, 0.95),
    "cut_top": (0.1, 0.3, 0.6, 0.9),
    "cut_bottom": (0.1, 0.3, 0.6, 0.9),
    "blink": (0.0, 0.1, 0.3, 0.6),
    "blink_bands": (0.0, 0.3, 0.6, 1.0),
    "defocus": (0.3, 0.6, 1.0),
}
EXPECTED = {
    "weak": "WEAK_SIGNAL",
    "cut_top": "CUT_OFF_TOP",
    "cut_bottom": "CUT_OFF_BOTTOM",
    "blink": "MISSING_ASCANS",
    "blink_bands": "MISSING_ASCANS",
    "defocus": "-",
}


def _grey(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"))


def _sources(data: Path) -> dict[str, list[Path]]:
    octdl = data / "octdl"
    return {
        "Kermany": sorted((data / "kermany").glob("*/*.jpeg")),
        "OCTDL 4 classes": sorted(
            p for c in ("CNV", "DME", "DRUSEN", "NORMAL") for p in (octdl / c).glob("*.jpg")
        ),
        "OCTDL other findings": sorted((octdl / "other-findings").glob("*/*.jpg")),
    }


def clean(data: Path) -> None:
    from octviewer import load
    from octviewer.core.quality import THRESHOLDS, assess_quality

    frames: dict[str, list[tuple[str, np.ndarray]]] = {
        name: [(p.name, _grey(p)) for p in paths] for name, paths in _sources(data).items()
    }
    frames["Spectralis .vol"] = [
        (f"{p.name}[{i}]", np.asarray(f))
        for p in sorted((data / "vendor").glob("*.vol"))
        for i, f in enumerate(load(p).frames)
    ]
    print(
        f"{'clean source':22s} {'frames':>6s} {'flagged':>8s}  "
        + "  ".join(f"{k} [min..max]" for k in THRESHOLDS)
    )
    for name, items in frames.items():
        verdicts = [(n, assess_quality(f)) for n, f in items]
        flagged = [(n, v) for n, v in verdicts if not v.acceptable]
        ranges = "  ".join(
            f"{min(v.figures[k] for _, v in verdicts):.2f}..{max(v.figures[k] for _, v in verdicts):.2f}"
            for k in THRESHOLDS
        )
        share = 100 * len(flagged) / len(verdicts)
        print(f"{name:22s} {len(verdicts):6d} {len(flagged):4d} {share:4.1f}%  {ranges}")
        for n, v in flagged:
            print(f"    flagged {n}: {', '.join(p.name for p in v.problems)}")


def degraded(data: Path, step: int) -> None:
    from octviewer.core.quality import assess_quality
    from training.data.degrade import degrade

    paths = [p for ps in _sources(data).values() for p in ps[::step]]
    images = [_grey(p) for p in paths]
    print(f"\ndegraded (every {step}th clean B-scan: {len(images)} per cell)")
    print(f"{'kind':12s} {'strength':>8s} {'caught':>7s} {'named':>7s}  expected")
    for kind, strengths in STRENGTHS.items():
        for s in strengths:
            verdicts = [assess_quality(degrade(im, kind, s, seed=i)) for i, im in enumerate(images)]
            caught = np.mean([not v.acceptable for v in verdicts])
            named = np.mean([any(p.name == EXPECTED[kind] for p in v.problems) for v in verdicts])
            print(f"{kind:12s} {s:8.2f} {100 * caught:6.1f}% {100 * named:6.1f}%  {EXPECTED[kind]}")


def device_q(data: Path) -> None:
    from eyepy.io.he.vol_reader import HeVolReader

    from octviewer import load
    from octviewer.core.quality import DEVICE_MINIMUMS, assess_quality

    print("\nSpectralis .vol: the device's Q (B-scan header 'quality') and the verdict")
    for path in sorted((data / "vendor").glob("*.vol")):
        bscans = HeVolReader(path).parsed_file.bscans
        for i, frame in enumerate(load(path).frames):
            q = float(bscans[i].quality)
            v = assess_quality(
                np.asarray(frame),
                device_index=q,
                device_index_name="Spectralis Q",
                device_minimum=DEVICE_MINIMUMS["Spectralis Q"],
            )
            print(
                f"  {path.name}[{i}]  Q {q:5.1f}  {'accepted' if v.acceptable else 'refused'}: {v.summary}"
            )


def cost(data: Path) -> None:
    from PIL import Image

    from octviewer.core.quality import assess_quality

    base = _grey(sorted((data / "kermany").glob("*/*.jpeg"))[0])
    print("\ncost per frame (median wall / CPU over 50 calls)")
    for width in (512, 1024):
        frame = np.asarray(Image.fromarray(base).resize((width, 496)))
        for _ in range(3):
            assess_quality(frame)
        wall, cpu = [], []
        for _ in range(50):
            t0, c0 = time.perf_counter(), time.process_time()
            assess_quality(frame)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(
            f"  {width}x496: {1000 * statistics.median(wall):.1f} ms wall, {1000 * statistics.median(cpu):.1f} ms CPU"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--step", type=int, default=4, help="degrade every STEP-th clean B-scan")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not a.data.is_dir():
        print(f"{a.data} is not present: this benchmark needs the real-data corpus")
        return 1
    sys.path.insert(0, str(ROOT))  # training/ is a top-level package of the checkout
    clean(a.data)
    degraded(a.data, a.step)
    device_q(a.data)
    cost(a.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
