"""Soak: many B-scans opened one after another in one real window (prints numbers; not a test).

What it measures (docs/SPEED.md, "Memory"):

1. ``--scans N`` (default 1000): N B-scan files opened one after another in one offscreen
   ``MainWindow``, each shown when its result arrives, as a reader clicks through a batch. RSS
   after start-up and warm-up (0 scans), at N/2 and at N; the growth per scan; the longest
   event-loop stall (a 10 ms QTimer that measures its own lateness, as bench_gui does) and its
   99th percentile. Budget: RSS at 1,000 scans < 2.5 GB; longest stall <= 50 ms.
2. ``--volume N`` (0 = skip): one N-frame volume (real Kermany B-scans, with a localizer)
   analysed in the same kind of window; RSS before it is opened, after its frames exist, after
   the analysis, and the stall while it runs.

    python benchmarks/bench_soak.py [--model default|tiny|BUNDLE] [--scans 1000] [--volume 0]

``--model default``: the bundled model (the app's own; ~0.2-0.4 s a B-scan on two cores);
``tiny``: a 32-wide MIRAGE-family ViT with random weights at 64 px (timing of the viewer, not
of the model). Files: ``../shared/data/kermany`` when present, else ``tests/data/kermany``,
linked under N distinct names in a temporary folder (every open reads and decodes its file).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's octviewer, not an installed one
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger("bench_soak")
INTERVAL_S = 0.010


def rss_mib() -> float:
    """Resident set size of this process (MiB), after a collection and malloc_trim."""
    from octviewer.core.device import release_free_memory

    gc.collect()
    release_free_memory()
    with Path("/proc/self/status").open() as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class StallProbe:
    """A QTimer every 10 ms that records how late each tick came (the event loop's stalls)."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self.where: list[int] = []  # the benchmark's step (scans opened) at each tick
        self.step = 0
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(int(INTERVAL_S * 1000))
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self.where.append(self.step)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self.where.clear()
        self.skip()
        self._timer.start()

    def skip(self) -> None:
        """Do not count the time since the last tick (the benchmark's own measuring)."""
        self._last = time.perf_counter()

    def worst_ms(self) -> float:
        return (max(self.gaps, default=INTERVAL_S) - INTERVAL_S) * 1000

    def longest(self, k: int = 5) -> str:
        """The ``k`` longest stalls (ms) with the step each came in: "120 ms @3, ..."."""
        top = sorted(zip(self.gaps, self.where, strict=True), reverse=True)[:k]
        return ", ".join(f"{(g - INTERVAL_S) * 1000:.0f} ms @{w}" for g, w in top)

    def stop(self) -> tuple[float, float, int]:
        """(longest stall ms, 99th percentile ms, ticks)."""
        self._timer.stop()
        if not self.gaps:
            return 0.0, 0.0, 0
        s = sorted(self.gaps)
        late = [(g - INTERVAL_S) * 1000 for g in (s[-1], s[int(len(s) * 0.99)])]
        return late[0], late[1], len(s)


def scan_files(n: int, tmp: Path) -> list[Path]:
    """``n`` B-scan files under distinct names (links to the real images, cycled)."""
    shared = ROOT.parent / "shared" / "data" / "kermany"
    src = sorted(shared.rglob("*.jpeg")) if shared.is_dir() else []
    src = src or sorted((ROOT / "tests" / "data" / "kermany").glob("*.jpeg"))
    out = tmp / "scans"
    out.mkdir()
    files = []
    for i in range(n):
        p = out / f"bscan_{i:04d}{src[i % len(src)].suffix}"
        p.symlink_to(src[i % len(src)].resolve())
        files.append(p)
    return files


def make_engine(choice: str, tmp: Path):
    """The engine as every launch but the first loads it: for the bundled model, its int8
    network is written to this run's own cache folder first (never the user's: its results
    would answer the soak's scans without the engine)."""
    from octviewer.core.cache_dir import CACHE_ENV
    from octviewer.core.engine import Engine

    os.environ[CACHE_ENV] = str(tmp / "cache")
    if choice == "default":
        Engine(None, int8_cache="sync")  # builds and stores the int8 network
        return Engine(None)
    if choice == "tiny":
        from helpers_models import make_tiny_bundle

        return Engine(make_tiny_bundle(tmp / "tiny.safetensors"))
    return Engine(choice)


def wait_for(app, cond, timeout_s: float = 600.0) -> None:
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("no result in time")


def soak_scans(app, win, files: list[Path]) -> None:
    """Open ``files`` one after another, showing each as its result arrives."""
    c = win.controller
    done: set[int] = set()
    c.result_ready.connect(done.add)
    c.analysis_failed.connect(done.add)
    probe = StallProbe()
    marks = {0: rss_mib()}
    n = len(files)
    half = n // 2
    t0 = time.perf_counter()
    probe.start()
    for i, path in enumerate(files, 1):
        probe.step = i
        (uid,) = win.open_paths([path])
        wait_for(app, lambda u=uid: u in done)
        win.show_entry(uid)
        for _ in range(3):  # the frame and its heatmap painted
            app.processEvents()
        if i in (half, n):
            marks[i] = rss_mib()
            log.info(
                "%d scans: RSS %.0f MiB, longest stall so far %.0f ms",
                i,
                marks[i],
                probe.worst_ms(),
            )
            probe.skip()
        elif i % 100 == 0:
            log.info("%d scans, longest stall so far %.0f ms", i, probe.worst_ms())
    top = probe.longest()
    worst, p99, ticks = probe.stop()
    elapsed = time.perf_counter() - t0
    print(f"1. {n} B-scans opened one after another in {elapsed:.0f} s ({elapsed / n:.2f} s each)")
    print("   RSS: " + ", ".join(f"{k} scans {v:.0f} MiB" for k, v in marks.items()))
    print(
        f"   growth per scan: {(marks[n] - marks[0]) / n * 1024:.0f} KiB over all, "
        f"{(marks[n] - marks[half]) / (n - half) * 1024:.0f} KiB over the second half "
        f"(budget: RSS at 1,000 scans < 2560 MiB)"
    )
    print(f"   longest event-loop stall {worst:.0f} ms, p99 {p99:.0f} ms over {ticks} ticks")
    print(f"   longest stalls (ms @ scan): {top}")


def soak_volume(app, win, n_frames: int) -> None:
    """One ``n_frames`` volume with a localizer, analysed and shown."""
    from ui_helpers import kermany_volume

    c = win.controller
    before = rss_mib()
    vol = kermany_volume(n_frames, with_localizer=True)
    frames_mib = vol.frames.nbytes / 2**20
    opened = rss_mib()
    done: set[int] = set()
    c.result_ready.connect(done.add)
    probe = StallProbe()
    probe.start()
    t0 = time.perf_counter()
    uid = c.add_scan(vol)
    win.show_entry(uid)
    wait_for(app, lambda: uid in done, timeout_s=3600)
    for _ in range(50):  # the shown frame's heatmap arrives after the result
        app.processEvents()
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    worst, p99, ticks = probe.stop()
    del vol
    after = rss_mib()
    print(
        f"2. {n_frames}-frame volume ({frames_mib:.0f} MiB of frames) analysed in {elapsed:.0f} s"
    )
    print(
        f"   RSS before {before:.0f} MiB, frames made {opened:.0f} MiB, analysed {after:.0f} MiB "
        f"(analysis added {(after - opened) / n_frames * 1024:.1f} KiB per frame)"
    )
    print(f"   longest event-loop stall {worst:.0f} ms, p99 {p99:.0f} ms over {ticks} ticks")


def main(argv: list[str] | None = None) -> int:
    from octviewer.core.inference import AnalysisRequest

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="default")
    ap.add_argument("--scans", type=int, default=1000)
    ap.add_argument("--volume", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)

    from PySide6.QtWidgets import QApplication
    from ui_helpers import KERMANY

    from octviewer.core.io import load
    from octviewer.ui.app import favour_the_gui_thread, freeze_heap_when_model_ready
    from octviewer.ui.main_window import MainWindow
    from octviewer.ui.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        engine = make_engine(args.model, tmp)
        engine.analyze(load(KERMANY[0]), AnalysisRequest(cam=True))  # warm
        print(f"model: {engine.identity} on {engine.device} ({args.model})")
        win = MainWindow(Settings.at(tmp / "s.ini"))
        win.resize(1400, 900)
        freeze_heap_when_model_ready(win.controller)  # as the app's main() does
        favour_the_gui_thread()
        win.show()
        win.controller.set_engine(engine)
        app.processEvents()
        if args.scans:
            soak_scans(app, win, scan_files(args.scans, tmp))
        if args.volume:
            soak_volume(app, win, args.volume)
        win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
