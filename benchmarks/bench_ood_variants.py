"""Feature-distance abstention variants, measured out of fold. Prints the table of docs/OOD.md
("Variants measured"); not a test. Skips when ``../shared`` is absent.

    .venv/bin/python benchmarks/bench_ood_variants.py [--bundle B] [--cache /tmp/oodvar-cache]

Every image is run once through the ensemble (mirrored view included, as the app does) with
hooks that keep the globally pooled outputs of ``layer1``..``layer4`` of every member (the
pooled ``layer4`` output is the pre-logit feature). The features are cached as ``.npz``.
Protocol, the same for every variant: member ``k``'s statistics from the Kermany images of the
other folds; Kermany scored out of fold (the member that did not train on the image); the
threshold at the 1.5 % quantile of those scores; Kermany false flags counted fold by fold
against the threshold of the other folds; every other image scored by the mean of the four
members' z-scores (the app's score).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

import numpy as np  # noqa: E402

LAYERS = ("layer1", "layer2", "layer3", "layer4")


# --- features -------------------------------------------------------------------------------
def _pooled_features(model: Any, x: Any) -> dict[str, np.ndarray]:
    """{layer: (B, members, C)} pooled outputs, averaged over the plain and mirrored view."""
    import torch

    calls: dict[tuple[int, str], list] = {}
    handles = []
    for k, m in enumerate(model.members):
        for name in LAYERS:

            def hook(_m: Any, _i: Any, out: Any, key: tuple = (k, name)) -> None:
                calls.setdefault(key, []).append(out.detach().float().mean((2, 3)))

            handles.append(getattr(m, name).register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    n = len(model.members)
    return {
        name: torch.stack([torch.stack(calls[(k, name)]).mean(0) for k in range(n)], 1).numpy()
        for name in LAYERS
    }


def _frames_of(path: Path) -> list[tuple[str, np.ndarray, str]]:
    """(name, frame, modality) for every frame of a file the app can open."""
    import octviewer
    from octviewer.errors import OCTViewerError

    try:
        scan = octviewer.load(path)
    except OCTViewerError as exc:
        print(f"  not read: {path.name} ({type(exc).__name__})")
        return []
    many = scan.n_frames > 1
    return [
        (
            f"{path.name}#{i + 1}" if many else path.name,
            scan.frames[i],
            scan.metadata.modality.value,
        )
        for i in range(scan.n_frames)
    ]


def _extract_set(model: Any, pre: Any, items: list[tuple[str, Callable[[], np.ndarray]]]) -> dict:
    import torch

    from octviewer.core.preprocess import preprocess_frames

    out: dict[str, list] = {name: [] for name in LAYERS}
    t0 = time.perf_counter()
    for i in range(0, len(items), 16):
        x = torch.cat([preprocess_frames(get(), pre) for _, get in items[i : i + 16]])
        for name, f in _pooled_features(model, x).items():
            out[name].append(f)
    per_frame = (time.perf_counter() - t0) / max(1, len(items))
    return {name: np.concatenate(v) for name, v in out.items()} | {"seconds": per_frame}


#: The app's other computes: int8 (*Model > Device > int8*) and "auto" precision, which is bf16
#: on a CPU with native bf16 (and on CUDA); elsewhere it is fp32 and the column repeats fp32.
ENGINES = {"kermany-int8": {"quantize": True}, "kermany-bf16": {"precision": "auto"}}


def _engine_prelogits(bundle: Path, items: list, opts: dict) -> dict[str, np.ndarray]:
    """Pre-logit features of the app's int8 or bf16 engine, as ``layer4``."""
    import torch

    from octviewer.core.engine import Engine
    from octviewer.core.ood import FeatureTap
    from octviewer.core.preprocess import preprocess_frames

    engine = Engine(bundle, device="cpu", threads=1, **opts)
    print(f"  engine compute: {engine.compute_dtype}, int8: {engine.int8_kind or 'no'}")
    out = []
    for i in range(0, len(items), 16):
        x = torch.cat(
            [preprocess_frames(get(), engine.config.preprocess) for _, get in items[i : i + 16]]
        )
        tap = FeatureTap()
        engine._predict(x, tap)
        out.append(np.stack(tap.features(), 1))
    return {"layer4": np.concatenate(out)}


