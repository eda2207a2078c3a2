"""Launch of the real app: process start -> window shown -> first result on screen.

Starts ``python -m octviewer --samples`` (offscreen Qt) as a new user would: empty settings,
no stored results. The app's log (``window shown N s after start``, ``first result shown N s
after start``) is read while it runs; the clock here starts just before the process is created
and stops when a line appears in the log file (polled every 5 ms). The process is then stopped
by its pid.

    python benchmarks/bench_launch.py [--repeats 5] [--cold] [--against OTHER_CHECKOUT] [-- APP ARGS]

``--cold``: also an empty int8 network cache before every run (the first launch after an
install or a model change); by default the cache the first run writes is kept, as on every
later launch. Prints medians, the load average and PASS/FAIL against the goals (window <= 1 s,
first result <= 2 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WINDOW_GOAL_S = 1.0
RESULT_GOAL_S = 2.0
MARKS = {"window": "window shown", "result": "first result shown", "engine": "engine ready"}
#: Before that line existed (main before issue 27): the controller's line for the first result
#: delivered, logged just before the window draws it.
FALLBACK = {"result": "analysed scan"}


def loadavg() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.2f} {b:.2f} {c:.2f}"


@dataclass(frozen=True)
class Launch:
    """One way to launch the app: its arguments; ``cold``: an empty int8 network cache first;
    ``fill_cache``: keep the app open until its int8 network cache has been written; ``repo``:
    the checkout whose app runs; ``legacy``: an app without the 'first result shown' line
    (:data:`FALLBACK`)."""

    app_args: tuple[str, ...] = ("--samples",)
    cold: bool = False
    timeout: float = 90.0
    fill_cache: bool = False
    repo: Path = ROOT
    legacy: bool = False


def one_launch(tmp: Path, launch: Launch) -> dict:
    """One launch; returns seconds from spawn to each mark, and the app's own log lines."""
    app_args, timeout, repo = launch.app_args, launch.timeout, launch.repo
    home = tmp / "home"
    shutil.rmtree(home / "config", ignore_errors=True)
    shutil.rmtree(home / "data", ignore_errors=True)
    shutil.rmtree(home / "cache" / "results", ignore_errors=True)  # a new user: no results
    if launch.cold:
        shutil.rmtree(home / "cache", ignore_errors=True)
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        OCTVIEWER_CACHE_DIR=str(home / "cache"),
    )
    env.pop("OMP_WAIT_POLICY", None)  # the app sets its own
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "octviewer", *app_args],
        cwd=repo,  # python -m octviewer: the checkout in repo
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: dict[str, float] = {}
    lines: list[str] = []
    log: Path | None = None
    try:
        while "result" not in seen:
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"no first result within {timeout:.0f} s: {lines[-5:]}")
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited ({proc.returncode}): {lines[-5:]}")
            if log is None:
                found = list((home / "data").rglob("octviewer.log"))
                log = found[0] if found else None
            if log is not None:
                lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
                now = time.monotonic() - t0
                for key, text in MARKS.items():
                    alt = FALLBACK.get(key, text) if launch.legacy else text
                    if key not in seen and any(text in line or alt in line for line in lines):
                        seen[key] = now
            time.sleep(0.005)
        while launch.fill_cache and not list((home / "cache" / "int8").glob("*.json")):
            if time.monotonic() - t0 > timeout or proc.poll() is not None:
                raise RuntimeError("the int8 network cache was not written")
            time.sleep(0.05)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    seen["lines"] = [line for line in lines if any(t in line for t in MARKS.values())]
    return seen


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="empty int8 cache before every run")
    ap.add_argument("--repo", type=Path, default=ROOT, help="launch this checkout's app")
    ap.add_argument(
        "--against",
        type=Path,
        help="also launch this checkout's app (e.g. main before a change), alternating with "
        "--repo's launch by launch so that both meet the same load; prints both",
    )
    ap.add_argument(
        "--legacy", action="store_true", help="an app before 'first result shown' (main before #27)"
    )
    ap.add_argument("app_args", nargs="*", default=["--samples"])
    return ap


def prepared_launch(args: argparse.Namespace, repo: Path, tmp: Path) -> Launch:
    """The launch of ``repo``'s app; fills its int8 cache first unless ``--cold``."""
    if not args.cold:  # the first launch fills the int8 cache; not counted
        warm_up = Launch(tuple(args.app_args), cold=True, fill_cache=True, repo=repo)
        first = one_launch(tmp, warm_up)
        print(f"  {repo.name}: cache-filling launch: first result {first['result']:.2f} s")
    legacy = args.legacy and (args.against is None or repo == args.against)
    return Launch(tuple(args.app_args), args.cold, repo=repo, legacy=legacy)


def report(repo: Path, runs: list[dict], cold: bool) -> float:
    """Print the medians of ``runs`` with PASS/FAIL; returns the first result's median."""
    win = statistics.median(r.get("window", float("inf")) for r in runs)
    res = statistics.median(r["result"] for r in runs)
    state = "cold int8 cache" if cold else "warm int8 cache"
    print(f"\n{repo}: medians over {len(runs)} launches ({state}; {loadavg()}):")
    print(
        f"  {'PASS' if win <= WINDOW_GOAL_S else 'FAIL'}  launch -> window {win:.2f} s (goal <= 1 s)"
    )
    print(
        f"  {'PASS' if res <= RESULT_GOAL_S else 'FAIL'}  launch -> first result {res:.2f} s "
        "(goal <= 2 s)"
    )
    return res


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    repos = [r for r in (args.against, args.repo) if r is not None]
    print(f"{sys.executable} -m octviewer {' '.join(args.app_args)}; {loadavg()}")
    runs: dict[Path, list[dict]] = {r: [] for r in repos}
    with tempfile.TemporaryDirectory() as td:
        homes = {r: Path(td) / str(k) for k, r in enumerate(repos)}
        plan = {r: prepared_launch(args, r, homes[r]) for r in repos}
        for i in range(args.repeats):
            for repo in repos:  # alternating: both meet the same load
                r = one_launch(homes[repo], plan[repo])
                runs[repo].append(r)
                print(
                    f"  {repo.name} run {i + 1}: window {r.get('window', float('nan')):.2f} s, "
                    f"engine ready {r.get('engine', float('nan')):.2f} s, first result "
                    f"{r['result']:.2f} s; {loadavg()}"
                )
        for line in runs[args.repo][-1]["lines"]:
            print(f"    log: {line}")
    medians = [report(repo, runs[repo], args.cold) for repo in repos]
    if len(medians) == 2:
        print(f"\nfirst result: {medians[1]:.2f} s against {medians[0]:.2f} s "
              f"({medians[1] / medians[0]:.2f}x, paired launch by launch)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
