"""Out-of-distribution statistics for a bundle: fitted on the training images' own features,
the threshold chosen on held-out patients (see :mod:`octviewer.core.ood` for the score).

Three cases, one rule — every network's statistics come from the images it trained on, and the
threshold from patients it did not see:

- **single run**: statistics from the training split, scale and threshold from validation;
- **ensemble on one shared split**: each member's statistics from the training split; the
  ensemble score (mean of the members' scaled distances) on the validation patients sets the
  threshold;
- **cross-validation ensemble** (member ``k`` held out fold ``k``): member ``k``'s statistics
  from the other folds, its scale from fold ``k``; the threshold from the out-of-fold scores
  (each image scored by the one member that did not train on it). That single-member score
  varies more than the shipped mean over members, so a threshold set on it flags fewer
  in-domain scans in use than the stated rate, not more.

The false-flag rate reported is measured on patients the threshold was not chosen on: for CV,
the threshold of the other folds applied to each fold; for one split, the validation patients
halved (threshold from one half, counted on the other, both ways).

``octviewer-train ood BUNDLE --data DIR`` adds statistics to an existing bundle (its weights
unchanged) using the split its provenance records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.core.ood import (
    DEFAULT_FALSE_FLAG_RATE,
    DEFAULT_SHRINKAGE,
    FeatureTap,
    NetworkStats,
    OODModel,
    fit_network,
    normalize_features,
    scale_of,
    threshold_at,
)
from octviewer.errors import TrainingError

if TYPE_CHECKING:
    import torch

    from octviewer.core.model.config import PreprocessConfig
    from training.data.dataset import Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Features:
    """Pre-logit features of every network of a model for a list of samples."""

    per_network: list[np.ndarray]  # one (N, D) array per network
    labels: np.ndarray  # (N,)
    patients: tuple[str, ...]


def extract(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    pre: PreprocessConfig,
    *,
    batch_size: int = 16,
    desc: str = "ood features",
) -> Features:
    """Features of the unaugmented, normalised images (as the app sees them), fp32 on the CPU."""
    import torch
    from tqdm.auto import tqdm

    from training.data.augment import eval_batch
    from training.data.dataset import FrameDataset

    ds = FrameDataset(tuple(samples), pre)
    tap = FeatureTap()
    model = model.eval()
    chunks: list[list[np.ndarray]] = []
    bad = []
    for start in tqdm(range(0, len(ds), batch_size), desc=desc, unit="batch", leave=False):
        items = [ds[i] for i in range(start, min(len(ds), start + batch_size))]
        bad += [start + j for j, it in enumerate(items) if not it[3]]
        x = eval_batch(torch.stack([it[0] for it in items]), pre)
        with torch.inference_mode(), tap.recording(model):
            model(x)
        chunks.append(tap.features())
    if bad:
        raise TrainingError(f"{len(bad)} image(s) could not be read for the OOD statistics.")
    per_network = [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]
    return Features(
        per_network,
        np.array([s.label for s in samples]),
        tuple(s.patient for s in samples),
    )


def _nets(
    train: list[tuple[np.ndarray, np.ndarray]],
    heldout: list[np.ndarray],
    n_classes: int,
    shrinkage: float,
    normalize: str = "none",
) -> tuple[list[NetworkStats], list[np.ndarray]]:
    """Statistics per network and each network's scaled distances on its held-out features."""
    nets, zs = [], []
    for (f, y), h in zip(train, heldout, strict=True):
        f = normalize_features(f, normalize)
        means, whiten = fit_network(f, y, n_classes, shrinkage=shrinkage)
        raw = NetworkStats(means, whiten, 0.0, 1.0, normalize).distance(h)
        center, spread = scale_of(raw)
        net = NetworkStats(means, whiten, center, spread, normalize)
        nets.append(net)
        zs.append((raw - center) / spread)
    return nets, zs


def _rate(scores: np.ndarray, threshold: float) -> float:
    return float(np.mean(np.asarray(scores) > threshold)) if len(scores) else 0.0


