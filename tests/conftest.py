"""Shared test fixtures. Qt runs offscreen; torch uses one thread so tests behave on a busy CI box."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# the result cache, the last session and the unclean-exit marker never go to the user's cache
# folder (each test gets its own below; this covers module-scoped fixtures)
os.environ["OCTVIEWER_CACHE_DIR"] = tempfile.mkdtemp(prefix="octviewer-test-cache-")

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"
REPO_DIR = TESTS_DIR.parent
SHARED_DATA = REPO_DIR.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real-data folder next to the checkout; tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            "../shared/data is not present (fresh clone): this test needs the full real-data corpus"
        )
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _own_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh app cache folder per test: no result computed by one test is read by another."""
    d = tmp_path_factory.mktemp("app-cache")
    monkeypatch.setenv("OCTVIEWER_CACHE_DIR", str(d))
    return d


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch missing or broken: GPU tests cannot run either
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
