"""Fuzz the loaders: mutated model bundles and scans, each case in a memory-limited child.

    PYTHONPATH=. python scripts/fuzz_loaders.py --cases 2000 --seed 1 --out fuzz.json

Seeds (a tiny float32 and int8 bundle, PNG/JPEG/BMP/TIFF, a float32 TIFF, DICOM raw, RLE,
JPEG 2000, JPEG baseline, the test ``.vol``) are mutated by byte flips, truncation, zeroed
runs, structured edits of the safetensors header and the bundle configuration (hostile values:
NaN, 1e400, {}, [], nesting bombs, huge depths), NaN/Inf tensor bytes, DICOM attributes with
wrong types or counts, more frames declared than stored, and extreme float pixels.

``--shared DIR`` adds the real files of DIR (``dicom/``, ``vendor/``, ``ood/*.tif``) as seeds;
scans also get structured edits: a DICM preamble followed by megabytes of zeros, zeros appended,
``.vol`` header sizes (4 billion pixels...), TIFF IFD chains made cyclic or strips removed, bad
VRs in a DICOMDIR, a damaged file in a folder beside a good copy.

The seeds and the mutations (the case stream) are in ``scripts/fuzz_cases.py``; this file
runs the cases and counts their outcomes.

Each case runs in a worker process with ``RLIMIT_DATA`` (``--mem-gb``) and a timeout
(``--timeout``); a worker that hangs, dies or grew its peak memory is replaced. Outcomes: ``ok``
(loaded, finite results), ``refused`` (an octviewer error), ``last_resort`` (refused by a
catch-all handler, or a message naming a bare Python exception type), ``memory`` (a
MemoryError, or peak RSS grew by more than ``--mem-growth-mb``), ``foreign`` (another
exception escaped), ``nonfinite``, ``phantom_frames`` (more frames than the file holds),
``blank_frames`` (all-zero frames with no note), ``hang``, ``died``; ``slow`` counts cases over
``--slow`` seconds. The same ``--seed`` gives the same cases, so runs on two commits compare;
``--minutes`` gives both the same time budget instead.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import re
import resource
import select
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from fuzz_cases import make_case, make_seeds, shared_seeds

ROOT = Path(__file__).resolve().parent.parent
LAST_RESORT = ("not what its format promises", "could not be read from disk",
               "The analysis failed (")  # fmt: skip
#: a message that names a Python exception type instead of the cause
BARE_TYPE = re.compile(r"\b(?:[A-Z][A-Za-z]*(?:Error|Exception)|StopIteration|Stream\w*Error_?)\b")
log = logging.getLogger("fuzz")


# --- the worker -------------------------------------------------------------------------------
def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    frame = tb[-1] if tb else None
    return f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def run_case(case: dict, ref: object) -> dict:
    """One case, its outcome, time and peak memory growth (a blow-up is ``memory``)."""
    before, t0 = _peak_mb(), time.perf_counter()
    res = _run_case(case, ref)
    res["s"] = round(time.perf_counter() - t0, 3)
    res["grew_mb"] = round(_peak_mb() - before)
    return res


def _run_case(case: dict, ref: object) -> dict:
    import numpy as np

    import octviewer
    from octviewer.core.inference import AnalysisRequest
    from octviewer.errors import OCTViewerError

    bundle = case["seed"].startswith("bundle")
    try:
        if bundle:
            engine = octviewer.load_model(case["path"], device="cpu")
            scan = octviewer.load(ROOT / "tests/data/io/kermany/NORMAL-351109-1.jpeg")
        else:
            engine = ref
            scan = octviewer.load(case["path"])
        if case["frames"] and scan.n_frames > case["frames"]:
            return {"kind": "phantom_frames", "detail": f"{scan.n_frames}>{case['frames']}"}
        blank = [i for i, f in enumerate(scan.frames) if not f.any()]
        marks = ("blank", "zero", "hold no image")  # the last: core.io.note_blank_frames
        if blank and not any(m in n for n in scan.metadata.notes for m in marks):
            return {"kind": "blank_frames", "detail": f"{len(blank)}/{scan.n_frames}"}
        result = engine.analyze(scan, AnalysisRequest(frames=list(range(min(scan.n_frames, 3)))))
        for fr in result.frames:
            if not np.isfinite(fr.probabilities).all() or (
                fr.cam is not None and not np.isfinite(fr.cam).all()
            ):
                return {"kind": "nonfinite", "detail": case["op"]}
        return {"kind": "ok"}
    except OCTViewerError as exc:
        cause = exc.__cause__ or exc
        where = f"{type(cause).__name__}@{_where(cause)}"
        if any(isinstance(e, MemoryError) for e in _chain(exc)):
            return {"kind": "memory", "detail": where, "msg": str(exc)[:160]}
        if any(s in str(exc) for s in LAST_RESORT) or BARE_TYPE.search(str(exc)):
            return {"kind": "last_resort", "detail": where, "msg": str(exc)[:160]}
        return {"kind": "refused", "detail": type(exc).__name__, "msg": str(exc)[:160]}
    except MemoryError as exc:
        return {"kind": "memory", "detail": f"MemoryError@{_where(exc)}"}
    except RecursionError as exc:
        return {"kind": "foreign", "detail": f"RecursionError@{_where(exc)}"}
    except Exception as exc:
        return {"kind": "foreign", "detail": f"{type(exc).__name__}@{_where(exc)}"}


def worker(mem_gb: float) -> None:
    import resource

    limit = int(mem_gb * 1024**3)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    logging.disable(logging.CRITICAL)
    import warnings

    warnings.simplefilter("ignore")
    import octviewer

    ref = octviewer.load_model(sys.argv[sys.argv.index("--ref") + 1], device="cpu")
    out = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # library prints must not mix with results
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        res = run_case(json.loads(line), ref)
        out.write(json.dumps(res) + "\n")
        out.flush()


class Worker:
    def __init__(self, args: argparse.Namespace, ref: Path) -> None:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--mem-gb",
            str(args.mem_gb),
            "--ref",
            str(ref),
        ]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=os.environ)  # fmt: skip
        ready, _, _ = select.select([self.p.stdout], [], [], 300)  # start-up is not a case
        if not ready or self.p.stdout.readline().strip() != "ready":
            raise SystemExit("the fuzz worker did not start")

    def ask(self, case: dict, timeout: float) -> dict:
        try:
            self.p.stdin.write(json.dumps(case) + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            return {"kind": "died", "detail": f"rc {self.p.poll()}"}
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        line = self.p.stdout.readline() if ready else ""
        if not ready:
            return {"kind": "hang", "detail": f">{timeout:.0f}s"}
        if not line:
            return {"kind": "died", "detail": f"rc {self.p.wait()}"}
        return json.loads(line)

    def close(self) -> None:
        self.p.kill()
        self.p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--mem-gb", type=float, default=3.0)
    ap.add_argument("--mem-growth-mb", type=float, default=512.0)
    ap.add_argument("--slow", type=float, default=2.0)
    ap.add_argument("--minutes", type=float, help="run for this long instead of --cases")
    ap.add_argument("--shared", type=Path, help="also mutate the real files of this folder")
    ap.add_argument("--scans-only", action="store_true", help="no model bundle cases")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--ref")
    args = ap.parse_args()
    if args.worker:
        return worker(args.mem_gb)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    import warnings

    warnings.simplefilter("ignore")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="octfuzz") as tmp:
        work = Path(tmp)
        (work / "seeds").mkdir()
        seeds = make_seeds(work / "seeds")
        if args.shared:
            seeds.update(shared_seeds(args.shared))
        ref = seeds["bundle_float32"][0]
        if args.scans_only:
            seeds = {k: v for k, v in seeds.items() if not k.startswith("bundle")}
        rng = random.Random(args.seed)
        w = Worker(args, ref)
        rows = []
        t_start, i = time.time(), 0
        while (time.time() - t_start < args.minutes * 60) if args.minutes else i < args.cases:
            case = make_case(seeds, rng, work, i)
            res = w.ask(case, args.timeout)
            if res.get("grew_mb", 0) > args.mem_growth_mb and res["kind"] != "memory":
                res = {**res, "kind": "memory", "detail": f"+{res['grew_mb']} MB peak"}
            if res["kind"] in ("hang", "died", "memory"):
                w.close()
                w = Worker(args, ref)
            rows.append({**case, **res})
            _clean(Path(case["path"]))
            i += 1
            if i % 200 == 0:
                log.info("%d cases, %.0f s", i, time.time() - t0)
        w.close()
    summarise(rows, time.time() - t0, args)


def _clean(path: Path) -> None:
    """Cases can be tens of megabytes: remove each once it ran."""
    import shutil

    if path.parent.name.startswith("folder"):
        shutil.rmtree(path.parent, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def summarise(rows: list[dict], elapsed: float, args: argparse.Namespace) -> None:
    by_target = collections.defaultdict(collections.Counter)
    details = collections.Counter()
    for r in rows:
        target = "bundle" if r["seed"].startswith("bundle") else "scan"
        by_target[target][r["kind"]] += 1
        if r["kind"] not in ("ok", "refused"):
            details[(target, r["kind"], r.get("detail", ""), r["seed"], r["op"])] += 1
    slow = [r for r in rows if r.get("s", 0) > args.slow]
    out = [f"{len(rows)} cases in {elapsed:.0f} s (seed {args.seed})"]
    for target, counts in sorted(by_target.items()):
        out.append(f"  {target}: {sum(counts.values())} cases: " + ", ".join(
            f"{k} {v}" for k, v in counts.most_common()))  # fmt: skip
    out.append(f"  slow (> {args.slow:g} s, not hangs): {len(slow)}")
    for (target, kind, detail, seed, op), n in details.most_common(40):
        out.append(f"    {n:4d}  {target:6s} {kind:14s} {detail:40s} {seed} / {op}")
    for r in sorted(slow, key=lambda r: -r["s"])[:8]:
        out.append(f"    slow {r['s']:6.1f} s  {r['kind']:10s} {r['seed']} / {r['op']}")
    log.info("%s", "\n".join(out))
    if args.out:
        args.out.write_text(json.dumps({"elapsed_s": elapsed, "rows": rows}, indent=0))


if __name__ == "__main__":
    main()