def fit_cross_validated(
    feats: Features,
    fold_of: np.ndarray,
    n_classes: int,
    *,
    rate: float = DEFAULT_FALSE_FLAG_RATE,
    shrinkage: float = DEFAULT_SHRINKAGE,
    normalize: str = "none",
) -> tuple[OODModel, dict[str, Any]]:
    """Network ``k`` held out fold ``k`` (``fold_of`` 0-based, one entry per sample)."""
    k_nets = len(feats.per_network)
    if set(np.unique(fold_of)) != set(range(k_nets)):
        raise TrainingError("Every member needs its own held-out fold for the OOD statistics.")
    train = [(f[fold_of != k], feats.labels[fold_of != k]) for k, f in enumerate(feats.per_network)]
    held = [f[fold_of == k] for k, f in enumerate(feats.per_network)]
    nets, zs = _nets(train, held, n_classes, shrinkage, normalize)
    oof = np.zeros(len(fold_of))
    for k, z in enumerate(zs):
        oof[fold_of == k] = z
    threshold = threshold_at(oof, rate)
    per_fold = []
    for k in range(k_nets):
        t_k = threshold_at(oof[fold_of != k], rate)
        per_fold.append({"fold": k + 1, "n": int((fold_of == k).sum()), "rate": _rate(zs[k], t_k)})
    flagged = sum(round(p["rate"] * p["n"]) for p in per_fold)
    report = {
        "evaluation": "out of fold: each image scored by the member that did not train on it; "
        "the false-flag rate counts each fold against the threshold of the other folds",
        "heldout_images": len(oof),
        "heldout_false_flag_rate": flagged / len(oof),
        "heldout_false_flags": flagged,
        "per_fold": per_fold,
    }
    return _model(nets, threshold, rate, shrinkage, report, len(oof))


def fit_shared_split(
    train: Features,
    heldout: Features,
    n_classes: int,
    *,
    rate: float = DEFAULT_FALSE_FLAG_RATE,
    shrinkage: float = DEFAULT_SHRINKAGE,
    normalize: str = "none",
) -> tuple[OODModel, dict[str, Any]]:
    """Every network trained on ``train``; ``heldout`` patients set scale and threshold."""
    nets, zs = _nets(
        [(f, train.labels) for f in train.per_network],
        heldout.per_network,
        n_classes,
        shrinkage,
        normalize,
    )
    score = np.mean(zs, axis=0)
    threshold = threshold_at(score, rate)
    patients = sorted(set(heldout.patients))
    half = {p for i, p in enumerate(patients) if i % 2 == 0}
    in_a = np.array([p in half for p in heldout.patients])
    flagged = 0
    if in_a.any() and (~in_a).any():
        flagged += int((score[~in_a] > threshold_at(score[in_a], rate)).sum())
        flagged += int((score[in_a] > threshold_at(score[~in_a], rate)).sum())
    report = {
        "evaluation": "validation patients; the false-flag rate counts each half of them "
        "against the threshold chosen on the other half",
        "heldout_images": len(score),
        "heldout_false_flag_rate": flagged / max(1, len(score)),
        "heldout_false_flags": flagged,
    }
    return _model(nets, threshold, rate, shrinkage, report, len(score))


def _model(
    nets: list[NetworkStats],
    threshold: float,
    rate: float,
    shrinkage: float,
    report: dict[str, Any],
    n: int,
) -> tuple[OODModel, dict[str, Any]]:
    info = {
        "false_flag_target": rate,
        "shrinkage": shrinkage,
        "heldout_false_flag_rate": report["heldout_false_flag_rate"],
        "heldout_images": n,
    }
    normalize = nets[0].normalize if nets else "none"
    report = {
        "method": "class-conditional Mahalanobis on "
        + ("L2-normalised " if normalize == "l2" else "")
        + "pre-logit features",
        "normalize": normalize,
        "threshold": threshold,
        "false_flag_target": rate,
        "shrinkage": shrinkage,
        **report,
    }
    log.info(
        "OOD statistics: threshold %.3f at %.1f %% target; held-out false flags %d/%d (%.2f %%)",
        threshold,
        100 * rate,
        report["heldout_false_flags"],
        n,
        100 * report["heldout_false_flag_rate"],
    )
    return OODModel(tuple(nets), threshold, info), report


def score_dev_set(
    model: torch.nn.Module, ood: OODModel, paths: Sequence[Any], pre: PreprocessConfig
) -> dict[str, Any]:
    """Scores of out-of-domain development images (``--ood-dev``): how many are flagged."""
    import torch

    from octviewer import load
    from octviewer.core.preprocess import preprocess_frames
    from octviewer.errors import OCTViewerError

    rows = []
    tap = FeatureTap()
    for p in paths:
        try:
            scan = load(p)
        except OCTViewerError as exc:
            log.info("OOD dev: %s not read (%s)", p, exc)
            continue
        x = preprocess_frames(scan.frames[[scan.n_frames // 2]], pre)
        with torch.inference_mode(), tap.recording(model):
            model(x)
        s = float(ood.score(tap.features())[0])
        rows.append(
            {
                "file": str(p).rsplit("/", 1)[-1],
                "score": round(s, 3),
                "flagged": s > ood.threshold,
                "modality": scan.metadata.modality.value,
            }
        )
    return {
        "images": len(rows),
        "flagged": sum(r["flagged"] for r in rows),
        "files": rows,
    }
