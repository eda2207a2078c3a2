"""A small compatibility layer that lets oct-converter's Topcon readers run under NumPy 2.

oct-converter 0.7 reads Topcon ``.fda`` / ``.fds`` chunks with ``np.fromstring(bytes, dtype)``.
NumPy 2 removed the binary mode of ``np.fromstring`` (it raises), although the parsing itself
is sound (measured: under NumPy 1 the same files read correctly). Two things are done here,
both undone when the ``with`` block ends:

* :func:`numpy_fromstring_for_bytes` makes ``np.fromstring(data, dtype, count)`` on bytes
  return ``np.frombuffer(data, dtype, count).copy()`` (what NumPy 1 returned: a writable
  copy). Text mode (``sep != ""``) and non-bytes input go to the real function unchanged.
* :func:`import_readers` imports ``oct_converter.readers``. Its ``image_types`` modules import
  OpenCV, Matplotlib and imageio (and ``boct`` h5py) at module level, only to *save* or *plot*
  images, which octviewer never asks for. Where one of these is not installed (the packaged
  app leaves OpenCV and Matplotlib out: about 200 MB), an inert placeholder module stands in
  while oct-converter is imported; calling into it raises ``MissingDependencyError``.

Only the reader code that octviewer calls runs under these patches; the patch of ``np`` is
process-wide while active, so it is held under a lock.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from octviewer.errors import MissingDependencyError

_LOCK = threading.RLock()
#: modules oct-converter imports at module level for saving/plotting only
OPTIONAL_IMPORTS = ("cv2", "imageio", "matplotlib", "matplotlib.pyplot", "h5py")


def _fromstring_bytes(real: Any) -> Any:
    def fromstring(
        string: Any, dtype: Any = float, count: int = -1, *, sep: str = "", **kw: Any
    ) -> Any:
        if sep == "" and isinstance(string, (bytes, bytearray, memoryview)) and not kw:
            return np.frombuffer(string, dtype=dtype, count=count).copy()
        return real(string, dtype=dtype, count=count, sep=sep, **kw)

    fromstring.__doc__ = "np.fromstring, with NumPy 1's binary mode for bytes (octviewer)."
    return fromstring


@contextmanager
def numpy_fromstring_for_bytes() -> Iterator[None]:
    """While active, ``np.fromstring(bytes, dtype, count)`` works as it did in NumPy 1."""
    with _LOCK:
        real = np.fromstring
        np.fromstring = _fromstring_bytes(real)
        try:
            yield
        finally:
            np.fromstring = real


class _Placeholder(types.ModuleType):
    """Stands in for an optional module that oct-converter imports but octviewer never uses."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingDependencyError(
            f"This oct-converter feature needs the package '{self.__name__}', which this "
            "octviewer installation does not include (octviewer only reads scans with it)."
        )


def _missing_optional() -> list[str]:
    missing = []
    for name in OPTIONAL_IMPORTS:
        if name in sys.modules:
            continue
        parent = name.partition(".")[0]
        if parent in missing:
            missing.append(name)
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def import_readers() -> types.ModuleType:
    """``oct_converter.readers``, importable without OpenCV / Matplotlib / imageio / h5py.

    Raises ``ImportError`` when oct-converter itself is not installed.
    """
    importlib.import_module("oct_converter")  # ImportError when absent (or blocked)
    if "oct_converter.readers" in sys.modules:
        return sys.modules["oct_converter.readers"]
    with _LOCK:
        placed = _missing_optional()
        for name in placed:
            sys.modules[name] = _Placeholder(name)
        for name in placed:
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, sys.modules[name])
        try:
            return importlib.import_module("oct_converter.readers")
        finally:
            # oct-converter keeps its references; nobody else should find the placeholders
            for name in placed:
                if isinstance(sys.modules.get(name), _Placeholder):
                    del sys.modules[name]
