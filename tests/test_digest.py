"""File digests and their head start (octviewer.core.model.digest)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from octviewer.core.model import digest


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(thread name, file name) of every file actually read and hashed."""
    calls: list[tuple[str, str]] = []
    real = digest._sha256

    def sha(path: Path) -> str:
        calls.append((threading.current_thread().name, path.name))
        return real(path)

    monkeypatch.setattr(digest, "_sha256", sha)
    return calls


def test_file_sha256_is_the_files_sha256(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    data = bytes(range(256)) * 9000  # more than one 1 MiB block
    f.write_bytes(data)
    assert digest.file_sha256(f) == _sha(data)


def test_digests_computed_ahead_are_taken_once_and_only_for_wanted_files(
    tmp_path: Path, counted: list[tuple[str, str]]
) -> None:
    bundle, wanted, other = (tmp_path / n for n in ("m.safetensors", "w.pt", "o.pt"))
    for f, data in ((bundle, b"bundle"), (wanted, b"wanted"), (other, b"other")):
        f.write_bytes(data)
    asked: list[str] = []

    def wanted_of(first_digest: str) -> set[Path]:
        asked.append(first_digest)
        return {wanted}

    thread = digest.hash_ahead(bundle, [wanted, other], wanted_of)
    assert thread is not None
    assert digest.file_sha256(bundle) == _sha(b"bundle")
    assert digest.file_sha256(wanted) == _sha(b"wanted")
    thread.join(5)
    assert asked == [_sha(b"bundle")]
    assert counted == [("octviewer-digest", "m.safetensors"), ("octviewer-digest", "w.pt")]
    # not wanted: read by the caller; and a digest ahead is used once
    assert digest.file_sha256(other) == _sha(b"other")
    assert digest.file_sha256(bundle) == _sha(b"bundle")
    assert counted[2:] == [("MainThread", "o.pt"), ("MainThread", "m.safetensors")]


def test_a_file_changed_after_its_head_start_is_read_again(
    tmp_path: Path, counted: list[tuple[str, str]]
) -> None:
    f = tmp_path / "m.safetensors"
    f.write_bytes(b"before")
    thread = digest.hash_ahead(f, [], lambda _d: set())
    assert thread is not None
    thread.join(5)
    f.write_bytes(b"after, longer")  # another size: the digest ahead is stale
    assert digest.file_sha256(f) == _sha(b"after, longer")
    assert [name for _t, name in counted] == ["m.safetensors", "m.safetensors"]


def test_a_head_start_that_failed_leaves_the_caller_its_own_error(tmp_path: Path) -> None:
    assert digest.hash_ahead(tmp_path / "missing.safetensors", [], lambda _d: set()) is None
    f = tmp_path / "m.safetensors"
    f.write_bytes(b"x")

    def broken(_d: str) -> set[Path]:
        raise RuntimeError("a manifest could not be read")

    other = tmp_path / "o.pt"
    other.write_bytes(b"y")
    thread = digest.hash_ahead(f, [other], broken)
    assert thread is not None
    thread.join(5)
    assert digest.file_sha256(other) == _sha(b"y")  # not computed ahead: read here
    f.unlink()
    with pytest.raises(FileNotFoundError):
        digest.file_sha256(f)
