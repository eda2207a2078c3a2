"""The model bundle's configuration: everything needed to rebuild a model and use it.

A *bundle* is one ``.safetensors`` file: the weights plus this configuration as JSON in the
safetensors header metadata (key ``octviewer.config``). The SHA-256 of the file is the model's
identity on every result. See :mod:`octviewer.core.model.bundle` for reading and writing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

BUNDLE_FORMAT = "octviewer-bundle"
BUNDLE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class PreprocessConfig:
    """How a frame becomes the model's input tensor. One implementation
    (:mod:`octviewer.core.preprocess`) serves training and inference.

    MIRAGE's recipe is the default: grayscale, resize to 512x512 (bilinear, aspect ratio not
    kept), scale to [0, 1], then per-image min-max to [0, 1].
    """

    size: tuple[int, int] = (512, 512)  # (rows, cols) of the model input
    interpolation: str = "bilinear"
    normalization: str = "minmax"  # "minmax" (per image) or "meanstd"
    mean: float = 0.0  # used when normalization == "meanstd" (after scaling to [0, 1])
    std: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = list(self.size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        d = dict(d)
        if "size" in d:
            d["size"] = tuple(int(v) for v in d["size"])
        return cls(**d)


@dataclass(frozen=True)
class ModelConfig:
    """Everything about a model except its weights.

    ``architecture`` names an entry of :mod:`octviewer.core.model.architectures`
    (e.g. ``"mirage_base"``, ``"mirage_large"``, ``"mirage_vit"`` with explicit widths in
    ``arch_kwargs``, or ``"timm/<name>"`` for another timm model).
    """

    name: str
    version: str
    architecture: str
    class_names: tuple[str, ...]
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    temperature: float = 1.0
    confidence_threshold: float = 0.5
    cam_target_layer: str = "blocks.-1.norm1"
    licence: str = ""
    description: str = ""
    weights_dtype: str = "float32"
    provenance: dict[str, Any] = field(default_factory=dict)  # command, data, split, seed, date...
    metrics: dict[str, Any] = field(default_factory=dict)  # validation/test metrics
    # Out-of-distribution score model (octviewer.core.ood): method, threshold, measured rates.
    # Empty for bundles made before it existed: the engine then says the check is unavailable.
    ood: dict[str, Any] = field(default_factory=dict)
    # What the model was trained on: {"manufacturers": [...], "devices": [...], "scan_type":
    # "..."}; a scan whose metadata names another manufacturer carries a caution.
    training_domain: dict[str, Any] = field(default_factory=dict)
    # Static int8 calibration (octviewer.core.model.int8_static): activation ranges per member,
    # written by `octviewer-train int8`. Empty: `--int8` uses the dynamic Linear-only path.
    int8: dict[str, Any] = field(default_factory=dict)
    # Per arithmetic ("float32", "bfloat16", "int8"), the decisions it was validated on
    # (octviewer-train validate; octviewer.core.arithmetic picks the fastest that passed).
    validated: dict[str, Any] = field(default_factory=dict)
    # The operating point of a reassuring headline (octviewer.core.reassurance): {"class":
    # "NORMAL", "min_probability": p, ...how it was chosen}. Empty: any NORMAL is a headline.
    reassurance: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["preprocess"] = self.preprocess.to_dict()
        d["format"] = BUNDLE_FORMAT
        d["format_version"] = BUNDLE_FORMAT_VERSION
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a decoded bundle configuration, checked against the schema first
        (:func:`octviewer.core.model.schema.validate_config`: raises its ``SchemaError``)."""
        from octviewer.core.model.schema import validate_config

        validate_config(d)
        d = dict(d)
        d.pop("format", None)
        d.pop("format_version", None)
        d["class_names"] = tuple(d["class_names"])
        d["preprocess"] = PreprocessConfig.from_dict(d.get("preprocess", {}))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})
