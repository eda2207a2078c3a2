"""Results on disk, so that a scan is never analysed twice with the same model (docs/CACHE.md).

::

    cache = ResultCache.default()               # <cache folder>/octviewer/results
    result = cache.through(scan, engine, lambda: engine.analyze(scan))

An entry is one JSON file per (content of the scan's files, model SHA-256, arithmetic), named
by the SHA-256 of that key; inside, one record per analysed frame (by frame index) and the
scan-level facts (:mod:`octviewer.core.result_codec`). The content is the SHA-256 of the bytes
of every source file of the scan, in order (a folder: the files it was built from), with the
series key that picked the scan out of them; the file names are never written. Plain JSON:
readable with any editor, read back with ``json.loads`` only (nothing is ever executed), one
file written atomically (temporary file in the same folder, fsync, :func:`os.replace`).

A missing, damaged, truncated or foreign entry is a miss (logged), never an error; a failed
write is logged and the analysis goes on. Past :data:`BUDGET_BYTES` the least recently used
entries are deleted. Heatmaps are not stored: the window and the CLI compute the heatmap of the
frame they show on demand (one pass of one frame).

The folder: ``$OCTVIEWER_CACHE_DIR/results`` when that variable is set, else the platform's
cache folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
``%LOCALAPPDATA%`` on Windows) + ``octviewer/results``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer._version import __version__
from octviewer.core.cache_dir import cache_home
from octviewer.core.result_codec import (
    decode_frame,
    decode_identity,
    decode_result,
    encode_frame,
    encode_identity,
)
from octviewer.core.scan_verdict import with_scan_verdict

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan

log = logging.getLogger(__name__)

__all__ = [
    "BUDGET_BYTES",
    "FORMAT_VERSION",
    "CacheKey",
    "ResultCache",
    "cached_at_text",
    "content_sha256",
    "engine_arithmetic",
    "write_atomic",
]

#: Written in every entry; an entry of another version is ignored.
FORMAT_VERSION = 1
FORMAT_NAME = "octviewer-result-cache"
#: Disk budget of the result folder: past it the least recently used entries go.
BUDGET_BYTES = 500 * 1024 * 1024
MAX_ENTRY_BYTES = 64 * 1024 * 1024  # larger is not an entry this module wrote
STALE_PART_S = 3600.0  # a temporary file this old is left over from a crash


def content_sha256(paths: Sequence[Path], series: str | None = None) -> str | None:
    """SHA-256 over the SHA-256 of each file's bytes (in order) and the series key; None when
    there is no file or one cannot be read (an in-memory scan is not cached)."""
    if not paths:
        return None
    outer = hashlib.sha256(b"octviewer-content-1\0")
    try:
        for p in paths:
            inner = hashlib.sha256()
            with Path(p).open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    inner.update(block)
            outer.update(inner.hexdigest().encode() + b"\0")
    except OSError as exc:
        log.info("result cache: a source file cannot be read (%s); not cached", exc.strerror)
        return None
    outer.update((series or "").encode("utf-8"))
    return outer.hexdigest()


def engine_arithmetic(engine: Engine) -> str:
    """What ``engine`` computes in, as its results will say (``ScanResult.arithmetic``)."""
    return "int8" if getattr(engine, "quantized", False) else str(engine.compute_dtype)


def cached_at_text(result: ScanResult) -> str | None:
    """ "result from the cache, computed 2026-12-07 14:02" for a result read from the cache
    (local time); None for a result computed now."""
    stamp = result.extra.get("cached_at")
    if not stamp:
        return None
    try:
        when = _dt.datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        when = stamp
    return f"result from the cache, computed {when}"


@dataclass(frozen=True)
class CacheKey:
    """What a cached result depends on. ``content`` is :func:`content_sha256`."""

    content: str
    model_sha256: str
    arithmetic: str
    app_version: str = __version__

    def as_dict(self) -> dict[str, Any]:
        return {
            "content_sha256": self.content,
            "model_sha256": self.model_sha256,
            "arithmetic": self.arithmetic,
            "app_version": self.app_version,
            "format_version": FORMAT_VERSION,
        }

    @property
    def file_name(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()[:40] + ".json"


class ResultCache:
    """A folder of cached results (see the module docstring)."""

    def __init__(self, root: str | Path, budget_bytes: int = BUDGET_BYTES) -> None:
        self.root = Path(root)
        self.budget_bytes = int(budget_bytes)

    @classmethod
    def default(cls) -> ResultCache:
        return cls(cache_home() / "results")

    def __repr__(self) -> str:
        return f"ResultCache({self.root})"

    # --- keys ----------------------------------------------------------------------------------
    def key_for(
        self, scan: Scan, model_sha256: str, arithmetic: str, series: str | None = None
    ) -> CacheKey | None:
        """The key of ``scan`` (None when its files cannot be hashed)."""
        content = content_sha256(scan.metadata.source_paths, series)
        return None if content is None else CacheKey(content, model_sha256, arithmetic)

    def path_of(self, key: CacheKey) -> Path:
        return self.root / key.file_name

    # --- reading -------------------------------------------------------------------------------
    def _read(self, key: CacheKey) -> dict[str, Any] | None:
        """The entry's JSON when it is one of ``key``'s; None (logged) otherwise."""
        path = self.path_of(key)
        try:
            if path.stat().st_size > MAX_ENTRY_BYTES:
                raise ValueError("too large")
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            log.warning("result cache: entry %s ignored (%s)", path.name, exc)
            return None
        if not (
            isinstance(data, dict)
            and data.get("format") == FORMAT_NAME
            and data.get("version") == FORMAT_VERSION
            and data.get("key") == key.as_dict()
        ):
            log.warning("result cache: entry %s ignored (another key or format)", path.name)
            return None
        return data

    def get(
        self, key: CacheKey, scan: Scan, frames: Sequence[int] | None = None
    ) -> ScanResult | None:
        """The cached result of ``frames`` (None: all) of ``scan``, or None on a miss."""
        data = self._read(key)
        if data is None:
            return None
        try:
            result = self._decode(data, scan, frames)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("result cache: entry %s ignored (damaged: %s)", key.file_name, exc)
            return None
        if result is not None:
            with contextlib.suppress(OSError):
                os.utime(self.path_of(key))  # recently used: evicted last
        return result

    def _decode(
        self, data: dict[str, Any], scan: Scan, frames: Sequence[int] | None
    ) -> ScanResult | None:
        info = data["scan"]
        if info["n_frames"] != scan.n_frames or tuple(info["shape"]) != scan.shape:
            raise ValueError("the scan's size differs")
        model = decode_identity(info["model"])
        if model.sha256 != data["key"]["model_sha256"]:
            raise ValueError("model")
        names = tuple(str(n) for n in info["class_names"])
        stored = {}
        for d in data["frames"]:
            fr = decode_frame(d, names)
            stored[fr.frame_index] = fr
        wanted = range(scan.n_frames) if frames is None else frames
        if any(i not in stored for i in wanted):
            return None  # not every frame asked for was analysed: a miss
        result = decode_result([stored[i] for i in wanted], info, model)
        stamp = info["computed_at"]
        if not isinstance(stamp, str):
            raise ValueError("computed_at")
        # the whole-scan verdict of the frames asked for, as the engine gives it
        return with_scan_verdict(replace(result, extra={**result.extra, "cached_at": stamp}))

    # --- writing -------------------------------------------------------------------------------
    def put(self, key: CacheKey, scan: Scan, result: ScanResult) -> bool:
        """Store ``result`` (merged with frames stored before for the same key); False (logged)
        when it cannot be written."""
        old = self._read(key)
        frames: dict[int, dict[str, Any]] = {}
        if old is not None and old.get("scan", {}).get("n_frames") == scan.n_frames:
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                frames = {int(d["frame_index"]): d for d in old["frames"]}
        frames.update({fr.frame_index: encode_frame(fr) for fr in result.frames})
        extra = {k: v for k, v in result.extra.items() if k != "cached_at"}
        data = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "key": key.as_dict(),
            "scan": {
                "n_frames": scan.n_frames,
                "shape": list(scan.shape),
                "class_names": list(result.class_names),
                "model": encode_identity(result.model),
                "device": result.device,
                "elapsed_s": float(result.elapsed_s),
                "extra": extra,
                "scan_reason": result.scan_reason,
                "computed_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            },
            "frames": [frames[i] for i in sorted(frames)],
        }
        try:
            write_atomic(self.path_of(key), json.dumps(data, indent=1))
        except OSError as exc:
            log.warning("result cache: could not write %s (%s)", key.file_name, exc)
            return False
        self.evict()
        return True

    # --- the one call the faces make -----------------------------------------------------------
    def through(
        self,
        scan: Scan,
        engine: Engine,
        compute: Callable[[], ScanResult],
        *,
        series: str | None = None,
        frames: Sequence[int] | None = None,
        lookup: bool = True,
    ) -> ScanResult:
        """The cached result of ``scan`` by ``engine``, or ``compute()``'s, stored.
        ``lookup=False`` computes anew (and stores): "Analyse again"."""
        key = self.key_for(scan, engine.identity.sha256, engine_arithmetic(engine), series)
        if key is not None and lookup:
            t0 = time.perf_counter()
            hit = self.get(key, scan, frames)
            if hit is not None:
                log.info(
                    "result cache: %d frame(s) from %s in %.3f s",
                    len(hit.frames),
                    key.file_name,
                    time.perf_counter() - t0,
                )
                return hit
        result = compute()
        if key is not None:
            self.put(key, scan, result)
        return result

    # --- housekeeping --------------------------------------------------------------------------
    def _files(self) -> list[tuple[Path, os.stat_result]]:
        out = []
        with contextlib.suppress(OSError):
            for p in self.root.iterdir():
                if p.suffix in (".json", ".part"):
                    with contextlib.suppress(OSError):
                        out.append((p, p.stat()))
        return out

    def usage(self) -> tuple[int, int]:
        """(entries, bytes) on disk."""
        files = [(p, st) for p, st in self._files() if p.suffix == ".json"]
        return len(files), sum(st.st_size for _, st in files)

    def evict(self) -> int:
        """Delete leftover temporary files and, past the budget, the least recently used
        entries; return the bytes freed."""
        now, freed, entries = time.time(), 0, []
        for p, st in self._files():
            if p.suffix == ".part":
                if now - st.st_mtime > STALE_PART_S and _unlink(p):
                    freed += st.st_size
            else:
                entries.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        for _, size, p in sorted(entries):
            if total <= self.budget_bytes:
                break
            if _unlink(p):
                freed += size
                total -= size
        if freed:
            log.info("result cache: %d bytes freed (budget %d)", freed, self.budget_bytes)
        return freed

    def clear(self) -> tuple[int, int]:
        """Delete every entry (and leftover temporary file): (entries, bytes) freed."""
        n = freed = 0
        for p, st in self._files():
            if _unlink(p):
                n += p.suffix == ".json"
                freed += st.st_size
        log.info("result cache cleared: %d entries, %d bytes", n, freed)
        return n, freed


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, fsync, replace."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # noqa: PTH105 (the atomic step, by its name)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    if hasattr(os, "O_DIRECTORY"):  # the rename itself survives a power cut
        with contextlib.suppress(OSError):
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except OSError:
        return False
    return True
