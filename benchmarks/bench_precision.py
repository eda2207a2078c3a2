"""bf16 or int8 against fp32 on real B-scans: top-1 agreement, probability change, OOD score
change.

    .venv/bin/python benchmarks/bench_precision.py --images ../shared/data/kermany \\
        --out /tmp/prec.npz                      # default model, every image, 1 thread
    .venv/bin/python benchmarks/bench_precision.py --mode int8 --bundle B --images DIR --out X
                                                 # int8 (``quantize=True``) instead of bf16

Two engines on the same bundle, ``precision="fp32"`` and ``precision="auto"`` (bf16 where the
CPU computes it natively), see every image in the same batches, alternately (so machine load
hits both alike). Per image: the calibrated probabilities and the pre-logit features of every
network (what the OOD score reads). The OOD statistics are fitted here, from the fp32 features,
as ``octviewer-train ood`` does (class means and shrunk covariance on one half of the patients,
scale and 2 % false-flag threshold on the other half), then both precisions' features are
scored with them: the change of score and the number of OUT_OF_DISTRIBUTION decisions that flip.
When the bundle carries OOD statistics (the default model does since 2.1.0) its own statistics
and threshold are used instead of the fit. Partial results are saved every few batches to
``--out``, and ``--report-only`` prints them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks.measure import load  # noqa: E402


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    order = np.random.default_rng(0).permutation(len(files))  # partial runs cover all classes
    return [files[i] for i in order]


def run(args: argparse.Namespace) -> None:
    import torch
    from PIL import Image

    from octviewer.core.calibration import calibrated_probabilities
    from octviewer.core.engine import Engine
    from octviewer.core.ood import FeatureTap
    from octviewer.core.preprocess import preprocess_frames

    torch.set_num_threads(args.threads)
    files = image_files(args.images)[: args.max_images or None]
    ref = Engine(args.bundle, threads=args.threads, precision="fp32")
    if args.mode == "int8":
        if args.int8_bits == 7:  # as on a CPU without VNNI
            import octviewer.core.model.int8_static as int8_static

            int8_static.reduce_range_here = lambda: True
        fast = Engine(args.bundle, threads=args.threads, quantize=True)
    else:
        fast = Engine(args.bundle, threads=args.threads, precision="auto", quantize=False)
    if args.plain_view:  # the cheap pass of the volume rule: no mirrored view, both precisions
        for e in (ref, fast):
            e.model.hflip_tta = False
    print(f"{len(files)} images; fp32 engine {ref!r}; {args.mode} engine {fast!r}; {load()}")
    if args.mode == "bf16" and fast.compute_dtype == "float32":
        print("this CPU has no native bf16: 'auto' is fp32 here, nothing to compare")
    out: dict[str, list] = {k: [] for k in ("p32", "p16", "f32", "f16", "t32", "t16")}
    names: list[str] = []
    for start in range(0, len(files), args.batch_size):
        chunk = files[start : start + args.batch_size]
        x = torch.cat(
            [
                preprocess_frames(
                    np.asarray(Image.open(f).convert("L"))[None], ref.config.preprocess
                )
                for f in chunk
            ]
        )
        arms = [("32", ref), ("16", fast)]
        for tag, eng in arms if (start // args.batch_size) % 2 == 0 else arms[::-1]:
            tap = FeatureTap()
            t = time.perf_counter()
            logits = eng._predict(x, tap)
            out["t" + tag].append(time.perf_counter() - t)
            out["p" + tag].append(calibrated_probabilities(logits, eng.config.temperature))
            out["f" + tag].append(np.stack(tap.features(), 1))  # (B, networks, D)
        names += [f.name for f in chunk]
        if (start // args.batch_size) % 5 == 4 or start + args.batch_size >= len(files):
            save(args.out, names, out, args.mode)
            print(f"  {len(names)}/{len(files)} images, {load()}", flush=True)
    report(args.out, Path(args.bundle) if args.bundle else None, args.images)


def save(path: Path, names: list[str], out: dict[str, list], mode: str = "bf16") -> None:
    """ "32" keys: fp32; "16" keys: the compared mode (``mode``: bf16 or int8)."""
    arrays = {k: np.concatenate(v) if k[0] in "pf" else np.asarray(v) for k, v in out.items()}
    np.savez(path, names=np.asarray(names), mode=np.asarray(mode), **arrays)


def ood_fit(names: np.ndarray, feats: np.ndarray, labels: np.ndarray, classes: int):
    """Statistics from fp32 features: fit on half the patients, scale on the other half."""
    from octviewer.core.ood import NetworkStats, OODModel, fit_network, scale_of, threshold_at

    patients = np.asarray([n.split("-")[1] for n in names])
    uniq = np.unique(patients)
    held = set(np.random.default_rng(1).permutation(uniq)[: len(uniq) // 2])
    h = np.asarray([p in held for p in patients])
    nets = []
    for k in range(feats.shape[1]):
        means, whiten = fit_network(feats[~h, k], labels[~h], classes)
        probe = NetworkStats(means, whiten, 0.0, 1.0)
        center, spread = scale_of(probe.distance(feats[h, k]))
        nets.append(NetworkStats(means, whiten, center, spread))
    model = OODModel(tuple(nets), 0.0)
    thr = threshold_at(model.score(list(feats[h].transpose(1, 0, 2))), 0.02)
    return OODModel(tuple(nets), thr)


def stats_for(bundle: Path | None, names: np.ndarray, feats: np.ndarray, labels, classes: int):
    """(the bundle's own OOD statistics, "bundle") or, without them, (a fit here, "fitted")."""
    from octviewer.core.model.bundle import load_bundle
    from octviewer.resources import default_model_path

    own = load_bundle(bundle or default_model_path()).ood
    if own is not None:
        return own, "the bundle's own"
    return ood_fit(names, feats, labels, classes), "fitted here"


def report(path: Path, bundle: Path | None = None, images: Path | None = None) -> None:
    d = np.load(path)
    names, p32, p16 = d["names"], d["p32"], d["p16"]
    mode = str(d["mode"]) if "mode" in d else "bf16"
    n = len(names)
    classes = sorted({s.split("-")[0] for s in names})
    labels = np.asarray([classes.index(s.split("-")[0]) for s in names])
    same = int((p32.argmax(1) == p16.argmax(1)).sum())
    dp = np.abs(p32 - p16).max(1)
    acc32 = float((p32.argmax(1) == labels).mean())
    acc16 = float((p16.argmax(1) == labels).mean())
    print(f"\n{mode} vs fp32 on {n} images ({load()}):")
    print(f"  top-1 agreement {same}/{n} = {100 * same / n:.2f} %")
    print(
        f"  max |prob diff| {dp.max():.4f}, median {np.median(dp):.5f}, 99th pct "
        f"{np.percentile(dp, 99):.4f}"
    )
    print(f"  accuracy vs folder label: fp32 {acc32:.4f}, {mode} {acc16:.4f}")
    if mode == "int8" and images is not None:
        held_out_report(names, p32, p16, bundle, images)
    t32, t16 = d["t32"], d["t16"]
    r = statistics.median((t16 / t32).tolist())
    print(
        f"  forward per batch: fp32 median {np.median(t32):.2f} s, {mode} {np.median(t16):.2f} s,"
        f" median paired ratio {mode}/fp32 {r:.2f}x ({len(t32)} batches)"
    )
    ood, origin = stats_for(bundle, names, d["f32"], labels, len(classes))
    s32 = ood.score(list(d["f32"].transpose(1, 0, 2)))
    s16 = ood.score(list(d["f16"].transpose(1, 0, 2)))
    ds = np.abs(s32 - s16)
    flips = int(((s32 > ood.threshold) != (s16 > ood.threshold)).sum())
    print(
        f"  OOD score ({origin} statistics, threshold {ood.threshold:.3f}; scores median "
        f"{np.median(s32):.3f}, IQR {np.subtract(*np.percentile(s32, [75, 25])):.3f}):"
    )
    print(
        f"    |score change| max {ds.max():.4f}, median {np.median(ds):.4f}; flagged fp32 "
        f"{int((s32 > ood.threshold).sum())}, {mode} {int((s16 > ood.threshold).sum())}; "
        f"decisions flipped {flips}/{n}"
    )
    ok = same / n >= 0.99
    print(f"  => {'PASS' if ok else 'FAIL'}  {mode} top-1 agreement with fp32 >= 99 %")


def held_out_report(
    names: np.ndarray, p32: np.ndarray, p8: np.ndarray, bundle: Path | None, images: Path
) -> None:
    """int8: the same agreement on the images its calibration did not see (the calibration
    set is re-derived as ``octviewer-train int8`` chose it from ``images``: evenly spread
    within each class)."""
    from octviewer.core.model.bundle import read_bundle_config
    from octviewer.resources import default_model_path

    cfg = read_bundle_config(bundle or default_model_path())
    if not cfg.int8:
        print("  (the bundle has no int8 calibration: no held-out split)")
        return
    from training.data.dataset import discover
    from training.rewrite.add_int8 import spread

    samples = list(discover(images, class_names=cfg.class_names).samples)
    used = {s.path.name for s in spread(samples, cfg.num_classes, int(cfg.int8["images"]))[0]}
    rest = np.asarray([nm not in used for nm in names])
    same = int((p32[rest].argmax(1) == p8[rest].argmax(1)).sum())
    dp = np.abs(p32[rest] - p8[rest]).max(1)
    print(
        f"  not used for calibration ({int(rest.sum())} images): top-1 agreement {same}/"
        f"{int(rest.sum())}, max |prob diff| {dp.max():.4f}, 99th pct {np.percentile(dp, 99):.4f}"
    )


def volume_rule_report(full_path: Path, plain_path: Path, frames: int, bundle: Path) -> None:
    """The volume shortcut replayed on real images: volumes of ``frames`` Kermany B-scans, the
    cheap pass (no mirrored view) for every frame, the full pass where the rule says; per-frame
    class, OOD decision and LOW_CONFIDENCE flag against the full computation (same precision,
    and fp32 full)."""
    from octviewer.core.model.bundle import read_bundle_config
    from octviewer.core.results import FrameResult
    from octviewer.core.volume_rule import VolumeShortcut

    cfg = read_bundle_config(bundle)
    full, plain = np.load(full_path), np.load(plain_path)
    n = min(len(full["names"]), len(plain["names"]))
    assert (full["names"][:n] == plain["names"][:n]).all()
    names = full["names"][:n]
    classes = sorted({s.split("-")[0] for s in names})
    labels = np.asarray([classes.index(s.split("-")[0]) for s in names])
    ood, origin = stats_for(bundle, names, full["f32"][:n], labels, len(classes))
    conf = float(cfg.confidence_threshold)
    rule = VolumeShortcut()
    print(f"\nvolume rule {rule} on {n} images in volumes of {frames} ({load()}):")
    print(f"  OOD statistics: {origin} (threshold {ood.threshold:.3f})")
    for tag in ("16", "32"):
        pf, pc = full["p" + tag][:n], plain["p" + tag][:n]
        sf = ood.score(list(full["f" + tag][:n].transpose(1, 0, 2)))
        sc = ood.score(list(plain["f" + tag][:n].transpose(1, 0, 2)))
        final_p, final_s, refined = pc.copy(), sc.copy(), 0
        for v0 in range(0, n, frames):
            idx = range(v0, min(n, v0 + frames))
            cheap = [
                FrameResult(i, tuple(cfg.class_names), pc[i], np.log(pc[i] + 1e-12),
                            ood_score=float(sc[i]), ood_threshold=ood.threshold)
                for i in idx
            ]  # fmt: skip
            for i in rule.frames_to_refine(cheap, conf):
                final_p[i], final_s[i] = pf[i], sf[i]
                refined += 1
        same = int((final_p.argmax(1) == pf.argmax(1)).sum())
        same_plain = int((pc.argmax(1) == pf.argmax(1)).sum())
        vs32 = int((final_p.argmax(1) == full["p32"][:n].argmax(1)).sum())
        t = ood.threshold
        ood_flips = int(((final_s > t) != (sf > t)).sum())
        low_flips = int(((final_p.max(1) < conf) != (pf.max(1) < conf)).sum())
        cost = (0.5 * n + refined) / n
        print(
            f"  {'bf16' if tag == '16' else 'fp32'}: full pass on {refined}/{n} frames "
            f"(forwards {cost:.2f}x the full computation); top-1 = full {same}/{n} "
            f"({100 * same / n:.2f} %; cheap pass alone {100 * same_plain / n:.2f} %); vs fp32 "
            f"full {100 * vs32 / n:.2f} %; OOD decision flips {ood_flips}, LOW_CONFIDENCE "
            f"flips {low_flips}; |cheap - full OOD score| median "
            f"{np.median(np.abs(sc - sf)):.3f}, max {np.abs(sc - sf).max():.3f}"
        )
        ok = same / n >= 0.99 and ood_flips == 0
        print(f"  => {'PASS' if ok else 'FAIL'}  volume rule agreement >= 99 % and no OOD flip")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bundle", default=None, help="default: the bundled model")
    ap.add_argument("--images", type=Path, required=False)
    ap.add_argument("--out", type=Path, default=Path("precision_results.npz"))
    ap.add_argument("--max-images", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--mode", choices=("bf16", "int8"), default="bf16", help="compared with fp32")
    ap.add_argument(
        "--int8-bits",
        type=int,
        choices=(7, 8),
        default=0,
        help="int8 activations: 7 as on CPUs without VNNI (default: what this CPU uses)",
    )
    ap.add_argument(
        "--volume-rule",
        type=Path,
        metavar="PLAIN_NPZ",
        help="replay the volume shortcut: --out (full pass) against this --plain-view run",
    )
    ap.add_argument("--frames", type=int, default=49, help="frames per volume (--volume-rule)")
    ap.add_argument(
        "--plain-view", action="store_true", help="ensembles: without the mirrored view"
    )
    args = ap.parse_args()
    if args.volume_rule:
        from octviewer.resources import default_model_path

        return volume_rule_report(
            args.out, args.volume_rule, args.frames, Path(args.bundle or default_model_path())
        )
    if args.report_only:
        return report(args.out, Path(args.bundle) if args.bundle else None, args.images)
    if args.images is None:
        ap.error("--images is required")
    if args.bundle is None:
        from octviewer.resources import default_model_path

        args.bundle = default_model_path()
    run(args)


if __name__ == "__main__":
    main()
