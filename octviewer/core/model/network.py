"""The network an engine runs: the bundle loaded for the chosen arithmetic.

:func:`load_network` is the one place that turns a bundle into a ready network: float32
(autocast happens in the engine), or int8 (the static calibrated path or the dynamic Linear-only
path, :func:`~octviewer.core.model.int8_static.load_int8`). A static int8 network comes from the
int8 cache (:mod:`.int8_cache`) when it holds this bundle's; one built here is written there
(on a background thread by default, so that the first analysis need not wait for it).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from octviewer.core.model.bundle import BundleHead, LoadedModel

log = logging.getLogger(__name__)

#: "background" (write a new int8 network to the cache on a thread), "sync" or "off".
CACHE_MODES = ("background", "sync", "off")
CACHE_ENV = "OCTVIEWER_INT8_CACHE"


def hash_ahead_for_load(path: Path, *, int8: bool = True) -> None:
    """Hash the bundle at ``path`` and, unless ``int8`` is False (the load will not use an
    int8 network), its int8 cache entries on a thread (no torch needed), so that loading it
    after ``import torch`` finds the digests ready (:mod:`.digest`)."""
    from octviewer.core.model import int8_cache
    from octviewer.core.model.digest import hash_ahead

    entries = int8_cache.entry_files() if int8 else []
    hash_ahead(path, entries, int8_cache.entry_files_of if int8 else lambda _sha: set())


def load_network(
    path: Path,
    device: str,
    head: BundleHead,
    *,
    int8: bool,
    cam_target_of: Callable[[torch.nn.Module], str],
    cache: str | None = None,
) -> tuple[LoadedModel, Any]:
    """The loaded bundle and its int8 hook (None without int8). ``cache``: one of
    :data:`CACHE_MODES`; None: ``$OCTVIEWER_INT8_CACHE``, else "background"."""
    from octviewer.core.model.bundle import load_bundle
    from octviewer.core.model.int8_static import load_int8

    if not int8:
        return load_bundle(path, device=device, head=head), None
    cache = cache or os.environ.get(CACHE_ENV) or "background"
    if cache not in CACHE_MODES:
        raise ValueError(f"int8 cache mode {cache!r} is not one of {CACHE_MODES}")
    if cache != "off" and device == "cpu":
        cached = load_cached(head)
        if cached is not None:
            return cached
    loaded, hook = load_int8(path, device, head.config, cam_target_of, head)
    if cache != "off" and hook.kind == "static" and device == "cpu":
        job = threading.Thread(
            target=_store_in_background, args=(head, loaded, hook), name="int8-cache", daemon=True
        )
        job.start()
        if cache == "sync":
            job.join()
    return loaded, hook


def _store_in_background(head: BundleHead, loaded: LoadedModel, hook: Any) -> None:
    """:func:`store_cached` on a thread that yields the CPU to the window and the analyses
    (tracing and freezing four members is seconds of Python beside the first results)."""
    from octviewer.core.device import lower_thread_priority

    lower_thread_priority()
    store_cached(head, loaded, hook)


def _expect(head: BundleHead, sha: str, bits: int, members: int) -> dict[str, Any]:
    from octviewer.core.model.int8_cache import torch_version

    return {"bundle_sha256": sha, "torch": torch_version(), "activation_bits": bits,
            "members": members}  # fmt: skip


def load_cached(head: BundleHead) -> tuple[LoadedModel, Any] | None:
    """The static int8 network of ``head``'s bundle from the int8 cache, or None."""
    from octviewer.core.model import int8_cache
    from octviewer.core.model.bundle import LoadedModel, read_tensors
    from octviewer.core.model.digest import file_sha256
    from octviewer.core.model.ensemble import ensemble_of
    from octviewer.core.model.int8_static import StaticInt8, calibration_for
    from octviewer.core.results import ModelIdentity

    config = head.config
    ranges, _ = calibration_for(config)
    if ranges is None:
        return None
    hook = StaticInt8(ranges, tuple(config.preprocess.size))
    sha = file_sha256(head.path)
    key = int8_cache.entry_key(sha, hook.activation_bits)
    expect = _expect(head, sha, hook.activation_bits, len(ranges))
    found = int8_cache.load(int8_cache.cache_folder(), key, expect)
    if found is None:  # the entry shipped with a packaged app, if any
        found = int8_cache.load(int8_cache.shipped_folder(), key, expect, readonly=True)
    if found is None:
        return None
    nets, facts = found
    names = [f"members.{k}.fc.{w}" for k in range(len(nets)) for w in ("weight", "bias")]
    tensors, ood = read_tensors(head, names)
    members = []
    for k, net in enumerate(nets):
        w, b = tensors[f"members.{k}.fc.weight"], tensors[f"members.{k}.fc.bias"]
        if w.shape != (config.num_classes, facts["channels"][k]) or b.shape != (w.shape[0],):
            log.warning("int8 cache entry %s does not fit the bundle's heads", key[:12])
            return None
        fc = _linear(w, b)
        members.append(int8_cache.head_module(facts["heads"][k], fc, net))
    model = ensemble_of(members, hflip_tta=bool(config.arch_kwargs.get("hflip_tta"))).eval()
    hook.done = set(ranges)
    hook.from_cache = True
    identity = ModelIdentity(
        name=config.name,
        version=config.version,
        sha256=sha,
        architecture=config.architecture,
        licence=config.licence,
    )
    log.info("int8: static int8 backbones from the cache (%d members)", len(members))
    return LoadedModel(model=model, config=config, identity=identity, ood=ood), hook


def _linear(w: torch.Tensor, b: torch.Tensor) -> torch.nn.Linear:
    import torch

    fc = torch.nn.Linear(w.shape[1], w.shape[0], device="meta")
    fc.load_state_dict({"weight": w, "bias": b}, assign=True)
    return fc.eval()


def store_cached(
    head: BundleHead, loaded: LoadedModel, hook: Any, folder: Path | None = None
) -> Path | None:
    """Write a freshly built static int8 network to the int8 cache, or to ``folder`` (None:
    not cacheable or failed; logged, never raised: the engine works without the cache)."""
    from octviewer.core.model import int8_cache

    members = list(getattr(loaded.model, "members", []))
    heads = [int8_cache.head_kind(m) for m in members]
    if not members or None in heads:
        log.info("int8: this network's heads are not of a kind the int8 cache rebuilds")
        return None
    sha = loaded.identity.sha256
    facts = _expect(head, sha, hook.activation_bits, len(members))
    facts |= {"heads": heads, "channels": [int(m.fc.in_features) for m in members]}
    key = int8_cache.entry_key(sha, hook.activation_bits)
    try:
        backbones = [m.int8_features for m in members]
        size = tuple(head.config.preprocess.size)
        return int8_cache.store(folder or int8_cache.cache_folder(), key, facts, backbones, size)
    except Exception:  # a cache that cannot be written is not an error
        log.warning("int8: the network could not be cached", exc_info=True)
        return None
