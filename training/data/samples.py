"""The run's samples: decode into memory when it fits, skip unreadable files before the split."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.model.config import PreprocessConfig
from octviewer.errors import TrainingError
from training.data.dataset import FrameDataset, Sample, build_cache, cache_bytes

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.data.dataset import DatasetSource
    from training.data.split import Split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadableSamples:
    samples: tuple[Sample, ...]
    cache: np.ndarray | None  # decoded images in the order of ``samples``, or None (streaming)
    unreadable: list[Sample]


def readable_samples(
    cfg: TrainConfig, source: DatasetSource, pre: PreprocessConfig, names: tuple[str, ...]
) -> ReadableSamples:
    """Decode and cache (or header-check) ``source``'s samples; refuse a class left empty."""
    samples = source.samples
    use_cache = cfg.cache == "yes" or (
        cfg.cache == "auto" and cache_bytes(len(samples), pre) <= cfg.cache_limit_gb * 1e9
    )
    cache: np.ndarray | None = None
    if use_cache:
        t0 = time.perf_counter()
        cache, bad_idx = build_cache(samples, pre, workers=cfg.workers, desc="decode + resize")
        bad = set(bad_idx)
        unreadable = [samples[i] for i in sorted(bad)]
        keep = [i for i in range(len(samples)) if i not in bad]
        cache = cache[keep]
        samples = tuple(samples[i] for i in keep)
        log.info(
            "Decoded and cached %d images at %dx%d in %.1f s (%.0f MB)",
            len(samples),
            *pre.size,
            time.perf_counter() - t0,
            cache.nbytes / 1e6,
        )
    else:
        bad_s = set(check_readable_headers(samples))
        unreadable = sorted(bad_s, key=lambda s: str(s.path))
        samples = tuple(s for s in samples if s not in bad_s)
        log.info(
            "Streaming %d images from disk (cache off or over %.1f GB)",
            len(samples),
            cfg.cache_limit_gb,
        )
    k = len(names)
    present = {s.label for s in samples}
    if len(present) < 2 or len(present) < k:
        missing = [names[i] for i in range(k) if i not in present]
        raise TrainingError(
            f"After skipping unreadable files, the class(es) {', '.join(missing)} have no "
            "readable image. Check those folders.",
            path=source.root,
        )
    return ReadableSamples(samples, cache, unreadable)


def check_readable_headers(samples: tuple[Sample, ...]) -> list[Sample]:
    """Quick header check of plain images (no decoding) so obviously broken files are skipped."""
    from PIL import Image

    from training.data.dataset import PLAIN_IMAGE_SUFFIXES

    bad = []
    for s in samples:
        if s.path.suffix.lower() in PLAIN_IMAGE_SUFFIXES:
            try:
                with Image.open(s.path) as im:
                    im.size  # noqa: B018 - forces the header parse
            except (OSError, ValueError, SyntaxError):
                bad.append(s)
    return bad


def subset_cache(
    cache: np.ndarray | None, pos: dict[Sample, int], items: tuple[Sample, ...]
) -> np.ndarray | None:
    if cache is None:
        return None
    return cache[[pos[s] for s in items]]


def split_datasets(
    readable: ReadableSamples, split: Split, pre: PreprocessConfig
) -> tuple[FrameDataset, FrameDataset]:
    """Training and validation datasets, each with its share of the decoded cache."""
    pos = {s: i for i, s in enumerate(readable.samples)}
    train_ds = FrameDataset(split.train, pre, subset_cache(readable.cache, pos, split.train))
    val_ds = FrameDataset(split.val, pre, subset_cache(readable.cache, pos, split.val))
    return train_ds, val_ds
