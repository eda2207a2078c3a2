"""Give files written through :func:`tempfile.mkstemp` the user's normal permissions.

``mkstemp`` creates its file with mode 0600 whatever the umask, so a report written to a
temporary name and renamed would be readable by its owner only. :func:`apply_umask` sets the
mode an ordinary ``open()`` would have given it: ``0o666 & ~umask`` (0644 under umask 022).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _LOCK:  # elsewhere the only way to read it is to set it (and put it back at once)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def apply_umask(fd: int) -> None:
    """Set the mode of the open file ``fd`` to ``0o666 & ~umask`` (POSIX; no-op on Windows)."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~current_umask())


def apply_umask_to(path: str | Path) -> None:
    """The same for a file written by a library that chose its own mode (safetensors: 0600)."""
    if hasattr(os, "chmod") and os.name == "posix":
        Path(path).chmod(0o666 & ~current_umask())
