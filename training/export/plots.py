"""PNG plots of a run (matplotlib, Agg backend; only the training package imports matplotlib)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from training.evaluate.calibrate import reliability_bins
from training.evaluate.metrics import roc_curve

log = logging.getLogger(__name__)


def _plt() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    a1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation loss")
    a1.set_xlabel("epoch")
    a1.legend()
    a1.set_title("Loss")
    a2.plot(ep, [h["val_balanced_accuracy"] for h in history], "o-", label="balanced accuracy")
    a2.plot(ep, [h["val_macro_f1"] for h in history], "o-", label="macro F1")
    a2.set_ylim(0, 1)
    a2.set_xlabel("epoch")
    a2.legend()
    a2.set_title("Validation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion(
    cm: np.ndarray | list[list[int]], class_names: Sequence[str], path: Path, title: str
) -> Path:
    plt = _plt()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(cm, cmap="Blues")
    k = len(class_names)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability(
    probs_before: np.ndarray,
    probs_after: np.ndarray,
    labels: np.ndarray,
    path: Path,
    ece: tuple[float, float],
) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for probs, name, e in ((probs_before, "before", ece[0]), (probs_after, "after T", ece[1])):
        conf, acc, count = reliability_bins(probs, labels)
        ok = count > 0
        ax.plot(conf[ok], acc[ok], "o-", label=f"{name} (ECE {e:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Reliability (validation)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc(
    labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: Path, title: str
) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    for k, name in enumerate(class_names):
        y = labels == k
        if y.all() or not y.any():
            continue
        fpr, tpr = roc_curve(y, probs[:, k])
        ax.plot(fpr, tpr, label=name)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
