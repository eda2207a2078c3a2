"""An ensemble's members: load and check the bundles, their evaluation sets, their predictions,
and the combined module (checked against its members)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from octviewer.core.model.config import ModelConfig, PreprocessConfig
from octviewer.errors import TrainingError
from training.data.dataset import FrameDataset, Sample
from training.ensemble.config import EnsembleConfig

log = logging.getLogger(__name__)

Prepare = Callable[[Any], Any]


@dataclass(frozen=True)
class Members:
    loaded: list[Any]  # LoadedModel per member bundle, in the order given
    paths: list[Path]
    last_epochs: list[int]  # final epoch per member with --member-weights last, else empty
    folds: int | None  # fold count when the members are one cross-validation
    first: ModelConfig

    @property
    def names(self) -> tuple[str, ...]:
        return self.first.class_names

    @property
    def pre(self) -> PreprocessConfig:
        return self.first.preprocess


@dataclass(frozen=True)
class EvalSets:
    splits: list[Any]  # one split per member (cross-validation) or the one shared split
    samples: list[Sample]  # every evaluated image once, in prediction order
    datasets: list[FrameDataset]  # what each member is scored on


@dataclass(frozen=True)
class MemberLogits:
    per_member: list[np.ndarray]
    mirrored: list[np.ndarray]  # empty without --hflip-tta
    labels_per_member: list[np.ndarray]
    labels: np.ndarray  # of the ensemble's evaluation images
    plain: np.ndarray  # the ensemble's logits without test-time augmentation
    logits: np.ndarray  # the ensemble's logits (with TTA when asked)


def load_members(cfg: EnsembleConfig) -> Members:
    """Load the member bundles and refuse members that cannot form one ensemble."""
    from octviewer.core.model.bundle import load_bundle
    from octviewer.core.model.ensemble import ENSEMBLE

    loaded = [load_bundle(p) for p in cfg.members]
    last_epochs: list[int] = []
    if cfg.member_weights == "last":
        last_epochs = [_use_final_epoch(m, p) for m, p in zip(loaded, cfg.members, strict=True)]
    first = loaded[0].config
    for m, path in zip(loaded, cfg.members, strict=True):
        c = m.config
        if c.class_names != first.class_names or c.preprocess != first.preprocess:
            raise TrainingError(
                f"{path.name} has other classes or another preprocessing than "
                f"{cfg.members[0].name}: members must be trained the same way.",
                path=path,
            )
        if c.architecture == ENSEMBLE:
            raise TrainingError(f"{path.name} is already an ensemble.", path=path)
    seeds = {json.dumps((m.config.provenance or {}).get("split", {}).get("seed")) for m in loaded}
    if len(seeds) > 1:
        raise TrainingError(
            "The members were trained on different patient splits (split seeds "
            f"{', '.join(sorted(seeds))}): their validation patients are not unseen by all. "
            "Train them with the same --split-seed."
        )
    folds = _cv_folds(loaded, cfg.members)
    if folds is None and cfg.split is None:
        raise TrainingError(
            "Give --split (one member's split.csv): the members share one validation set."
        )
    return Members(loaded, list(cfg.members), last_epochs, folds, first)


def evaluation_sets(cfg: EnsembleConfig, members: Members) -> EvalSets:
    """Each member's held-out fold (cross-validation), or the shared validation patients."""
    from training.data.dataset import discover
    from training.data.split import load_split

    names, pre = members.names, members.pre
    source = discover(cfg.data, class_names=names)
    if members.folds is not None:  # cross-validation: each member is scored on its own fold
        splits = [
            load_split(path.parent / "split.csv", list(source.samples), names, 0, 0.0)
            for path in members.paths
        ]
        eval_samples = [s for sp in splits for s in sp.val]
        eval_sets = [FrameDataset(sp.val, pre) for sp in splits]
        if len(eval_samples) != len(set(eval_samples)):
            raise TrainingError("The members' validation folds overlap: they are not one CV.")
        return EvalSets(splits, eval_samples, eval_sets)
    split = load_split(cfg.split, list(source.samples), names, 0, 0.0)
    return EvalSets([split], list(split.val), [FrameDataset(split.val, pre)] * len(members.loaded))


def eval_prepare(pre: PreprocessConfig, *, mirrored: bool = False) -> Prepare:
    """The model input of a loaded batch, optionally the mirrored B-scan."""
    from training.data.augment import eval_batch

    if mirrored:
        return lambda x: eval_batch(x.flip(-1), pre)
    return lambda x: eval_batch(x, pre)


