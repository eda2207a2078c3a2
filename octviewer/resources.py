"""Where the bundled resources (default model, sample scans, icons) live.

Looked up, in order: a PyInstaller bundle (``sys._MEIPASS/resources``), the source tree
(``<repo>/resources``, for editable installs and development), and ``<prefix>/share/octviewer``
(a regular ``pip install``).
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

DEFAULT_MODEL_NAME = "octviewer-demo-kermany.safetensors"


@cache
def resources_dir() -> Path:
    candidates: list[Path] = []
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        candidates.append(Path(frozen) / "resources")
    candidates.append(Path(__file__).resolve().parent.parent / "resources")
    candidates.append(Path(sys.prefix) / "share" / "octviewer" / "resources")
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[-1]


def default_model_path() -> Path:
    return resources_dir() / "models" / DEFAULT_MODEL_NAME


def samples_dir() -> Path:
    return resources_dir() / "samples"


def icon_path(name: str = "octviewer.png") -> Path:
    return resources_dir() / "icons" / name
