"""The macula / optic-nerve-head anatomy check on the real development set (prints numbers).

1. Per ONH file (``../shared/data/ood``): the check's verdict, score and features beside the
   default model's feature-distance (out-of-distribution) verdict; the same for the circle scan.
2. The ONH images under plausible transforms (flip, crops, rescale, 3 degree rotation, gamma).
3. False flags per source: Kermany, OCTDL (4 classes and other findings), the raw ``.vol``
   line scans and the other devices (EDI, Bioptigen, Topcon), with the highest scores.
4. Out-of-fold figures: the threshold re-set per fold (4 folds by patient id) halfway between
   the highest macular ``cup`` of the other folds and the lowest ONH ``cup`` (ONH left out one
   at a time).
5. Milliseconds per frame (median wall time) at 512x496 and 1024x496.

    python benchmarks/bench_anatomy.py [--data ../shared/data] [--no-model]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
OTHER_DEVICES = (
    "vendor/TEST_T_2707_0.vol",
    "vendor/TEST_T_2710_0.vol",
    "vendor/Willis_B_716_0.vol",
    "ood/edi-bscan-choroidalyzer-image1.png",
    "ood/bioptigen-bscan-test.tif",
    "dicom/topcon_bscan_opt.dcm",
)


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def _feats(v) -> str:  # type: ignore[no-untyped-def]
    return " ".join(f"{k}={x:+.2f}" for k, x in v.features.items())


def onh(data: Path, use_model: bool) -> None:
    import octviewer
    from octviewer.core.anatomy import check_anatomy
    from octviewer.core.inference import AnalysisRequest

    model = None
    if use_model:
        import torch

        torch.set_num_threads(1)
        model = octviewer.load_model()
    paths = [*sorted((data / "ood").glob("onh-radial-OCT-0_*.png"))]
    paths += [data / "ood" / "cirrus-onh-bscan-im0100.png", data / "vendor" / "circular-valid.vol"]
    print(f"{'ONH file':32s} {'anatomy':8s} {'score':>6s} {'distance':>14s}  verdict  features")
    counts = {"anatomy": 0, "distance": 0, "both": 0, "neither": 0}
    for path in paths:
        if not path.exists():
            continue
        scan = octviewer.load(path)
        v = check_anatomy(scan.frames[0])
        dist, withheld = "-", False
        if model is not None:
            fr = model.analyze(scan, AnalysisRequest(cam=False)).frames[0]
            withheld = fr.ood_score > fr.ood_threshold
            dist = f"{fr.ood_score:.2f}/{fr.ood_threshold:.2f}"
        who = {
            (True, True): "both",
            (True, False): "anatomy",
            (False, True): "distance",
            (False, False): "neither",
        }[(v.is_optic_disc, withheld)]
        if path.suffix != ".vol":
            counts[who] += 1
        print(
            f"{path.name:32s} {v.is_optic_disc!s:8s} {v.score:+6.2f} {dist:>14s}  {who:8s} {_feats(v)}"
        )
    print(f"ONH images withheld: {counts} (model={'yes' if model else 'not run'})")

    print("\nONH images under transforms: flagged / 9 per transform")
    frames = [_grey(p) for p in sorted((data / "ood").glob("onh-radial-OCT-0_*.png"))]
    transforms = {
        "flip": lambda a: a[:, ::-1],
        "crop 10% each side": lambda a: a[:, a.shape[1] // 10 : -a.shape[1] // 10],
        "crop bottom 25%": lambda a: a[: 3 * a.shape[0] // 4],
        "scale 512x496": lambda a: _resize(a, 512, 496),
        "scale 1024x496": lambda a: _resize(a, 1024, 496),
        "rotate +3": lambda a: np.asarray(Image.fromarray(a).rotate(3, Image.Resampling.BILINEAR)),
        "rotate -3": lambda a: np.asarray(Image.fromarray(a).rotate(-3, Image.Resampling.BILINEAR)),
        "gamma 0.6": lambda a: (255 * (a / 255.0) ** 0.6).astype(np.uint8),
        "gamma 1.6": lambda a: (255 * (a / 255.0) ** 1.6).astype(np.uint8),
        "uint16 x257": lambda a: a.astype(np.uint16) * 257,
    }
    for name, t in transforms.items():
        vs = [check_anatomy(t(f)) for f in frames]
        low = min(v.score for v in vs)
        print(f"  {name:20s} {sum(v.is_optic_disc for v in vs)}/9  lowest score {low:+.2f}")


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))


def _patient(path: Path) -> str:
    parts = path.stem.replace("_", "-").split("-")
    return parts[1] if len(parts) > 2 else path.stem


def negatives(data: Path) -> dict[str, list[tuple[Path, object]]]:
    import octviewer
    from octviewer.core.anatomy import check_anatomy

    sources = {
        "Kermany": sorted((data / "kermany").glob("*/*.jpeg")),
        "OCTDL 4 classes": sorted(
            p
            for c in ("CNV", "DME", "DRUSEN", "NORMAL")
            for p in (data / "octdl" / c).glob("*.jpg")
        ),
        "OCTDL other findings": sorted((data / "octdl" / "other-findings").glob("*/*.jpg")),
    }
    out: dict[str, list[tuple[Path, object]]] = {}
    print("\nFalse flags per source (macular B-scans)")
    for name, paths in sources.items():
        if not paths:
            print(f"  {name:22s} absent")
            continue
        res = [(p, check_anatomy(_grey(p))) for p in paths]
        out[name] = res
        flagged = [p.name for p, v in res if v.is_optic_disc]  # type: ignore[attr-defined]
        top = sorted(res, key=lambda r: -r[1].score)[:3]  # type: ignore[attr-defined]
        tops = ", ".join(f"{p.name} {v.score:+.2f}" for p, v in top)  # type: ignore[attr-defined]
        print(
            f"  {name:22s} {len(flagged)} of {len(paths)} flagged {flagged or ''}; highest {tops}"
        )
    for rel in OTHER_DEVICES:
        path = data / rel
        if not path.exists():
            continue
        scan = octviewer.load(path)
        for i, frame in enumerate(scan.frames):
            v = check_anatomy(frame)
            print(f"  {rel + f' [{i}]':44s} {v.is_optic_disc!s:5s} {v.score:+6.2f}  {_feats(v)}")
    return out


def out_of_fold(data: Path, neg: dict[str, list[tuple[Path, object]]]) -> None:
    from octviewer.core.anatomy import CUP_SCALE, GAP_MIN, features

    onh = [features(_grey(p)) for p in sorted((data / "ood").glob("onh-radial-OCT-0_*.png"))]
    onh_cup = np.array([f["cup"] for f in onh if f])
    rows = [(p, v.features) for name, res in neg.items() for p, v in res]  # type: ignore[attr-defined]
    fold = np.array([zlib.crc32(_patient(p).encode()) % 4 for p, _ in rows])
    cup = np.array([f.get("cup", -1.0) for _, f in rows])
    gap = np.array([f.get("gap", 0.0) for _, f in rows])
    flagged = 0
    for k in range(4):
        thr = 0.5 * (cup[fold != k].max() + onh_cup.min())
        hit = (cup[fold == k] > thr) & (gap[fold == k] > GAP_MIN)
        flagged += int(hit.sum())
        print(
            f"  fold {k}: threshold {thr:.2f}, {int(hit.sum())} of {int((fold == k).sum())} flagged"
        )
    caught = 0
    for i in range(len(onh_cup)):
        thr = 0.5 * (cup.max() + np.delete(onh_cup, i).min())
        caught += int(onh_cup[i] > thr)
    print(
        f"Out of fold: {flagged} of {len(rows)} macular B-scans flagged; ONH leave-one-out "
        f"{caught} of {len(onh_cup)} caught (scale {CUP_SCALE})"
    )


def cost(data: Path) -> None:
    from octviewer.core.anatomy import check_anatomy

    frames = [_grey(p) for p in sorted((data / "kermany").glob("*/*.jpeg"))[:60]]
    for w in (512, 1024):
        sized = [_resize(f, w, 496) for f in frames]
        for f in sized[:3]:
            check_anatomy(f)
        wall = []
        for f in sized:
            t0 = time.perf_counter()
            check_anatomy(f)
            wall.append(time.perf_counter() - t0)
        print(f"ms per frame at {w}x496: median {1000 * statistics.median(wall):.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--no-model", action="store_true", help="skip the feature-distance column")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not a.data.is_dir():
        print(f"{a.data} is not present: this benchmark needs the real-data corpus")
        return 1
    onh(a.data, not a.no_model)
    neg = negatives(a.data)
    print("\nOut-of-fold threshold (4 folds by patient id)")
    out_of_fold(a.data, neg)
    cost(a.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
