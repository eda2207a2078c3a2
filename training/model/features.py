"""The fast CPU mode: run the frozen backbone once, cache its pooled features, train the head.

The features are those the classifier sees (``forward_head(..., pre_logits=True)``) on the
unaugmented, normalised images, so the trained head drops straight back into the network and
the bundle is an ordinary full model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from training.fit.batches import EvalPrepare, Inference, autocast_ctx, make_loader
from training.model.setup import features

log = logging.getLogger(__name__)


class FeatureDataset(torch.utils.data.Dataset):
    """Cached features with the same item shape as the image dataset: (x, label, index, ok)."""

    def __init__(self, feats: torch.Tensor, labels: torch.Tensor, ok: torch.Tensor) -> None:
        self.feats, self.labels, self.ok = feats, labels, ok

    def __len__(self) -> int:
        return int(self.feats.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, bool]:
        return self.feats[i], int(self.labels[i]), i, bool(self.ok[i])


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    prepare: EvalPrepare,
    how: Inference,
    *,
    desc: str = "features",
) -> FeatureDataset:
    from tqdm.auto import tqdm

    device, precision = how.device, how.precision
    model.eval().to(device)
    everything = list(range(len(dataset)))
    loader = make_loader(dataset, everything, how.batch_size, how.workers, drop_last=False)
    feats, labels, oks = [], [], []
    for x, y, _, ok in tqdm(loader, desc=desc, unit="batch", leave=False):
        with autocast_ctx(device, precision):
            f = features(model, prepare(x.to(device)))
        feats.append(f.float().cpu())
        labels.append(y)
        oks.append(ok)
    return FeatureDataset(torch.cat(feats), torch.cat(labels), torch.cat(oks))


def cached_features(
    path: Path,
    model: torch.nn.Module,
    sets: dict[str, torch.utils.data.Dataset],
    prepare: EvalPrepare,
    how: Inference,
) -> dict[str, FeatureDataset]:
    """Features of each named set, computed once and kept in ``path`` (reused on resume)."""
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if set(saved) == set(sets) and all(
            saved[k]["feats"].shape[0] == len(v) for k, v in sets.items()
        ):
            log.info("Reusing cached features from %s", path)
            return {k: FeatureDataset(d["feats"], d["labels"], d["ok"]) for k, d in saved.items()}
    out = {
        name: extract_features(model, ds, prepare, how, desc=f"features ({name})")
        for name, ds in sets.items()
    }
    torch.save(
        {k: {"feats": v.feats, "labels": v.labels, "ok": v.ok} for k, v in out.items()}, path
    )
    log.info(
        "Cached %s features (%d dims) in %s",
        {k: len(v) for k, v in out.items()},
        next(iter(out.values())).feats.shape[1],
        path.name,
    )
    return out
