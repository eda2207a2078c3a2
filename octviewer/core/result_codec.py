"""A :class:`~octviewer.core.results.ScanResult` as plain JSON data and back, for the result
cache (:mod:`octviewer.core.result_cache`).

What is written: per frame the calibrated probabilities, the logits, the flags (by name), each
flag's detail, the out-of-distribution score and threshold, and the quality and anatomy
verdicts (their fields); per scan the model identity, device, ``extra`` and ``scan_reason``.
No pixels, no heatmaps, no patient identity. Floats are written with Python's shortest
round-trip repr, so a float32 read back is the same float32. Reading checks every field's
type and raises :class:`ValueError` on anything else; nothing read is ever executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from octviewer.core.anatomy import AnatomyVerdict
from octviewer.core.quality import QualityProblem, QualityVerdict
from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult

__all__ = [
    "decode_frame",
    "decode_identity",
    "decode_result",
    "encode_frame",
    "encode_identity",
]


# --- writing -----------------------------------------------------------------------------------
def _floats(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def _opt(v: float | None) -> float | None:
    return None if v is None else float(v)


def _quality(q: QualityVerdict | None) -> dict[str, Any] | None:
    if q is None:
        return None
    return {
        "acceptable": bool(q.acceptable),
        "problems": [p.name for p in q.problems],
        "reason": q.reason,
        "figures": {str(k): float(v) for k, v in q.figures.items()},
        "device_index": _opt(q.device_index),
        "device_index_name": q.device_index_name,
        "device_minimum": _opt(q.device_minimum),
    }


def _anatomy(a: AnatomyVerdict | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "is_optic_disc": bool(a.is_optic_disc),
        "score": float(a.score),
        "reason": a.reason,
        "features": {str(k): float(v) for k, v in a.features.items()},
    }


def encode_frame(fr: FrameResult) -> dict[str, Any]:
    """One frame's answer as JSON-ready data (no heatmap)."""
    return {
        "frame_index": int(fr.frame_index),
        "probabilities": _floats(fr.probabilities),
        "logits": _floats(fr.logits),
        "flags": sorted(f.name for f in fr.flags),
        "details": {f.name: str(text) for f, text in fr.details.items()},
        "ood_score": _opt(fr.ood_score),
        "ood_threshold": _opt(fr.ood_threshold),
        "quality": _quality(fr.quality),
        "anatomy": _anatomy(fr.anatomy),
    }


def encode_identity(m: ModelIdentity) -> dict[str, str]:
    return {
        "name": m.name,
        "version": m.version,
        "sha256": m.sha256,
        "architecture": m.architecture,
        "licence": m.licence,
    }


# --- reading (strict: every type checked) -------------------------------------------------------
def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"bad cache field: {what}")


def _str(d: Mapping[str, Any], key: str, *, optional: bool = False) -> Any:
    v = d[key]
    _need(isinstance(v, str) or (optional and v is None), key)
    return v


def _num(d: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    v = d[key]
    if v is None and optional:
        return None
    _need(isinstance(v, int | float) and not isinstance(v, bool), key)
    return float(v)


def _float_map(v: Any, what: str) -> dict[str, float]:
    _need(isinstance(v, dict), what)
    out = {}
    for k, x in v.items():
        _need(isinstance(x, int | float) and not isinstance(x, bool), what)
        out[str(k)] = float(x)
    return out


def _vector(v: Any, n: int, what: str) -> np.ndarray:
    _need(isinstance(v, list) and len(v) == n, what)
    _need(all(isinstance(x, int | float) and not isinstance(x, bool) for x in v), what)
    return np.asarray(v, dtype=np.float32)


def _read_quality(d: Any) -> QualityVerdict | None:
    if d is None:
        return None
    _need(isinstance(d, dict) and isinstance(d["problems"], list), "quality")
    _need(isinstance(d["acceptable"], bool), "quality.acceptable")
    return QualityVerdict(
        acceptable=d["acceptable"],
        problems=tuple(QualityProblem[str(p)] for p in d["problems"]),
        reason=_str(d, "reason", optional=True),
        figures=_float_map(d["figures"], "quality.figures"),
        device_index=_num(d, "device_index", optional=True),
        device_index_name=_str(d, "device_index_name", optional=True),
        device_minimum=_num(d, "device_minimum", optional=True),
    )


def _read_anatomy(d: Any) -> AnatomyVerdict | None:
    if d is None:
        return None
    _need(isinstance(d, dict) and isinstance(d["is_optic_disc"], bool), "anatomy")
    return AnatomyVerdict(
        is_optic_disc=d["is_optic_disc"],
        score=float(_num(d, "score") or 0.0),
        reason=_str(d, "reason"),
        features=_float_map(d["features"], "anatomy.features"),
    )


def decode_frame(d: Any, class_names: tuple[str, ...]) -> FrameResult:
    """A frame written by :func:`encode_frame`, for a model whose classes are ``class_names``.
    Raises ValueError (or KeyError) on anything that is not exactly such a frame."""
    _need(isinstance(d, dict), "frame")
    index = d["frame_index"]
    _need(isinstance(index, int) and not isinstance(index, bool) and index >= 0, "frame_index")
    n = len(class_names)
    probs = _vector(d["probabilities"], n, "probabilities")
    _need(bool(np.isfinite(probs).all()), "probabilities")
    _need(isinstance(d["flags"], list) and isinstance(d["details"], dict), "flags")
    return FrameResult(
        frame_index=index,
        class_names=class_names,
        probabilities=probs,
        logits=_vector(d["logits"], n, "logits"),
        flags=frozenset(ResultFlag[str(f)] for f in d["flags"]),
        details={ResultFlag[str(k)]: str(v) for k, v in d["details"].items()},
        ood_score=_num(d, "ood_score", optional=True),
        ood_threshold=_num(d, "ood_threshold", optional=True),
        quality=_read_quality(d["quality"]),
        anatomy=_read_anatomy(d["anatomy"]),
    )


def decode_identity(d: Any) -> ModelIdentity:
    _need(isinstance(d, dict), "model")
    return ModelIdentity(
        name=_str(d, "name"),
        version=_str(d, "version"),
        sha256=_str(d, "sha256"),
        architecture=_str(d, "architecture"),
        licence=_str(d, "licence"),
    )


def decode_extra(d: Any) -> dict[str, str]:
    _need(isinstance(d, dict) and all(isinstance(v, str) for v in d.values()), "extra")
    return {str(k): v for k, v in d.items()}


def decode_result(
    frames: list[FrameResult], scan: Mapping[str, Any], model: ModelIdentity
) -> ScanResult:
    """The scan-level part of an entry around ``frames`` (the whole-scan verdict is recomputed
    from the frames by the caller)."""
    return ScanResult(
        frames=tuple(frames),
        model=model,
        device=_str(scan, "device"),
        elapsed_s=float(_num(scan, "elapsed_s") or 0.0),
        extra=decode_extra(scan["extra"]),
        scan_reason=_str(scan, "scan_reason", optional=True),
    )
