"""Viewer timings (prints numbers; not a test).

1. Process start -> main window shown (target <= 1.5 s), and that torch is not imported yet.
2. Longest GUI event-loop stall (10 ms timer probe) while a 49-frame volume with a localizer
   is analysed and its disease map drawn (target <= 50 ms); the map build and one localizer
   repaint timed on their own.
3. Drop -> result shown for one B-scan with a warm model, against the engine's own
   prediction + CAM time (target <= engine + 150 ms).

    python benchmarks/bench_gui.py [--model BUNDLE] [--repeats 5]

Without ``--model``: the bundled default model if installed, else a MIRAGE-family ViT with
random weights (512 px input, patch 32, width 384, depth 6) — timing only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CHILD = textwrap.dedent(
    """
    import sys, time
    from PySide6.QtWidgets import QApplication
    from octviewer.ui import app, main_window

    def start(self, *a, **k):
        print("SHOWN", time.time(), "torch" in sys.modules, flush=True)
        QApplication.quit()

    main_window.MainWindow.start = start
    app.main([])
    """
)


def bench_startup(repeats: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as td:
        env = dict(os.environ, XDG_CONFIG_HOME=td, XDG_DATA_HOME=td)  # keep HOME: font caches
        for _ in range(repeats):
            t0 = time.time()
            out = subprocess.run(
                [sys.executable, "-c", CHILD],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=120,
            )
            line = next((x for x in out.stdout.splitlines() if x.startswith("SHOWN")), None)
            if line is None:
                raise RuntimeError(out.stderr[-2000:])
            _, t, torch_loaded = line.split()
            if torch_loaded != "False":
                print("  WARNING: torch was imported before the window was shown")
            times.append(float(t) - t0)
    return times


def _model(arg: str | None, tmp: Path) -> Path:
    from octviewer.resources import default_model_path

    if arg:
        return Path(arg)
    if default_model_path().is_file():
        return default_model_path()
    from helpers_models import make_tiny_bundle

    kw = {"embed_dim": 384, "depth": 6, "num_heads": 6, "img_size": 512, "patch_size": 32}
    return make_tiny_bundle(tmp / "bench.safetensors", img_size=512, arch_kwargs=kw)


@dataclass(frozen=True)
class GuiRun:
    """The shown window with its warm engine, the options, and the scan ids whose results
    arrived (``done``, filled by the controller's ``result_ready``)."""

    app: Any
    win: Any
    engine: Any
    args: argparse.Namespace
    done: list[int] = field(default_factory=list)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=49)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    st = bench_startup(args.repeats)
    print(
        f"1. start -> window shown: median {statistics.median(st):.2f} s (min {min(st):.2f}, max {max(st):.2f}; target <= 1.5 s)"
    )

    from PySide6.QtWidgets import QApplication

    from octviewer.core.engine import Engine
    from octviewer.ui.app import favour_the_gui_thread, freeze_heap_when_model_ready
    from octviewer.ui.main_window import MainWindow
    from octviewer.ui.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        bundle = _model(args.model, tmp)
        engine = Engine(bundle)
        print(f"   model: {engine.identity} on {engine.device}, threads={engine.threads}")
        win = MainWindow(Settings.at(tmp / "s.ini"))
        win.resize(1400, 900)
        freeze_heap_when_model_ready(win.controller)  # as the app's main() does
        favour_the_gui_thread()
        win.show()
        win.controller.set_engine(engine)
        app.processEvents()
        run = GuiRun(app, win, engine, args)
        vol, uid = bench_stall(run)
        bench_disease_map(run, vol, uid)
        bench_drop(run)
        win.close()
    return 0


def bench_stall(run: GuiRun) -> tuple[Any, int]:
    """2. The longest event-loop stall while a volume with a localizer is analysed; returns
    the volume and its scan id."""
    from PySide6.QtCore import QTimer
    from ui_helpers import KERMANY, kermany_volume

    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.io import load

    app, engine, args, c = run.app, run.engine, run.args, run.win.controller
    vol = kermany_volume(args.frames, with_localizer=True)
    engine.analyze(load(KERMANY[0]), AnalysisRequest(cam=True))  # warm
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(tick)
    done = run.done
    c.result_ready.connect(lambda uid: done.append(uid))
    probe.start()
    t0 = time.perf_counter()
    uid = c.add_scan(vol)
    while uid not in done:
        app.processEvents()
        time.sleep(0.001)
    t_vol = time.perf_counter() - t0
    for _ in range(50):  # the shown frame's CAM arrives after the result
        app.processEvents()
        time.sleep(0.002)
    probe.stop()
    worst = (max(gaps) - 0.010) * 1000
    print(
        f"2. {args.frames}-frame volume analysed in {t_vol:.2f} s; longest event-loop stall "
        f"{worst:.0f} ms over {len(gaps)} ticks (p99 {(sorted(gaps)[int(len(gaps) * 0.99)] - 0.010) * 1000:.0f} ms; target <= 50 ms)"
    )
    return vol, uid


def bench_disease_map(run: GuiRun, vol: Any, uid: int) -> None:
    """The disease map's build and one localizer repaint, timed on their own."""
    from octviewer.core.disease_map import build_disease_map

    win, args, c = run.win, run.args, run.win.controller
    res = c.entry(uid).result
    builds, paints = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        build_disease_map(vol, res)
        builds.append(time.perf_counter() - t)
        t = time.perf_counter()
        win.localizer.repaint()
        paints.append(time.perf_counter() - t)
    print(
        f"   disease map of {args.frames} frames: build median "
        f"{statistics.median(builds) * 1000:.2f} ms, localizer repaint "
        f"{statistics.median(paints) * 1000:.1f} ms (map shown: {win.localizer.map is not None})"
    )


def bench_drop(run: GuiRun) -> None:
    """3. Drop -> result shown for one B-scan with the warm model, against the engine alone."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication
    from ui_helpers import KERMANY

    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.io import load

    app, win, engine, args, done = run.app, run.win, run.engine, run.args, run.done
    c = win.controller
    # 3. drop -> result for one B-scan, warm model
    path = KERMANY[1]
    scan = load(path)
    eng_t = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        engine.analyze(scan, AnalysisRequest(cam=True))
        eng_t.append(time.perf_counter() - t)
    load_t = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        load(path)
        load_t.append(time.perf_counter() - t)
    ui_t = []
    for _ in range(args.repeats):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        ev = QDropEvent(
            QPointF(300, 300),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        enter = QDragEnterEvent(
            QPoint(300, 300),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        done.clear()
        t = time.perf_counter()
        QApplication.sendEvent(win, enter)  # a drop is only delivered after an accepted enter
        QApplication.sendEvent(win, ev)
        (new_uid,) = [e.uid for e in c.entries()][-1:]
        assert c.entry(new_uid).path == path, "the drop was not accepted"
        while new_uid not in done:
            app.processEvents()
            time.sleep(0.0005)
        win.show_entry(new_uid)
        app.processEvents()  # result painted
        ui_t.append(time.perf_counter() - t)
    e_med, l_med, u_med = (
        statistics.median(eng_t),
        statistics.median(load_t),
        statistics.median(ui_t),
    )
    print(
        f"3. drop -> result shown: median {u_med * 1000:.0f} ms; engine prediction + CAM {e_med * 1000:.0f} ms, "
        f"file decode {l_med * 1000:.0f} ms; viewer overhead {(u_med - e_med) * 1000:.0f} ms "
        f"incl. decode (target <= 150 ms)"
    )


if __name__ == "__main__":
    sys.exit(main())
