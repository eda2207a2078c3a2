"""The int8 network cache: a bundle's static int8 backbones built once, loaded in a fraction
of a second at every later start.

Building the static int8 members (:mod:`.int8_static`: FX trace, prepare, convert) takes about
3 s for the default model on a 2-core CPU, and it gives the same network every time for the same
bundle, torch and activation width. So the converted backbones are traced to TorchScript
(``torch.jit.trace``) and saved in the user's cache folder (``$OCTVIEWER_CACHE_DIR/int8``, else
the platform's cache folder, :func:`octviewer.core.cache_dir.cache_home`), one pair per key:

- ``<key>.pt``: a stored (uncompressed) zip of one TorchScript file per member
  (``member-K.pt``: the converted backbone traced, frozen with ``torch.jit.freeze`` and saved
  with ``torch.jit.save``: no pickle of Python objects). Frozen graphs load in half the time of
  the module hierarchy a trace keeps (0.33 s against 0.60 s for the default model's four
  members, and a first forward of 0.065 s against 0.105 s), with identical outputs;
- ``<key>.json``: the manifest, written last: cache format, bundle SHA-256, torch version,
  activation bits, member count, feature channels, head kind per member, the input size and the
  SHA-256 of ``<key>.pt``.

The key is the SHA-256 of (cache format, bundle SHA-256, torch version, activation bits), so
another bundle, another torch or another CPU class (7- or 8-bit activations) never meets an old
entry. Only this app writes the folder; before use the manifest must match what is asked and
the ``.pt`` file must have the manifest's SHA-256, else the entry is refused (logged), deleted
and rebuilt. With a hit, the members' heads (pooling and classifier, float32) are rebuilt from
the bundle's own tensors: neither timm nor torchvision is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.core.filemode import apply_umask_to
from octviewer.core.model.digest import file_sha256
from octviewer.core.model.schema import SchemaError, loads_bounded

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 1: one traced module of all members, not frozen
FORMAT_NAME = "octviewer-int8-cache"
SUBDIR = "int8"
#: Head kinds a cached member can be rebuilt with (timm's two spellings of average pooling).
HEADS = ("avg", "fast-avg")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.jit's deprecation notes and the tracer's warnings about constant quantisation
    scales (constant by design: the calibration fixed them)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*trace.*")
        yield


def cache_folder() -> Path:
    from octviewer.core.cache_dir import cache_home

    return cache_home() / SUBDIR


def shipped_folder() -> Path:
    """Entries installed with the app (``resources/models/int8``, written by
    ``scripts/build_int8_cache.py`` when the app is packaged): read-only, tried after the
    user's folder, so that a new user's first start need not build the network."""
    from octviewer.resources import resources_dir

    return resources_dir() / "models" / SUBDIR


def torch_version() -> str:
    import torch

    return str(torch.__version__)


def entry_key(bundle_sha256: str, activation_bits: int, torch_ver: str | None = None) -> str:
    """The cache key of a bundle's int8 network built here."""
    torch_ver = torch_ver or torch_version()
    text = f"{CACHE_FORMAT}|{bundle_sha256}|torch {torch_ver}|{activation_bits}-bit"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def head_kind(member: torch.nn.Module) -> str | None:
    """How ``member`` pools before its classifier, when it is a shape this module rebuilds
    (average pooling + flatten + ``fc``, no dropout); else None (not cached)."""
    import torch

    pool = getattr(getattr(member, "global_pool", None), "pool", None)
    flat = getattr(getattr(member, "global_pool", None), "flatten", None)
    fc = getattr(member, "fc", None)
    if type(fc) is not torch.nn.Linear or float(getattr(member, "drop_rate", 0.0) or 0.0):
        return None
    if type(pool).__name__ == "FastAdaptiveAvgPool" and getattr(pool, "flatten", False):
        return "fast-avg"
    if type(pool) is torch.nn.AdaptiveAvgPool2d and pool.output_size in (1, (1, 1)):
        return "avg" if type(flat) is torch.nn.Flatten else None
    return None


#: at most this many entries of a folder are looked at for a load's head start
_MAX_AHEAD = 16


def entry_files() -> list[Path]:
    """The network files of the cache entries a load may read (user's folder, then shipped)."""
    files: list[Path] = []
    for folder in (cache_folder(), shipped_folder()):
        try:
            files += sorted(folder.glob("*.pt"))[:_MAX_AHEAD]
        except OSError:
            continue
    return files


def entry_files_of(bundle_sha256: str) -> set[Path]:
    """Those of :func:`entry_files` whose manifest names the bundle ``bundle_sha256`` (a
    manifest that cannot be read names none; :func:`load` says why when it is used)."""
    found: set[Path] = set()
    for pt in entry_files():
        try:
            facts = loads_bounded(
                pt.with_suffix(".json").read_bytes(), what="the int8 cache manifest",
                max_bytes=65536,
            )  # fmt: skip
        except (OSError, SchemaError, ValueError):
            continue
        if isinstance(facts, dict) and facts.get("bundle_sha256") == bundle_sha256:
            found.add(pt)
    return found


