"""What the whole examination withholds on the real development set, per source and per flag
(prints numbers; not a test).

Every frame goes through the real engine (the bundled default model unless ``--model``), so
the figures are what a user sees: for each source the share of frames assessed, and of those
withheld the flag that decided (the first abstaining flag by precedence) and every flag that
fired. Then the per-file verdicts of the out-of-domain set, the vendor files and the DICOM
files, and the cost per frame of each pixel check (quality, anatomy) against the model's own
forward pass in the same run.

    python benchmarks/bench_gates.py [--data ../shared/data] [--model BUNDLE] [--step 1]

``--step N`` takes every N-th image of the big sources (Kermany, OCTDL) for a quicker look.
Kermany figures for the feature distance are in-sample for the shipped ensemble (each member
saw three quarters of them); its out-of-fold rate is in the bundle's card.
"""

from __future__ import annotations

import argparse
import collections
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def _sources(data: Path, step: int) -> dict[str, list[Path]]:
    octdl = data / "octdl"
    return {
        "Kermany": sorted((data / "kermany").rglob("*.jpeg"))[::step],
        "OCTDL (4 classes)": sorted(
            p for c in ("CNV", "DME", "DRUSEN", "NORMAL") for p in (octdl / c).glob("*.jpg")
        )[::step],
        "OCTDL other findings": sorted((octdl / "other-findings").glob("*/*.jpg")),
        "Spectralis .vol": sorted((data / "vendor").glob("*.vol")),
        "out-of-domain set": sorted(p for p in (data / "ood").iterdir() if p.suffix != ".md"),
        "DICOM files": sorted(p for p in (data / "dicom").iterdir() if "DICOMDIR" not in p.name),
    }


def _analyse(engine, paths: list[Path], verbose: bool) -> collections.Counter:  # type: ignore[no-untyped-def]
    import octviewer
    from octviewer.core.inference import AnalysisRequest
    from octviewer.errors import OCTViewerError

    counts: collections.Counter = collections.Counter()
    for path in paths:
        try:
            scan = octviewer.load(path)
        except OCTViewerError as exc:
            counts["not opened"] += 1
            if verbose:
                print(f"  {path.name:40s} not opened: {type(exc).__name__}")
            continue
        result = engine.analyze(scan, AnalysisRequest(cam=False))
        for fr in result.frames:
            counts["frames"] += 1
            decided = fr.withholding_flag
            counts["decided: " + (decided.name if decided else "assessed")] += 1
            for flag in fr.ordered_flags:
                counts["fired: " + flag.name] += 1
            if verbose:
                what = fr.headline if fr.assessable else f"withheld ({decided.name})"
                q = fr.quality.summary if fr.quality is not None else "-"
                print(f"  {path.name:40s} frame {fr.frame_index + 1}: {what:24s} {q}")
    return counts


def _print_counts(name: str, c: collections.Counter) -> None:
    n = c["frames"]
    assessed = c["decided: assessed"]
    share = f"{100 * assessed / n:.1f} %" if n else "-"
    print(f"\n{name}: {n} frame(s), assessed {assessed} ({share}), not opened {c['not opened']}")
    for key in sorted(k for k in c if k.startswith(("decided", "fired"))):
        print(f"  {key:34s} {c[key]:5d}")


def _costs(engine, paths: list[Path]) -> None:  # type: ignore[no-untyped-def]
    import octviewer
    from octviewer.core.anatomy import check_anatomy
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.quality import assess_quality

    frames = [octviewer.load(p).frames[0] for p in paths[:40]]
    scans = [octviewer.load(p) for p in paths[:10]]

    def per_frame(fn) -> float:  # type: ignore[no-untyped-def]
        times = []
        for f in frames:
            t = time.perf_counter()
            fn(f)
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)

    q, a = per_frame(assess_quality), per_frame(check_anatomy)
    times = []
    for s in scans:
        t = time.perf_counter()
        engine.analyze(s, AnalysisRequest(cam=True))
        times.append(time.perf_counter() - t)
    model = 1000 * statistics.median(times)
    print(
        f"\ncost per frame (median, {len(frames)} Kermany frames): quality {q:.1f} ms, anatomy "
        f"{a:.1f} ms; the whole analysis with heatmap {model:.0f} ms (checks {100 * (q + a) / model:.1f} %)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=None)
    parser.add_argument("--step", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (args.data / "kermany").is_dir():
        print(f"no development data at {args.data}: nothing to measure", file=sys.stderr)
        return 0
    import octviewer

    engine = octviewer.load_model(args.model)
    print(f"model {engine.identity}, reads: {engine.scope.description or 'not stated'}")
    sources = _sources(args.data, max(1, args.step))
    for name, paths in sources.items():
        verbose = name in ("Spectralis .vol", "out-of-domain set", "DICOM files")
        if verbose:
            print(f"\n{name}, per file:")
        _print_counts(name, _analyse(engine, paths, verbose))
    _costs(engine, sources["Kermany"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
