"""Model architectures a bundle can name, built with timm.

- ``mirage_base`` / ``mirage_large``: the MIRAGE encoders (Morano et al. 2025) with the authors'
  classification head, as a timm ``VisionTransformer`` (see ``docs`` and :mod:`.mirage`).
- ``mirage_vit``: the same design with any ``embed_dim`` / ``depth`` / ``num_heads`` /
  ``img_size`` / ``patch_size`` (small MIRAGE-family models, tests).
- ``timm/<name>``: any timm model, built with ``in_chans=1`` and no pretrained download.

``meta=True`` builds on the ``meta`` device (no memory, no random initialisation); the caller
then loads real weights with ``load_state_dict(..., assign=True)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from octviewer.core.model.ensemble import ENSEMBLE, ENSEMBLE_CAM_TARGET, build_ensemble
from octviewer.errors import ModelFormatError

if TYPE_CHECKING:
    import torch

MIRAGE_VARIANTS: dict[str, dict[str, int]] = {
    "mirage_base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
    "mirage_large": {"embed_dim": 1024, "depth": 24, "num_heads": 16},
}
MIRAGE_DEFAULTS: dict[str, Any] = {"img_size": 512, "patch_size": 32, "mlp_ratio": 4.0}
VIT_CAM_TARGET = "blocks.-1.norm1"
_TIMM_PREFIX = "timm/"


#: What timm and torch raise for network settings they cannot build (a damaged bundle's
#: arch_kwargs): translated into ModelFormatError with the cause.
BUILD_ERRORS = (
    TypeError,
    ValueError,
    AssertionError,
    RuntimeError,
    ZeroDivisionError,
    IndexError,
    OverflowError,
    KeyError,
    AttributeError,
    MemoryError,
)


def known_architectures() -> tuple[str, ...]:
    return (*MIRAGE_VARIANTS, "mirage_vit", f"{_TIMM_PREFIX}<timm model name>", ENSEMBLE)


def mirage_vit(num_classes: int, **kw: Any) -> torch.nn.Module:
    """A MIRAGE-design ViT: one input channel, patch 32, one global token without position
    embedding, pre-norm blocks with qkv bias and LayerNorm eps 1e-6, final LayerNorm over all
    tokens, mean of the *patch* tokens (prefix excluded), Linear head.

    In timm terms: ``class_token=True, no_embed_class=True, global_pool='avg', fc_norm=False``.
    With ``fc_norm=False`` timm keeps ``norm`` in ``forward_features`` (before pooling) and its
    ``'avg'`` pool drops the ``num_prefix_tokens`` prefix before the mean — exactly the authors'
    head. (Left at None, ``fc_norm`` would switch to norm-after-pool for ``'avg'``.)
    """
    from functools import partial

    import torch
    from timm.models.vision_transformer import VisionTransformer

    args = {**MIRAGE_DEFAULTS, **kw}
    missing = {"embed_dim", "depth", "num_heads"} - set(args)
    if missing:
        raise ModelFormatError(
            f"The model configuration is incomplete: 'mirage_vit' needs {sorted(missing)}. "
            "Re-create the model bundle with octviewer-train."
        )
    try:
        return VisionTransformer(
            in_chans=1,
            num_classes=num_classes,
            qkv_bias=True,
            class_token=True,
            no_embed_class=True,
            global_pool="avg",
            fc_norm=False,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            act_layer=torch.nn.GELU,
            **args,
        )
    except BUILD_ERRORS as exc:
        raise ModelFormatError(
            f"The model configuration is invalid for a MIRAGE-type network "
            f"({type(exc).__name__}: {str(exc)[:200]}). "
            "Re-create the model bundle with octviewer-train."
        ) from exc


def create_model(
    architecture: str, num_classes: int, *, meta: bool = False, **arch_kwargs: Any
) -> torch.nn.Module:
    """Build the network named by ``architecture`` with a ``num_classes`` head, in eval mode."""
    import torch

    if not isinstance(num_classes, int) or num_classes < 2:
        raise ModelFormatError(
            f"The model must have at least two classes (got {num_classes!r}). "
            "Re-create the model bundle with octviewer-train."
        )
    ctx = torch.device("meta") if meta else torch.device("cpu")
    with ctx:
        if architecture in MIRAGE_VARIANTS:
            model = mirage_vit(num_classes, **{**arch_kwargs, **MIRAGE_VARIANTS[architecture]})
        elif architecture == "mirage_vit":
            model = mirage_vit(num_classes, **arch_kwargs)
        elif isinstance(architecture, str) and architecture.startswith(_TIMM_PREFIX):
            model = _timm_model(architecture[len(_TIMM_PREFIX) :], num_classes, arch_kwargs)
        elif architecture == ENSEMBLE:
            model = build_ensemble(
                num_classes,
                arch_kwargs.get("members"),
                create=create_model,
                hflip_tta=bool(arch_kwargs.get("hflip_tta", False)),
                meta=meta,
            )
        else:
            raise ModelFormatError(
                f"This model uses an architecture octviewer does not know ('{architecture}'). "
                f"Known: {', '.join(known_architectures())}. Update octviewer or use another model."
            )
    return model.eval()


def _timm_model(name: str, num_classes: int, kw: dict[str, Any]) -> torch.nn.Module:
    import timm

    if not timm.is_model(name):
        raise ModelFormatError(
            f"This model uses a timm network octviewer's timm does not have ('{name}'). "
            "Update octviewer (and timm) or use another model."
        )
    kw = {k: v for k, v in kw.items() if k not in ("in_chans", "num_classes", "pretrained")}
    try:
        return timm.create_model(name, pretrained=False, in_chans=1, num_classes=num_classes, **kw)
    except BUILD_ERRORS as exc:
        raise ModelFormatError(
            f"The timm network '{name}' could not be built with the bundle's settings "
            f"({type(exc).__name__}: {str(exc)[:200]}). "
            "Re-create the model bundle with octviewer-train."
        ) from exc


def is_token_model(model: torch.nn.Module) -> bool:
    """True for ViT-like models whose features are token sequences on a patch grid."""
    return hasattr(model, "patch_embed") and hasattr(model, "num_prefix_tokens")


def default_cam_target(architecture: str, model: torch.nn.Module) -> str:
    """Dotted path of the layer whose activations Grad-CAM uses.

    ViTs: ``blocks.-1.norm1`` (the last block's input tokens after its first norm). CNNs: the
    last feature stage timm reports (e.g. ``layer4`` for ResNets).
    """
    if architecture.startswith("mirage") or is_token_model(model):
        return VIT_CAM_TARGET
    if architecture == ENSEMBLE:
        return ENSEMBLE_CAM_TARGET
    info = getattr(model, "feature_info", None)
    if info:
        last = info[-1]
        name = last.get("module") if isinstance(last, dict) else None
        if name:
            return str(name)
    raise ModelFormatError(
        f"octviewer cannot find a layer for the attention map of '{architecture}'. "
        "Set cam_target_layer in the bundle configuration."
    )


def get_submodule(model: torch.nn.Module, dotted: str) -> torch.nn.Module:
    """Resolve a dotted path with negative indices (``blocks.-1.norm1``).

    Only registered child modules are followed (never other attributes such as ``__class__``
    or ``forward``), so what resolves is always a layer of the network."""
    import torch

    module = model
    parts = dotted.split(".") if isinstance(dotted, str) and dotted else None
    for part in parts or [""]:
        is_index = part.lstrip("-").isdigit() and len(part) < 6
        child = None
        if is_index and isinstance(module, (torch.nn.ModuleList, torch.nn.Sequential)):
            i = int(part)
            child = module[i] if -len(module) <= i < len(module) else None
        elif not is_index:
            child = module._modules.get(part)
        if not isinstance(child, torch.nn.Module):
            raise ModelFormatError(
                f"The model has no layer '{str(dotted)[:80]}' for the attention map. "
                "Fix cam_target_layer in the bundle configuration."
            )
        module = child
    return module


def resolve_module_name(model: torch.nn.Module, dotted: str) -> str:
    """The canonical ``named_modules`` name of a dotted path (negative indices resolved)."""
    target = get_submodule(model, dotted)
    for name, module in model.named_modules():
        if module is target:
            return name
    raise ModelFormatError(f"'{dotted}' is not a layer of the model (cam_target_layer).")
