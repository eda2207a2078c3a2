"""TrueType fonts for reports, found without importing any plotting library.

Order of preference for the regular and bold faces:

1. ``resources/fonts/DejaVuSans.ttf`` / ``DejaVuSans-Bold.ttf`` when a build bundles them;
2. the DejaVu Sans files that matplotlib ships (``grad-cam`` depends on matplotlib, so they
   are normally installed; only the files are read, matplotlib is never imported);
3. the system's DejaVu Sans (Linux);
4. Pillow's bundled scalable font (``ImageFont.load_default(size=...)``, Aileron). It has no
   glyphs for a few characters octviewer writes (em dash, micro sign...), so :func:`fit_text`
   replaces them with ASCII look-alikes for that font.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import ImageFont

from octviewer.resources import resources_dir

log = logging.getLogger(__name__)

_REGULAR = "DejaVuSans.ttf"
_BOLD = "DejaVuSans-Bold.ttf"
_SYSTEM_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))

# Characters missing from Pillow's default font, with readable substitutes.
_ASCII_FALLBACK = str.maketrans(
    {"—": "-", "–": "-", "µ": "u", "≥": ">=", "≤": "<=", "×": "x", "·": "-", "…": "...", "’": "'"}
)


@dataclass(frozen=True)
class FontSet:
    """Where the regular and bold faces come from (None = Pillow's default font)."""

    regular: Path | None
    bold: Path | None

    @property
    def is_fallback(self) -> bool:
        return self.regular is None


def _matplotlib_font_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "mpl-data" / "fonts" / "ttf"
        if d.is_dir():
            return d
    return None


@cache
def font_set() -> FontSet:
    dirs: list[Path] = [resources_dir() / "fonts"]
    mpl = _matplotlib_font_dir()
    if mpl is not None:
        dirs.append(mpl)
    dirs.extend(_SYSTEM_DIRS)
    for d in dirs:
        regular = d / _REGULAR
        if regular.is_file():
            bold = d / _BOLD
            return FontSet(regular, bold if bold.is_file() else regular)
    log.info("DejaVu Sans not found; reports use Pillow's default font")
    return FontSet(None, None)


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A scalable font of ``size`` pixels (bold face when available)."""
    fs = font_set()
    path = fs.bold if bold else fs.regular
    if path is not None:
        try:
            return ImageFont.truetype(str(path), size)
        except OSError:
            log.warning("Could not read font %s; using Pillow's default font", path.name)
    return ImageFont.load_default(size=size)


def fit_text(text: str) -> str:
    """``text`` made drawable with the current fonts (ASCII look-alikes for the fallback font)."""
    return text.translate(_ASCII_FALLBACK) if font_set().is_fallback else text