def store(
    folder: Path,
    key: str,
    facts: dict[str, Any],
    backbones: Sequence[torch.nn.Module],
    size: tuple[int, int],
) -> Path:
    """Trace ``backbones`` (int8 GraphModules) and write the entry ``key``; returns the .pt."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".pt.part")
    os.close(fd)
    pt, manifest = folder / f"{key}.pt", folder / f"{key}.json"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for k, backbone in enumerate(backbones):
                zf.writestr(_member_name(k), _frozen_bytes(backbone, size))
        apply_umask_to(Path(tmp))  # mkstemp's 0600: a shipped entry is read by every user
        facts = {**facts, "format": FORMAT_NAME, "format_version": CACHE_FORMAT}
        facts |= {"members": len(backbones), "size": list(size), "sha256": file_sha256(tmp)}
        Path(tmp).replace(pt)
        _write_text(manifest, json.dumps(facts, indent=1, sort_keys=True))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    remove_other_formats(folder)
    log.info("int8 network cached in %s (%.1f MB)", pt, pt.stat().st_size / 1e6)
    return pt


def _member_name(k: int) -> str:
    return f"member-{k}.pt"


def _frozen_bytes(backbone: torch.nn.Module, size: tuple[int, int]) -> bytes:
    """One converted backbone traced, frozen and saved as TorchScript."""
    import torch

    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(backbone, torch.zeros(1, 1, *size), check_trace=False)
        frozen = torch.jit.freeze(traced.eval())
        buf = io.BytesIO()
        torch.jit.save(frozen, buf)
    return buf.getvalue()


def _load_members(pt: Path, members: int) -> list[Any]:
    import torch

    nets = []
    with zipfile.ZipFile(pt) as zf:
        for k in range(members):
            info = zf.getinfo(_member_name(k))  # KeyError: a member is missing
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > pt.stat().st_size:
                raise ValueError(f"{_member_name(k)} is not stored as this app writes it")
            with _quiet():
                nets.append(torch.jit.load(io.BytesIO(zf.read(info)), map_location="cpu"))
    return nets


def remove_other_formats(folder: Path) -> None:
    """Delete the entries of ``folder`` written in another cache format (never used again: the
    format is part of the key)."""
    for manifest in sorted(folder.glob("*.json"))[: _MAX_AHEAD * 4]:
        try:
            facts = loads_bounded(manifest.read_bytes(), what="the int8 cache manifest",
                                  max_bytes=65536)  # fmt: skip
        except (OSError, SchemaError, ValueError):
            continue
        if (
            isinstance(facts, dict)
            and facts.get("format") == FORMAT_NAME
            and facts.get("format_version") != CACHE_FORMAT
        ):
            log.info("int8 cache: deleting entry %s of format %s",
                     manifest.stem[:12], facts.get("format_version"))  # fmt: skip
            remove(folder, manifest.stem)


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    apply_umask_to(Path(tmp))
    Path(tmp).replace(path)


def load(
    folder: Path, key: str, expect: dict[str, Any], *, readonly: bool = False
) -> tuple[list[Any], dict[str, Any]] | None:
    """The cached backbones of entry ``key`` and its manifest, or None (a miss, or an entry
    refused: then it is deleted so that it is rebuilt, unless ``readonly``). ``expect``:
    manifest values that must be equal (bundle SHA-256, torch version, activation bits,
    member count)."""
    pt, manifest = folder / f"{key}.pt", folder / f"{key}.json"
    if not manifest.is_file():
        return None
    try:
        facts = loads_bounded(
            manifest.read_bytes(), what="the int8 cache manifest", max_bytes=65536
        )
        problem = _manifest_problem(facts, expect)
        if problem is None and file_sha256(pt) != facts["sha256"]:
            problem = "its network file does not have the SHA-256 its manifest records"
        if problem is None:
            return _load_members(pt, int(facts["members"])), facts
    except (
        OSError, SchemaError, RuntimeError, ValueError, AttributeError, KeyError,
        zipfile.BadZipFile,
    ) as exc:  # fmt: skip
        problem = f"it could not be read ({type(exc).__name__}: {str(exc)[:200]})"
    log.warning("int8 cache entry %s in %s refused: %s", key[:12], folder, problem)
    if not readonly:
        remove(folder, key)
    return None


def _manifest_problem(facts: Any, expect: dict[str, Any]) -> str | None:
    if not isinstance(facts, dict):
        return "its manifest is not a JSON object"
    if facts.get("format") != FORMAT_NAME or facts.get("format_version") != CACHE_FORMAT:
        return "its manifest is of another format"
    for k, v in expect.items():
        if facts.get(k) != v:
            return f"its manifest's {k} is {str(facts.get(k))[:80]!r}, not {str(v)[:80]!r}"
    heads, members = facts.get("heads"), facts.get("members")
    if not (isinstance(members, int) and 1 <= members <= 16 and isinstance(heads, list)):
        return "its manifest has no valid member count"
    if len(heads) != members or not all(h in HEADS for h in heads):
        return "its manifest names heads this version cannot rebuild"
    if not isinstance(facts.get("sha256"), str) or not isinstance(facts.get("channels"), list):
        return "its manifest has no SHA-256 or channel counts"
    return None


def remove(folder: Path, key: str) -> None:
    for suffix in (".json", ".pt"):
        try:
            (folder / f"{key}{suffix}").unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete the int8 cache file %s%s: %s", key[:12], suffix, exc)


def head_module(kind: str, fc: torch.nn.Linear, features: torch.nn.Module) -> torch.nn.Module:
    """A cached ensemble member: int8 ``features`` (TorchScript) and a float32 head ``fc``
    after average pooling, with the member interface the ensemble, Grad-CAM and the OOD tap
    use (``forward_features``, ``forward_head``, ``get_classifier``)."""
    import torch

    class CachedMember(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.int8_features = features
            self.fc = fc
            self.pool_kind = kind

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            # TorchScript's profiling executor re-optimises a graph over its first calls (about
            # 0.1 s of the first analysis) for fusions that quantised kernels do not have
            with torch.jit.optimized_execution(False):
                return self.int8_features(x)

        def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
            if self.pool_kind == "fast-avg":
                x = x.mean((2, 3))
            else:
                x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
            return x if pre_logits else self.fc(x)

        def get_classifier(self) -> torch.nn.Module:
            return self.fc

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward_head(self.forward_features(x))

    return CachedMember().eval()
