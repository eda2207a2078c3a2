"""What the out-of-distribution score costs per frame. Prints numbers; not a test.

    .venv/bin/python benchmarks/bench_ood.py [--bundle B.safetensors] [--repeats 15]

Two arms, alternated so machine load hits both alike, on one real-sized B-scan (496x512):
A: ``Engine.analyze`` as shipped (feature hooks on the classifier layers + the score);
B: the same engine with the hooks and the score switched off.
Also the score alone (``OODModel.score`` on one frame's features). Target: the score adds
<= 2 % to one B-scan's prediction + CAM (PASS/FAIL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def main() -> None:
    from octviewer.core.inference import AnalysisRequest

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bundle", type=Path, default=None, help="default: the bundled model")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    from octviewer.core import ood as ood_mod
    from octviewer.core.engine import Engine
    from octviewer.core.scan import Modality, Scan, ScanMetadata

    engine = Engine(a.bundle, device="cpu", threads=a.threads)
    if engine.ood is None:
        raise SystemExit("this bundle has no OOD statistics: nothing to measure")
    rng = np.random.default_rng(0)
    frame = (rng.random((496, 512)) * 255).astype(np.uint8)
    scan = Scan(frame, ScanMetadata(source_paths=(), format="PNG", modality=Modality.OCT_BSCAN))
    stats = engine.ood

    class NoTap(ood_mod.FeatureTap):
        @contextlib.contextmanager
        def recording(self, model):  # type: ignore[override]
            yield self

    def with_score() -> float:
        engine.ood = stats
        t = time.perf_counter()
        engine.analyze(scan, AnalysisRequest(cam=True))
        return time.perf_counter() - t

    def without() -> float:
        engine.ood = None
        import octviewer.core.engine as eng

        real = eng.FeatureTap
        eng.FeatureTap = NoTap  # type: ignore[misc]
        try:
            t = time.perf_counter()
            engine.analyze(scan, AnalysisRequest(cam=True))
            return time.perf_counter() - t
        finally:
            eng.FeatureTap = real  # type: ignore[misc]
            engine.ood = stats

    with_score(), without()  # warm-up
    a_t, b_t = [], []
    for _ in range(a.repeats):
        a_t.append(with_score())
        b_t.append(without())
    tap = ood_mod.FeatureTap()
    import torch

    from octviewer.core.preprocess import preprocess_frames

    with torch.inference_mode(), tap.recording(engine.model):
        engine.model(preprocess_frames(scan.frames, engine.config.preprocess))
    feats = tap.features()
    score_t = []
    for _ in range(200):
        t = time.perf_counter()
        stats.score(feats)
        score_t.append(time.perf_counter() - t)
    ma, mb = statistics.median(a_t), statistics.median(b_t)
    ms = statistics.median(score_t) * 1e3
    ratio = statistics.median(x / y for x, y in zip(a_t, b_t, strict=True))
    print(f"model: {engine.identity}, {len(stats.networks)} network(s), {a.threads} thread(s)")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"A analyze + CAM with OOD score: median {ma * 1e3:.1f} ms")
    print(f"B analyze + CAM without:        median {mb * 1e3:.1f} ms")
    print(f"score alone (OODModel.score, one frame): median {ms:.3f} ms")
    print(f"A/B paired median ratio {ratio:.3f}")
    ok = ratio <= 1.02
    print(f"{'PASS' if ok else 'FAIL'}  OOD score adds <= 2 % per frame: ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
