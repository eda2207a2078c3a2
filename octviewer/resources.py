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


#: Files in a samples folder that document it rather than being scans.
NOT_SCANS = frozenset({".md", ".txt", ".tsv", ".json", ".csv", ".rst", ".license", ".html"})


def is_sample_scan(path: Path) -> bool:
    """The one rule for which entries of a samples folder are scans: hidden entries and
    documentation (README, LICENSE, notes, manifests) are not; files and folders otherwise are."""
    if path.name.startswith("."):
        return False
    if path.is_file():
        return path.suffix.lower() not in NOT_SCANS and path.stem.upper() not in {
            "LICENSE",
            "README",
        }
    return True


def sample_scans(folder: Path | None = None) -> list[Path]:
    """The sample scans of ``folder`` (default: the bundled ``resources/samples``), sorted."""
    d = samples_dir() if folder is None else folder
    return sorted(p for p in (d.iterdir() if d.is_dir() else []) if is_sample_scan(p))


def icon_path(name: str = "octviewer.png") -> Path:
    return resources_dir() / "icons" / name