def features(bundle: Path, cache: Path) -> dict[str, dict[str, np.ndarray]]:
    """Pooled features of Kermany, OCTDL and the development out-of-domain set (cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    sets = {}
    loaded = None
    for name in ("kermany", "octdl", "dev", *ENGINES):
        path = cache / f"{name}.npz"
        if path.is_file():
            sets[name] = dict(np.load(path, allow_pickle=False))
            continue
        import torch

        from octviewer.core.model.bundle import load_bundle

        torch.set_num_threads(1)
        loaded = loaded or load_bundle(bundle)
        items, meta = _items(name, loaded.config)
        print(f"extracting {name}: {len(items)} frames")
        if name in ENGINES:
            got = _engine_prelogits(bundle, items, ENGINES[name])
        else:
            got = _extract_set(loaded.model.eval(), loaded.config.preprocess, items)
        np.savez(path, **got, **meta)
        sets[name] = dict(np.load(path, allow_pickle=False))
    return sets


def _items(name: str, config: Any) -> tuple[list, dict]:
    if name.startswith("kermany"):
        from training.data.dataset import discover, read_frame

        samples = discover(SHARED / "kermany", class_names=config.class_names).samples
        fold = _fold_of(samples, config)
        items = [(s.path.name, (lambda s=s: read_frame(s))) for s in samples]
        meta = {"names": [s.path.name for s in samples], "fold": fold}
        return items, meta | {"labels": np.array([s.label for s in samples])}
    if name == "octdl":
        paths = sorted((SHARED / "octdl").glob("**/*.jpg"))
        items = [(str(p), (lambda p=p: _frames_of(p)[0][1])) for p in paths]
        return items, {"names": [p.name for p in paths], "group": [p.parent.name for p in paths]}
    files = sorted((SHARED / "ood").iterdir()) + sorted((SHARED / "vendor").glob("*.vol"))
    files.append(SHARED / "dicom" / "topcon_bscan_opt.dcm")
    frames = [f for p in files for f in _frames_of(p)]
    items = [(n, (lambda fr=fr: fr)) for n, fr, _ in frames]
    return items, {"names": [n for n, _, _ in frames], "modality": [m for _, _, m in frames]}


def _fold_of(samples: Any, config: Any) -> np.ndarray:
    """0-based member that held out each sample (the bundle's recorded CV split)."""
    from training.data.split import patient_fold
    from training.rewrite.add_ood import fold_of_members

    split = config.provenance["split"]
    order = fold_of_members(config)
    fold_of = np.full(len(samples), -1)
    index = {s: i for i, s in enumerate(samples)}
    for k, fold in enumerate(order):
        val = patient_fold(
            samples,
            config.class_names,
            n_folds=int(split["folds"]),
            fold=fold,
            seed=int(split["seed"]),
        ).val
        for s in val:
            fold_of[index[s]] = k
    return fold_of


# --- variants ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    label: str
    layers: tuple[str, ...] = ("layer4",)
    normalize: str = "none"  # "none" or "l2"
    relative: bool = False  # relative Mahalanobis (Ren et al. 2021)
    combine: str = "mean"  # per-layer z combined by "mean" or "max"
    shrinkage: float = 0.5


VARIANTS = (
    Variant("baseline: pre-logits, shrinkage 0.5 (shipped)"),
    Variant("pre-logits, shrinkage 0.1", shrinkage=0.1),
    Variant("pre-logits, L2", normalize="l2"),
    Variant("pre-logits, L2, shrinkage 0.3", normalize="l2", shrinkage=0.3),
    Variant("pre-logits, L2, shrinkage 0.2", normalize="l2", shrinkage=0.2),
    Variant("pre-logits, L2, shrinkage 0.1", normalize="l2", shrinkage=0.1),
    Variant("pre-logits, L2, shrinkage 0.05", normalize="l2", shrinkage=0.05),
    Variant("pre-logits, L2, shrinkage 0.01", normalize="l2", shrinkage=0.01),
    Variant("pre-logits, relative", relative=True),
    Variant("pre-logits, L2, relative", normalize="l2", relative=True),
    Variant("layer3", layers=("layer3",)),
    Variant("layer3, L2", layers=("layer3",), normalize="l2"),
    Variant("layers 2+3+4, mean z", layers=LAYERS[1:]),
    Variant("layers 2+3+4, max z", layers=LAYERS[1:], combine="max"),
    Variant("layers 2+3+4, L2, mean z", layers=LAYERS[1:], normalize="l2"),
    Variant("layers 2+3+4, L2, max z", layers=LAYERS[1:], normalize="l2", combine="max"),
    Variant("layers 3+4, L2, mean z", layers=LAYERS[2:], normalize="l2"),
    Variant("layers 3+4, L2, shrinkage 0.1", layers=LAYERS[2:], normalize="l2", shrinkage=0.1),
    Variant("layers 1-4, L2, mean z", layers=LAYERS, normalize="l2"),
)


def _prep(f: np.ndarray, v: Variant) -> np.ndarray:
    f = np.asarray(f, np.float64)
    if v.normalize == "l2":
        f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
    return f


class _Layer:
    """One member's statistics on one layer: class means + shared covariance (and, relative,
    one Gaussian over all training features), scaled by held-out median and spread."""

    def __init__(self, f: np.ndarray, y: np.ndarray, held: np.ndarray, v: Variant) -> None:
        from octviewer.core.ood import NetworkStats, fit_network, scale_of

        self.cls = NetworkStats(*fit_network(f, y, 4, shrinkage=v.shrinkage), 0.0, 1.0)
        bg = fit_network(f, np.zeros(len(f), int), 1, shrinkage=v.shrinkage)
        self.bg = NetworkStats(*bg, 0.0, 1.0) if v.relative else None
        self.center, self.spread = 0.0, 1.0
        self.center, self.spread = scale_of(self.raw(held))

    def raw(self, f: np.ndarray) -> np.ndarray:
        if self.bg is None:
            return self.cls.distance(f)
        w = self.cls.whiten.astype(np.float64)
        d = (((f @ w)[:, None] - (self.cls.means.astype(np.float64) @ w)[None]) ** 2).sum(-1)
        return (d - self.bg.distance(f)[:, None]).min(1)

    def z(self, f: np.ndarray) -> np.ndarray:
        return (self.raw(f) - self.center) / self.spread


def evaluate(v: Variant, sets: dict[str, dict[str, np.ndarray]], rate: float = 0.015) -> dict:
    """Out-of-fold Kermany scores, other-fold false flags, and the ensemble score elsewhere."""
    from octviewer.core.ood import threshold_at

    ker = sets["kermany"]
    fold, y = ker["fold"], ker["labels"]
    n_k = int(fold.max()) + 1
    stats = [
        {
            name: _Layer(
                _prep(ker[name][fold != k, k], v),
                y[fold != k],
                _prep(ker[name][fold == k, k], v),
                v,
            )
            for name in v.layers
        }
        for k in range(n_k)
    ]
    combine = np.max if v.combine == "max" else np.mean

    def member(k: int, s: dict[str, np.ndarray], sel: np.ndarray | slice) -> np.ndarray:
        return combine([stats[k][n].z(_prep(s[n][sel, k], v)) for n in v.layers], axis=0)

    oof = np.zeros(len(fold))
    for k in range(n_k):
        oof[fold == k] = member(k, ker, fold == k)
    flagged = np.zeros(len(fold), bool)
    for k in range(n_k):
        flagged[fold == k] = oof[fold == k] > threshold_at(oof[fold != k], rate)
    out = {"variant": v, "threshold": threshold_at(oof, rate), "oof": oof, "flagged": flagged}
    for name in ENGINES:  # int8 / bf16 features against the fp32 statistics and threshold
        if v.layers == ("layer4",) and name in sets:
            out[name] = np.zeros(len(fold), bool)
            for k in range(n_k):
                zq = member(k, sets[name], fold == k)
                out[name][fold == k] = zq > threshold_at(oof[fold != k], rate)
    for name in ("octdl", "dev"):
        s = sets[name]
        out[name] = np.mean([member(k, s, slice(None)) for k in range(n_k)], axis=0)
    one = {n: sets["octdl"][n][:1] for n in v.layers}
    times = []
    for _ in range(100):  # the app's cost: one frame, every member
        t0 = time.perf_counter()
        np.mean([member(k, one, slice(None)) for k in range(n_k)], axis=0)
        times.append(time.perf_counter() - t0)
    out["ms_per_frame"] = 1e3 * float(np.median(times))
    return out


# --- report -----------------------------------------------------------------------------------
def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    neg, pos = np.asarray(neg), np.asarray(pos)
    gt = (pos[:, None] > neg[None]).mean()
    eq = (pos[:, None] == neg[None]).mean()
    return float(gt + 0.5 * eq)


def padded(names: np.ndarray) -> np.ndarray:
    """Kermany images with heavy white rotation padding (>= 10 % of the pixels at 255; 10 % of Kermany)."""
    from PIL import Image

    folder = SHARED / "kermany"
    out = []
    for n in names:
        im = np.asarray(Image.open(folder / str(n).split("-")[0] / str(n)).convert("L"))
        out.append((im >= 255).mean() >= 0.10)
    return np.array(out)


def row(r: dict, sets: dict, pad: np.ndarray) -> dict[str, str]:
    ker, oct_, dev = sets["kermany"], sets["octdl"], sets["dev"]
    t = r["threshold"]
    ff = r["flagged"]
    by_class = "/".join(
        str(sum(str(n).startswith(c + "-") for n in ker["names"][ff]))
        for c in ("CNV", "DME", "DRUSEN", "NORMAL")
    )
    cls = ker["names"][ff & ~pad]
    disease = sum(not str(n).startswith("NORMAL") for n in cls)
    groups = oct_["group"]
    main = np.isin(groups, ["CNV", "DME", "DRUSEN", "NORMAL"])
    wd = r["dev"] > t
    is_vol = np.array([".vol#" in str(n) or str(n).endswith(".vol") for n in dev["names"]])
    is_ood = np.array(
        [not v and not str(n).endswith(".dcm") for v, n in zip(is_vol, dev["names"], strict=True)]
    )
    per = " ".join(
        f"{g} {100 * np.mean(r['octdl'][groups == g] > t):.0f}"
        for g in ("CNV", "DME", "DRUSEN", "NORMAL")
    )
    return {
        "variant": r["variant"].label,
        "Kermany FF (pad/disease/normal)": f"{ff.sum()}/648 ({(ff & pad).sum()}/{disease}/{len(cls) - disease})",
        "FF by class C/D/Dr/N": by_class,
        "int8 FF": str(r["kermany-int8"].sum()) if "kermany-int8" in r else "-",
        "bf16 FF": str(r["kermany-bf16"].sum()) if "kermany-bf16" in r else "-",
        "ood/ files": f"{wd[is_ood].sum()}/{is_ood.sum()}",
        "vol frames": f"{wd[is_vol].sum()}/{is_vol.sum()}",
        "Topcon": "yes" if wd[~is_vol & ~is_ood].all() else "no",
        "OCTDL 4 cls %": f"{100 * np.mean(r['octdl'][main] > t):.0f} ({per})",
        "OCTDL other %": f"{100 * np.mean(r['octdl'][~main] > t):.0f}",
        "AUROC OCTDL": f"{auroc(r['oof'], r['octdl']):.3f}",
        "AUROC dev": f"{auroc(r['oof'], r['dev']):.3f}",
        "ms": f"{r['ms_per_frame']:.2f}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--bundle", type=Path, default=REPO / "resources/models/octviewer-demo-kermany.safetensors"
    )
    p.add_argument("--cache", type=Path, default=Path("/tmp/oodvar-cache"))
    p.add_argument("--flags", action="store_true", help="list every variant's Kermany false flags")
    a = p.parse_args()
    if not SHARED.is_dir():
        print(f"SKIP: {SHARED} is absent (the shared development data)")
        return
    sets = features(a.bundle, a.cache)
    pad = padded(sets["kermany"]["names"])
    rows = []
    for v in VARIANTS:
        r = evaluate(v, sets)
        rows.append(row(r, sets, pad))
        if a.flags:
            print(v.label, "->", " ".join(sorted(map(str, sets["kermany"]["names"][r["flagged"]]))))
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for rw in rows:
        print("| " + " | ".join(rw[k] for k in keys) + " |")
    print(
        f"feature extraction (4 members x 2 views, CPU, 1 thread): "
        f"{1e3 * float(sets['octdl']['seconds']):.0f} ms per frame"
    )


if __name__ == "__main__":
    main()