def predict_logits(
    model: Any, ds: FrameDataset, prep: Prepare, desc: str, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of ``ds`` on the CPU; refuses unreadable validation images."""
    import torch

    from training.fit import batches
    from training.fit.distributed import DistInfo

    how = batches.Inference(torch.device("cpu"), batch_size, workers=0)
    lg, lab, _, bad = batches.predict(model, ds, prep, how, DistInfo(), desc=desc)
    if bad:
        raise TrainingError(f"{len(bad)} validation image(s) could not be read.")
    return lg, lab


def member_logits(cfg: EnsembleConfig, members: Members, sets: EvalSets) -> MemberLogits:
    """Every member's predictions, combined: out of fold (CV) or averaged (shared split)."""
    prepare, mirrored = eval_prepare(members.pre), eval_prepare(members.pre, mirrored=True)
    per_member, flipped, labels_per = [], [], []
    for m, path, ds in zip(members.loaded, members.paths, sets.datasets, strict=True):
        lg, lab = predict_logits(m.model, ds, prepare, path.stem, cfg.batch_size)
        per_member.append(lg)
        labels_per.append(lab)
        if cfg.hflip_tta:
            flipped.append(
                predict_logits(m.model, ds, mirrored, f"{path.stem} flipped", cfg.batch_size)[0]
            )
    if members.folds is not None:  # out of fold: one prediction per image, by its held-out member
        labels = np.concatenate(labels_per)
        plain = np.concatenate(per_member)
        logits = (
            np.concatenate([(a + b) / 2 for a, b in zip(per_member, flipped, strict=True)])
            if cfg.hflip_tta
            else plain
        )
    else:
        labels = labels_per[0]
        plain = np.mean(per_member, axis=0)
        logits = np.mean(per_member + flipped, axis=0) if cfg.hflip_tta else plain
    return MemberLogits(per_member, flipped, labels_per, labels, plain, logits)


def build_checked_module(
    cfg: EnsembleConfig, members: Members, sets: EvalSets
) -> tuple[Any, dict[str, Any]]:
    """The ensemble module and its arch_kwargs; it must compute exactly the members' mean."""
    import torch

    from octviewer.core.model.architectures import create_model
    from octviewer.core.model.ensemble import ENSEMBLE

    arch_kwargs = {
        "members": [
            {"architecture": m.config.architecture, "arch_kwargs": dict(m.config.arch_kwargs)}
            for m in members.loaded
        ],
        "hflip_tta": bool(cfg.hflip_tta),
    }
    model = create_model(ENSEMBLE, len(members.names), **arch_kwargs)
    for dst, m in zip(model.members, members.loaded, strict=True):
        dst.load_state_dict(m.model.state_dict(), strict=True)
    model.eval()
    prepare, mirrored = eval_prepare(members.pre), eval_prepare(members.pre, mirrored=True)
    first_set = sets.datasets[0]
    with torch.no_grad():  # check on a few images
        xs = torch.stack([first_set[i][0] for i in range(min(4, len(first_set)))])
        views = [prepare(xs)] + ([mirrored(xs)] if cfg.hflip_tta else [])
        expected = torch.stack([m.model(v) for m in members.loaded for v in views]).mean(0).numpy()
        direct = model(prepare(xs)).numpy()
    if not np.allclose(direct, expected, atol=1e-3):
        raise TrainingError(
            "Internal check failed: the ensemble module disagrees with its members."
        )
    return model, arch_kwargs


def _cv_folds(loaded: list[Any], paths: tuple[Path, ...]) -> int | None:
    """The fold count when the members are the folds of one cross-validation, else ``None``.

    Refuses a mix of fold and non-fold members, unequal fold counts, or a fold twice: the
    out-of-fold predictions must cover each image exactly once.
    """
    info = [((m.config.provenance or {}).get("split") or {}) for m in loaded]
    in_cv = [("folds" in i and "fold" in i) for i in info]
    if not any(in_cv):
        return None
    if not all(in_cv):
        raise TrainingError(
            "Some members were trained on cross-validation folds (--folds/--fold) and some on a "
            "single split: combine one kind only."
        )
    counts = sorted({int(i["folds"]) for i in info})
    got = sorted(int(i["fold"]) for i in info)
    if counts != [len(got)] or got != list(range(1, len(got) + 1)):
        raise TrainingError(
            "Cross-validation members must be exactly one run per fold of the same --folds "
            f"(got folds {got} of {counts}): " + ", ".join(p.name for p in paths)
        )
    return len(got)


def _use_final_epoch(member: Any, bundle: Path) -> int:
    """Swap ``member``'s weights for the final epoch's (``last.pt`` beside its bundle).

    Returns that epoch (1-based). Refuses an unfinished run: its last epoch is not the recipe's.
    """
    import torch

    ck_path = bundle.parent / "last.pt"
    if not ck_path.is_file():
        raise TrainingError(
            f"--member-weights last needs {ck_path}: keep each member's run directory (its "
            "bundle and last.pt) together.",
            path=ck_path,
        )
    try:
        ck = torch.load(ck_path, map_location="cpu", weights_only=True)
        state, epoch = ck["model"], int(ck["epoch"]) + 1
    except Exception as exc:
        raise TrainingError(f"{ck_path} is not a readable training checkpoint: {exc}") from exc
    training = (member.config.provenance or {}).get("training") or {}
    planned = training.get("epochs_max")
    if planned is not None and epoch != int(planned):
        raise TrainingError(
            f"{ck_path} stopped at epoch {epoch} of {planned}: finish the run (--resume) or "
            "use --member-weights best.",
            path=ck_path,
        )
    if training.get("ema") and ck.get("ema"):  # an EMA run evaluated (and shipped) its average
        state = {k.removeprefix("module."): v for k, v in ck["ema"].items()}
    try:
        member.model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"{ck_path} does not match {bundle.name}: {exc}", path=ck_path) from exc
    return epoch
