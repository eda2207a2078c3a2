"""Build the network to train: architecture, initial weights, frozen parts, optimizer groups."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.errors import OCTViewerError, TrainingError

if TYPE_CHECKING:
    import torch

    from training.config import TrainConfig

log = logging.getLogger(__name__)

HEAD_PREFIXES = ("head.", "fc.", "classifier.", "head_drop.", "norm.", "fc_norm.")


@dataclass
class BuiltModel:
    model: torch.nn.Module
    architecture: str
    arch_kwargs: dict[str, Any]  # what the bundle records (no training-only options)
    init_description: str
    licence_hint: str = ""
    init_info: dict[str, Any] = field(default_factory=dict)


def _arch_kwargs(cfg: TrainConfig, architecture: str) -> dict[str, Any]:
    kw = dict(cfg.arch_kwargs)
    if architecture.startswith("mirage") or "vit" in architecture:
        kw["img_size"] = cfg.input_size
    return kw


def build_model(cfg: TrainConfig, num_classes: int, class_names: tuple[str, ...]) -> BuiltModel:
    """The model of ``cfg.architecture`` initialised as ``cfg.init`` says."""
    import torch

    from octviewer.core.model.architectures import create_model

    kind, _, path = cfg.init.partition(":")
    kind = kind.lower()
    train_only = {"drop_path_rate": cfg.drop_path} if cfg.drop_path > 0 else {}
    if kind == "bundle":
        return _from_bundle(path, cfg, num_classes, class_names, train_only)
    if kind in ("mirage-base", "mirage-large"):
        return _from_mirage(Path(path), kind, cfg, num_classes, train_only)
    if kind != "scratch":
        raise TrainingError(
            f"Unknown --init '{cfg.init}': use scratch, mirage-base:PATH, mirage-large:PATH or "
            "bundle:PATH."
        )
    architecture = cfg.architecture
    kw = _arch_kwargs(cfg, architecture)
    torch.manual_seed(cfg.seed)
    try:
        model = create_model(architecture, num_classes, **kw, **train_only)
    except OCTViewerError as exc:
        raise TrainingError(f"Cannot build the model: {exc}") from exc
    return BuiltModel(model, architecture, kw, "random initialisation (scratch)")


def _from_mirage(
    path: Path, kind: str, cfg: TrainConfig, num_classes: int, train_only: dict[str, Any]
) -> BuiltModel:
    """Official MIRAGE encoder weights (through the viewer's loader) + a new norm and head."""
    import torch

    from octviewer.core.model.architectures import create_model
    from octviewer.core.model.mirage import load_into, load_official_weights

    weights = load_official_weights(path)
    want = "mirage_base" if kind == "mirage-base" else "mirage_large"
    if weights.variant in ("mirage_base", "mirage_large") and weights.variant != want:
        raise TrainingError(
            f"{path.name} holds {weights.variant} weights but --init asked for {kind}; use "
            f"--init {weights.variant.replace('_', '-')}:{path}.",
            path=path,
        )
    architecture = weights.variant
    kw = dict(weights.arch_kwargs) if architecture == "mirage_vit" else {}
    native = int(kw.get("img_size", 512))
    if cfg.input_size != native:
        raise TrainingError(
            f"The MIRAGE weights expect {native}x{native} inputs; use --img-size {native} "
            "(other sizes would need a resampled position table).",
            path=path,
        )
    if cfg.architecture not in (architecture, "mirage_base"):
        log.warning("--init %s overrides --architecture %s", kind, cfg.architecture)
    torch.manual_seed(cfg.seed)
    model = create_model(architecture, num_classes, **kw, **train_only)
    try:
        load_into(model, weights)
    except OCTViewerError as exc:
        raise TrainingError(f"Cannot start from {path.name}: {exc}", path=path) from exc
    log.info("Loaded the official %s encoder from %s (new norm and head)", architecture, path.name)
    return BuiltModel(
        model,
        architecture,
        kw,
        f"official {architecture} weights ({path.name}, {weights.source_format})",
        licence_hint="MIRAGE weights: CC BY-NC-ND 4.0 (non-commercial research use)",
    )


def _member_spec(spec: str) -> tuple[Path, int | None]:
    """``PATH`` or ``PATH@K`` (member K, 1-based, of an ensemble bundle)."""
    head, at, tail = spec.rpartition("@")
    if at and tail.isdigit() and head:
        return Path(head), int(tail)
    return Path(spec), None


def _from_bundle(
    spec: str,
    cfg: TrainConfig,
    num_classes: int,
    class_names: tuple[str, ...],
    train_only: dict[str, Any],
) -> BuiltModel:
    import torch

    from octviewer.core.model.architectures import create_model
    from octviewer.core.model.bundle import load_bundle

    path, member = _member_spec(spec)
    try:
        loaded = load_bundle(path)
    except OCTViewerError as exc:
        raise TrainingError(f"Cannot start from the bundle {path.name}: {exc}", path=path) from exc
    bc = loaded.config
    architecture, kw, net = bc.architecture, dict(bc.arch_kwargs), loaded.model
    if member is not None:
        specs = kw.get("members") if architecture == "ensemble" else None
        if not specs or not 1 <= member <= len(specs):
            raise TrainingError(
                f"--init bundle:{spec}: the bundle is not an ensemble with a member {member}.",
                path=path,
            )
        architecture, kw = specs[member - 1]["architecture"], dict(specs[member - 1]["arch_kwargs"])
        net = loaded.model.members[member - 1]
    if tuple(bc.preprocess.size) != (cfg.input_size, cfg.input_size) and cfg.img_size:
        log.warning("Bundle input %s, training at %d px", bc.preprocess.size, cfg.input_size)
    if "img_size" in kw:
        kw["img_size"] = cfg.input_size
    torch.manual_seed(cfg.seed)
    model = create_model(architecture, bc.num_classes, **kw, **train_only)
    model.load_state_dict(net.state_dict(), strict=True)
    new_head = tuple(bc.class_names) != tuple(class_names)
    if new_head:
        log.info(
            "Bundle classes %s differ from the data's %s: new head", bc.class_names, class_names
        )
        torch.manual_seed(cfg.seed)
        model.reset_classifier(num_classes)
    return BuiltModel(
        model,
        architecture,
        kw,
        f"bundle {path.name} (sha256 {loaded.identity.sha256[:12]})"
        + (f", member {member}" if member is not None else "")
        + (", new head" if new_head else ""),
        licence_hint=bc.licence,
        init_info={"bundle_sha256": loaded.identity.sha256},
    )


def classifier_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    head = model.get_classifier()
    return list(head.parameters())


def freeze_backbone(model: torch.nn.Module) -> None:
    """Linear probe: only the classifier learns."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in classifier_params(model):
        p.requires_grad_(True)


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases/norms/position tables; optional layer-wise lr decay.

    Each group's ``lr`` already carries its layer scale; the scheduler multiplies it.
    """
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    nwd = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    if cfg.layer_decay is not None and cfg.layer_decay < 1.0:
        groups = param_groups_layer_decay(
            model,
            weight_decay=cfg.weight_decay,
            no_weight_decay_list=nwd,
            layer_decay=cfg.layer_decay,
        )
    else:
        groups = param_groups_weight_decay(
            model, weight_decay=cfg.weight_decay, no_weight_decay_list=nwd
        )
    out = []
    for g in groups:
        params = [p for p in g["params"] if p.requires_grad]
        if params:
            out.append(
                {
                    "params": params,
                    "weight_decay": g["weight_decay"],
                    "lr": cfg.base_lr * g.get("lr_scale", 1.0),
                }
            )
    if not out:
        raise TrainingError("No trainable parameters (internal error in the chosen mode).")
    return out


def features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pooled pre-classifier features of a timm model (what the head sees)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)
