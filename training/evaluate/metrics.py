"""Classification metrics in plain NumPy (no scikit-learn needed by the app or the trainer).

All functions take integer labels ``y_true`` (N,) in ``[0, K)`` and either predicted labels
(N,) or class probabilities (N, K). Classes absent from ``y_true`` are left out of the
averages that need them (balanced accuracy, AUROC) and reported as ``None`` per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def per_class_recall(cm: np.ndarray) -> list[float | None]:
    support = cm.sum(axis=1)
    return [float(cm[i, i] / support[i]) if support[i] > 0 else None for i in range(len(cm))]


def per_class_precision(cm: np.ndarray) -> list[float | None]:
    predicted = cm.sum(axis=0)
    return [float(cm[i, i] / predicted[i]) if predicted[i] > 0 else None for i in range(len(cm))]


def accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present in the ground truth."""
    recalls = [r for r in per_class_recall(cm) if r is not None]
    return float(np.mean(recalls)) if recalls else 0.0


def f1_per_class(cm: np.ndarray) -> list[float]:
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2TP + FP + FN
    return [float(2 * tp[i] / denom[i]) if denom[i] > 0 else 0.0 for i in range(len(cm))]


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean F1 over classes that occur in the truth or the predictions."""
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    f1 = np.asarray(f1_per_class(cm))
    return float(f1[present].mean()) if present.any() else 0.0


def weighted_f1(cm: np.ndarray) -> float:
    support = cm.sum(axis=1).astype(np.float64)
    if support.sum() == 0:
        return 0.0
    return float(np.dot(f1_per_class(cm), support) / support.sum())


def matthews_corrcoef(cm: np.ndarray) -> float:
    """Multi-class MCC (Gorodkin 2004), equal to the binary MCC for two classes."""
    cm = cm.astype(np.float64)
    t = cm.sum(axis=1)  # true counts per class
    p = cm.sum(axis=0)  # predicted counts per class
    c = np.trace(cm)
    s = cm.sum()
    cov_ytyp = c * s - np.dot(t, p)
    cov_ypyp = s * s - np.dot(p, p)
    cov_ytyt = s * s - np.dot(t, t)
    denom = np.sqrt(cov_ytyt * cov_ypyp)
    return float(cov_ytyp / denom) if denom > 0 else 0.0


def binary_auroc(y_binary: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula, ties averaged.

    None when only one of the two classes is present.
    """
    y_binary = np.asarray(y_binary, dtype=bool)
    n_pos = int(y_binary.sum())
    n_neg = int(y_binary.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    u = ranks[y_binary].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    # boundaries of runs of equal values
    boundaries = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [x.size]))
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0  # mean of 1-based ranks s+1..e
    return ranks


def roc_curve(y_binary: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) points, thresholds from high to low."""
    y_binary = np.asarray(y_binary, dtype=bool)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    s = np.asarray(scores)[order]
    y = y_binary[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    n_pos = max(int(y.sum()), 1)
    n_neg = max(int((~y).sum()), 1)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos]


def ovr_auroc(y_true: np.ndarray, probs: np.ndarray) -> list[float | None]:
    """One-vs-rest AUROC per class (None for a class absent from, or alone in, ``y_true``)."""
    y_true = np.asarray(y_true)
    return [binary_auroc(y_true == k, probs[:, k]) for k in range(probs.shape[1])]


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Every metric the run reports, as plain JSON-ready values."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, k)
    aucs = ovr_auroc(y_true, probs)
    support = cm.sum(axis=1)
    valid = [(a, s) for a, s in zip(aucs, support, strict=True) if a is not None]
    macro_auc = float(np.mean([a for a, _ in valid])) if valid else None
    weighted_auc = float(sum(a * s for a, s in valid) / sum(s for _, s in valid)) if valid else None
    recalls = per_class_recall(cm)
    return {
        "n": int(y_true.size),
        "accuracy": accuracy(cm),
        "balanced_accuracy": balanced_accuracy(cm),
        "macro_f1": macro_f1(cm),
        "weighted_f1": weighted_f1(cm),
        "mcc": matthews_corrcoef(cm),
        "auroc_macro_ovr": macro_auc,
        "auroc_weighted_ovr": weighted_auc,
        "per_class": {
            name: {
                "support": int(support[i]),
                "recall": recalls[i],
                "precision": per_class_precision(cm)[i],
                "f1": f1_per_class(cm)[i],
                "auroc_ovr": aucs[i],
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }
