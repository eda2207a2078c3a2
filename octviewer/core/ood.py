"""Is this B-scan like what the model knows? An out-of-distribution score from the network's
own features, carried by the model bundle.

Method (chosen by measurement, see ``docs/OOD.md``): **class-conditional Mahalanobis distance**
on the *pre-logit features* — the input of each network's classifier layer (a ResNet's pooled
512 channels, a ViT's pooled token). For every network ``k`` of the model (one, or each member
of an ensemble; the mirrored view of test-time augmentation is averaged with the plain one),
training fits per-class means ``mu_kc`` and one shared covariance with shrinkage ``S_k`` on that
network's *own training images*; a frame's distance for network ``k`` is
``min_c (f - mu_kc)^T S_k^-1 (f - mu_kc)``. Each distance is put on a common scale with the
median and spread of that network's distances on **held-out** patients
(``z_k = (d_k - median_k) / spread_k``), and the frame's score is the mean of the ``z_k``. The
bundle stores the threshold above which a frame is flagged, chosen on held-out patients at a
stated false-flag rate.

Cost: the features come from the same forward pass as the prediction and the attention map
(forward hooks on the classifier layers, :class:`FeatureTap`); the score itself is a few
matrix-vector products per frame.

Storage: the statistics are tensors in the bundle (``__ood__.<k>.means`` (C, D) and
``__ood__.<k>.whiten`` (D, D), the Cholesky factor of ``S_k^-1``, so
``d = |(f - mu) @ whiten|^2``) plus a small JSON object, ``ModelConfig.ood``: ``{"method":
"mahalanobis", "networks": K, "feature": "pre-logits", "center": [...], "spread": [...],
"threshold": t, "false_flag_target": r, ...measured figures}``, and ``"normalize": "l2"`` when
every feature vector is scaled to unit length before fitting and scoring (Mahalanobis++,
Mueller & Hein 2025; absent in bundles before 2.3.0, which score the raw features).

Limits: the score knows only what the features see. A scan from another device or region that
the network maps close to its training classes is not flagged; an in-domain scan of unusual
quality can be. It is a screen for "unlike the training data", not a quality grade.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.errors import ModelFormatError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

METHOD = "mahalanobis"
#: Feature normalisations before fitting and scoring: ``"none"`` (bundles before 2.3.0) or
#: ``"l2"`` (each feature vector scaled to unit length, Mahalanobis++, Mueller & Hein 2025).
NORMALIZATIONS = ("none", "l2")
TENSOR_PREFIX = "__ood__."
#: Shrinkage of the shared covariance towards its mean eigenvalue (0.5: measured on the default
#: model, out of fold, against 0.01-0.9; see docs/OOD.md).
DEFAULT_SHRINKAGE = 0.5
#: Target share of in-domain held-out scans above the threshold. 1.5 %, not 2 %: a quantile of a
#: few hundred scores is itself uncertain, and the rate measured on other folds must stay <= 2 %.
DEFAULT_FALSE_FLAG_RATE = 0.015


def normalize_features(feats: np.ndarray, normalize: str = "none") -> np.ndarray:
    """Features as the statistics see them: float64, L2-normalised per row for ``"l2"``."""
    f = np.asarray(feats, np.float64)
    if normalize == "l2":
        f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
    elif normalize != "none":
        raise ValueError(f"unknown feature normalisation {normalize!r}")
    return f


@dataclass(frozen=True)
class NetworkStats:
    """Mahalanobis statistics of one network: class means (C, D), whitening (D, D), the
    median / spread of its held-out distances, and the normalisation applied to features
    before both (``"none"`` or ``"l2"``)."""

    means: np.ndarray
    whiten: np.ndarray
    center: float
    spread: float
    normalize: str = "none"

    def distance(self, feats: np.ndarray) -> np.ndarray:
        """min over classes of the squared Mahalanobis distance, (B,) float64."""
        f = normalize_features(feats, self.normalize)
        w = self.whiten.astype(np.float64)
        fw = f @ w  # (B, D)
        mw = self.means.astype(np.float64) @ w  # (C, D)
        d = ((fw[:, None, :] - mw[None, :, :]) ** 2).sum(-1)
        return d.min(1)

    def z(self, feats: np.ndarray) -> np.ndarray:
        return (self.distance(feats) - self.center) / self.spread


@dataclass(frozen=True)
class OODModel:
    """The bundle's out-of-distribution score model. ``score(features)`` -> (B,) floats;
    a frame is out of distribution when its score exceeds ``threshold``."""

    networks: tuple[NetworkStats, ...]
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, features: Sequence[np.ndarray]) -> np.ndarray:
        if len(features) != len(self.networks):
            raise ValueError(
                f"expected features of {len(self.networks)} network(s), got {len(features)}"
            )
        z = np.stack([s.z(f) for s, f in zip(self.networks, features, strict=True)])
        return z.mean(0)

    # --- bundle storage -------------------------------------------------------------------
    def to_bundle(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(``ModelConfig.ood`` JSON, tensors to store under :data:`TENSOR_PREFIX`)."""
        meta = dict(self.info)
        meta.update(
            method=METHOD,
            feature="pre-logits",
            networks=len(self.networks),
            center=[float(s.center) for s in self.networks],
            spread=[float(s.spread) for s in self.networks],
            threshold=float(self.threshold),
        )
        norms = {s.normalize for s in self.networks}
        if len(norms) > 1:
            raise ValueError("every network of one model needs the same feature normalisation")
        meta.pop("normalize", None)
        if norms and (norm := norms.pop()) != "none":  # absent for "none": old bundles unchanged
            meta["normalize"] = norm
        tensors: dict[str, np.ndarray] = {}
        for k, s in enumerate(self.networks):
            tensors[f"{TENSOR_PREFIX}{k}.means"] = np.ascontiguousarray(s.means, np.float32)
            tensors[f"{TENSOR_PREFIX}{k}.whiten"] = np.ascontiguousarray(s.whiten, np.float32)
        return meta, tensors

    @classmethod
    def from_bundle(cls, meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> OODModel:
        """Rebuild from the JSON and tensors of a bundle; ModelFormatError when inconsistent."""
        try:
            if meta.get("method") != METHOD:
                raise ValueError(f"unknown method {meta.get('method')!r}")
            n = int(meta["networks"])
            center = [float(v) for v in meta["center"]]
            spread = [float(v) for v in meta["spread"]]
            threshold = float(meta["threshold"])
            normalize = meta.get("normalize", "none")
            if normalize not in NORMALIZATIONS:
                raise ValueError(f"unknown feature normalisation {normalize!r}")
            if not 1 <= n <= 64 or len(center) != n or len(spread) != n:
                raise ValueError("network count does not match its statistics")
            nets = []
            for k in range(n):
                means = np.asarray(tensors[f"{TENSOR_PREFIX}{k}.means"], np.float32)
                whiten = np.asarray(tensors[f"{TENSOR_PREFIX}{k}.whiten"], np.float32)
                d = means.shape[-1] if means.ndim == 2 else -1
                if means.ndim != 2 or whiten.shape != (d, d):
                    raise ValueError(f"statistics of network {k} have inconsistent shapes")
                if not (np.isfinite(means).all() and np.isfinite(whiten).all()):
                    raise ValueError(f"statistics of network {k} are not finite")
                if not (np.isfinite(center[k]) and np.isfinite(spread[k]) and spread[k] > 0):
                    raise ValueError(f"scale of network {k} is not usable")
                nets.append(NetworkStats(means, whiten, center[k], spread[k], normalize))
            if not np.isfinite(threshold):
                raise ValueError("threshold is not finite")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(
                f"The out-of-distribution statistics inside the model bundle are damaged ({exc}). "
                "Re-create them with `octviewer-train ood`, or use a bundle without them."
            ) from exc
        info = {
            k: v
            for k, v in meta.items()
            if k not in ("center", "spread", "threshold", "networks", "normalize")
        }
        return cls(tuple(nets), threshold, info)


# --- fitting (training) ---------------------------------------------------------------------
def fit_network(
    feats: np.ndarray, labels: np.ndarray, n_classes: int, *, shrinkage: float = DEFAULT_SHRINKAGE
) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C, D) and whitening (D, D) from one network's training features."""
    f = np.asarray(feats, np.float64)
    y = np.asarray(labels)
    d = f.shape[1]
    means = np.zeros((n_classes, d))
    for c in range(n_classes):
        sel = f[y == c]
        means[c] = sel.mean(0) if len(sel) else f.mean(0)
    resid = f - means[y]
    cov = resid.T @ resid / max(1, len(f))
    ridge = float(np.trace(cov)) / d if np.trace(cov) > 0 else 1.0
    cov = (1.0 - shrinkage) * cov + shrinkage * ridge * np.eye(d)
    precision = np.linalg.inv(cov)
    precision = (precision + precision.T) / 2
    whiten = np.linalg.cholesky(precision)  # precision = L L^T  ->  d = |(f - mu) @ L|^2
    return means.astype(np.float32), whiten.astype(np.float32)


def scale_of(heldout_distances: np.ndarray) -> tuple[float, float]:
    """(median, spread) of held-out distances; spread = 84th percentile - median (one sigma of
    a normal), robust to the few far scores that held-out data always has."""
    d = np.asarray(heldout_distances, np.float64)
    center = float(np.median(d))
    spread = float(np.percentile(d, 84) - center)
    return center, spread if spread > 1e-9 else 1.0


def threshold_at(scores: np.ndarray, false_flag_rate: float) -> float:
    """The score above which ``false_flag_rate`` of in-domain held-out frames lie."""
    return float(np.quantile(np.asarray(scores, np.float64), 1.0 - float(false_flag_rate)))


# --- features from the forward pass --------------------------------------------------------
def classifier_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The classifier layer of each network in ``model`` (one, or each ensemble member), whose
    *input* is the pre-logit feature vector."""
    members = getattr(model, "members", None)
    nets = list(members) if members is not None else [model]
    out = []
    for net in nets:
        get = getattr(net, "get_classifier", None)
        layer = get() if callable(get) else None
        if layer is None or not hasattr(layer, "register_forward_hook"):
            raise ModelFormatError(
                f"The network {type(net).__name__} has no classifier layer to read features from."
            )
        out.append(layer)
    return out


class FeatureTap:
    """Collects the pre-logit features of every network during a forward pass.

    ``with tap.recording(model): model(x)`` then ``tap.features()`` -> one (B, D) float32 array
    per network, the mean over the calls of that network's classifier (the mirrored view of
    test-time augmentation calls it twice). The layers are looked up at each recording, so
    layers swapped in and out (int8 and its float32 CAM copy) are both seen.
    """

    def __init__(self) -> None:
        self._calls: list[list[torch.Tensor]] = []

    @contextmanager
    def recording(self, model: torch.nn.Module) -> Iterator[FeatureTap]:
        layers = classifier_layers(model)
        self._calls = [[] for _ in layers]
        handles = []
        for k, layer in enumerate(layers):

            def hook(_m: Any, inp: tuple[Any, ...], _out: Any, k: int = k) -> None:
                x = inp[0]
                if x.ndim > 2:  # a conv/pooling head: pool what it receives
                    x = x.flatten(2).mean(-1)
                self._calls[k].append(x.detach().float())

            handles.append(layer.register_forward_hook(hook))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def features(self) -> list[np.ndarray]:
        import torch

        out = []
        for calls in self._calls:
            if not calls:
                raise ModelFormatError("The model's classifier was not reached: no features.")
            out.append(torch.stack(calls).mean(0).cpu().numpy())
        return out
