"""Shared test helpers: tiny, real model bundles (random weights) for pipeline tests.

Usage from any test (pytest puts ``tests/`` on ``sys.path``; ``tests.helpers_models`` also
works under ``python -m pytest``)::

    from helpers_models import make_tiny_bundle
    bundle = make_tiny_bundle(tmp_path / "tiny.safetensors")

The bundle goes through the real :func:`octviewer.core.model.bundle.save_bundle`, so loading it
exercises the real reader. Widths are tiny so a forward at 64x64 takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from octviewer.core.model.config import ModelConfig, PreprocessConfig

KERMANY_CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
TINY_VIT = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 64, "patch_size": 16}


def tiny_config(
    architecture: str = "mirage_vit",
    class_names: Sequence[str] = KERMANY_CLASSES,
    *,
    img_size: int = 64,
    arch_kwargs: dict[str, Any] | None = None,
    **overrides: Any,
) -> ModelConfig:
    """A :class:`ModelConfig` for a tiny model (``mirage_vit`` 32 wide, 2 deep, 64x64 input)."""
    if arch_kwargs is None:
        arch_kwargs = {**TINY_VIT, "img_size": img_size} if architecture == "mirage_vit" else {}
    fields: dict[str, Any] = {
        "name": "tiny-test-model",
        "version": "0.0.1",
        "architecture": architecture,
        "class_names": tuple(class_names),
        "arch_kwargs": dict(arch_kwargs),
        "preprocess": PreprocessConfig(size=(img_size, img_size)),
        "licence": "test only",
        "description": "randomly initialised tiny model for tests",
        "provenance": {"made_by": "tests/helpers_models.py"},
    }
    if architecture.startswith("timm/"):
        fields["cam_target_layer"] = "layer4" if "resnet" in architecture else "stages.-1"
    fields.update(overrides)
    return ModelConfig(**fields)


def make_tiny_model(config: ModelConfig, *, seed: int = 0) -> Any:
    """The randomly initialised network of ``config`` (deterministic for a given seed)."""
    import torch

    from octviewer.core.model.architectures import create_model

    torch.manual_seed(seed)
    return create_model(config.architecture, config.num_classes, **config.arch_kwargs)


def make_tiny_bundle(
    path: str | Path,
    architecture: str = "mirage_vit",
    class_names: Sequence[str] = KERMANY_CLASSES,
    *,
    img_size: int = 64,
    seed: int = 0,
    dtype: str = "float32",
    model: Any = None,
    arch_kwargs: dict[str, Any] | None = None,
    **config_overrides: Any,
) -> Path:
    """Write a tiny real bundle at ``path`` and return the path.

    ``architecture``: ``"mirage_vit"`` (default, 32 wide) or e.g. ``"timm/test_resnet"``.
    ``model``: save this network instead of a fresh random one (e.g. a trained tiny model).
    Other keywords override :class:`ModelConfig` fields (``temperature``,
    ``confidence_threshold``, ``name``...).
    """
    from octviewer.core.model.bundle import save_bundle

    config = tiny_config(
        architecture, class_names, img_size=img_size, arch_kwargs=arch_kwargs, **config_overrides
    )
    net = model if model is not None else make_tiny_model(config, seed=seed)
    p = Path(path)
    save_bundle(p, net, config, dtype=dtype)
    return p
