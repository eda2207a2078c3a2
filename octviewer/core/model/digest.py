"""SHA-256 of files: a model bundle's identity and the int8 cache's integrity check.

A model load hashes about 95 MB (the default bundle and its cached int8 network: 0.12-0.17 s on
this project's 2-core CPU) after ``import torch`` (about 1 s, holding the GIL). hashlib releases
the GIL while it hashes, so :func:`hash_ahead` computes those digests on a thread while torch
imports, and :func:`file_sha256` takes a digest computed ahead when the file's size,
modification time and inode are still those it was read with (else, or when the head start
failed, it reads the file itself). A digest computed ahead is used once and only within
:data:`AHEAD_TTL_S`: this is a head start for one load, not a cache."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path

log = logging.getLogger(__name__)

#: a digest computed ahead and not taken within this many seconds is ignored
AHEAD_TTL_S = 120.0

_lock = threading.Lock()
#: absolute path -> (the file's stat when read, monotonic time, the digest or None: not computed)
_ahead: dict[str, tuple[tuple[int, int, int], float, Future[str | None]]] = {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stat(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks (or taken from :func:`hash_ahead`)."""
    p = Path(path)
    with _lock:
        entry = _ahead.pop(str(p.absolute()), None)
    if entry is not None:
        stat, started, future = entry
        try:
            digest = future.result()
            if digest is not None and time.monotonic() - started < AHEAD_TTL_S and _stat(p) == stat:
                return digest
        except Exception:  # the head start failed: read the file here, with its own errors
            log.debug("digest computed ahead of %s not used", p.name, exc_info=True)
    return _sha256(p)


def hash_ahead(
    first: Path, candidates: Iterable[Path], wanted: Callable[[str], Iterable[Path]]
) -> threading.Thread | None:
    """Start hashing ``first`` on a daemon thread, then those of ``candidates`` that
    ``wanted(first_digest)`` names; :func:`file_sha256` of any of them waits for the thread
    instead of reading the file again. Every candidate is registered before the thread starts,
    so a caller never misses a digest that is still being computed. None: ``first`` cannot
    be read (its reader will say why)."""
    futures: dict[Path, Future[str | None]] = {}
    now = time.monotonic()
    with _lock:
        for p in (Path(first), *(Path(c) for c in candidates)):
            try:
                stat = _stat(p)
            except OSError:
                if not futures:
                    return None
                continue
            futures[p] = Future()
            _ahead[str(p.absolute())] = (stat, now, futures[p])

    def run() -> None:
        chosen: set[Path] = set()
        for k, (p, future) in enumerate(futures.items()):
            try:
                if k == 0:
                    digest = _sha256(p)
                    future.set_result(digest)
                    chosen = {Path(c) for c in wanted(digest)}
                else:
                    future.set_result(_sha256(p) if p in chosen else None)
            except Exception as exc:  # handed to file_sha256, which reads the file itself
                if not future.done():
                    future.set_exception(exc)

    thread = threading.Thread(target=run, name="octviewer-digest", daemon=True)
    thread.start()
    return thread
