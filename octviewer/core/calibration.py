"""Temperature-scaled softmax: the one implementation the trainer and the app share.

The trainer fits the temperature on held-out patients with it
(``training/evaluate/calibrate.py``) and the engine turns a network's logits into the
calibrated probabilities the user sees with it,
so the probabilities in a bundle's metrics and in the app are computed the same way.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) along the last axis, in float64 (stable: the row maximum is taken off)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def calibrated_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities a result reports: :func:`softmax` at the bundle's temperature, float32."""
    return softmax(logits, temperature).astype(np.float32)
