"""The app's cache folder, shared by the result cache and the int8 backbone cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: The environment variable that moves the app's cache folder (tests use a temporary one).
CACHE_ENV = "OCTVIEWER_CACHE_DIR"


def cache_home() -> Path:
    """The app's cache folder: ``$OCTVIEWER_CACHE_DIR``, else the platform's cache folder +
    ``octviewer``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "octviewer"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "octviewer"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "octviewer"
