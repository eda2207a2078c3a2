"""Temperature scaling (Guo et al. 2017) and the expected calibration error.

The temperature ``T`` divides the logits before the softmax; it is fitted on the validation
logits by minimising the negative log-likelihood over ``log T`` with L-BFGS (so ``T`` stays
positive). It never changes the predicted class, only how confident the model claims to be.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from octviewer.core.calibration import softmax  # the one implementation

log = logging.getLogger(__name__)

ECE_BINS = 15


@dataclass(frozen=True)
class Calibration:
    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float

    def to_dict(self) -> dict[str, float]:
        return {
            "temperature": self.temperature,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "ece_bins": ECE_BINS,
        }


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None))))


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """ECE with equal-width confidence bins: sum over bins of |accuracy - confidence| * share."""
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += abs(correct[in_bin].mean() - conf[in_bin].mean()) * in_bin.mean()
    return float(ece)


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: mean confidence, accuracy and sample count (NaN where a bin is empty)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    mean_conf = np.full(n_bins, np.nan)
    acc = np.full(n_bins, np.nan)
    count = np.zeros(n_bins, dtype=np.int64)
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        in_bin = (conf > lo) & (conf <= hi)
        count[i] = int(in_bin.sum())
        if count[i]:
            mean_conf[i] = conf[in_bin].mean()
            acc[i] = correct[in_bin].mean()
    return mean_conf, acc, count


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> Calibration:
    """Fit ``T`` on (logits, labels) and report NLL and ECE before and after."""
    import torch

    x = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not np.isfinite(t) or t <= 0:
        log.warning("Temperature fit did not converge; keeping T = 1")
        t = 1.0
    t = float(np.clip(t, 0.05, 20.0))
    labels_np = np.asarray(labels)
    return Calibration(
        temperature=t,
        nll_before=nll(logits, labels_np, 1.0),
        nll_after=nll(logits, labels_np, t),
        ece_before=expected_calibration_error(softmax(logits, 1.0), labels_np),
        ece_after=expected_calibration_error(softmax(logits, t), labels_np),
    )
