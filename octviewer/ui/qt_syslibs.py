"""The system libraries Qt's X11 (xcb) platform plugin needs on Linux, and how to get them.

PySide6's wheels carry Qt but not the X11/xcb libraries of the desktop. Where one is missing no
window opens, and Qt's own hint names the wrong package (PITFALLS.md). This module finds the
gaps (``ldd`` on the plugin, or ``dlopen`` where there is no ``ldd``), maps them to Debian/Ubuntu
packages and installs them (root + apt-get) or gives the exact ``sudo apt-get install`` line.

Used by ``scripts/setup_env.sh`` and ``scripts/build_app.sh``
(``python -m octviewer.ui.qt_syslibs --install``) and, at start, by :mod:`octviewer.ui.app`.
Standard library only: importing it does not load Qt.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# soname -> Debian/Ubuntu package (the libraries libqxcb.so links, directly or through Qt).
PACKAGES: dict[str, str] = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
}
APT_OPTS = "-y -q --no-install-recommends"
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_DLOPEN_MISSING = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


@dataclass(frozen=True)
class Check:
    """The outcome for one platform plugin: what is missing, and the packages that provide it."""

    plugin: Path | None
    missing: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    unknown: tuple[str, ...] = field(default=())  # missing sonames with no known package

    @property
    def ok(self) -> bool:
        return self.plugin is not None and not self.missing

    def install_line(self, sudo: bool = True) -> str:
        cmd = f"apt-get install {APT_OPTS} {' '.join(self.packages)}"
        return f"sudo {cmd}" if sudo else cmd

    def message(self) -> str:
        if self.plugin is None:
            return "Qt's xcb platform plugin (libqxcb.so) was not found: is PySide6 installed?"
        if not self.missing:
            return f"Qt's xcb platform plugin has all its system libraries ({self.plugin})."
        text = (
            f"Qt cannot open a window: its xcb platform plugin needs system libraries that are "
            f"missing here: {', '.join(self.missing)}."
        )
        if self.packages:
            text += f" Install them with:\n    {self.install_line()}"
        if self.unknown:
            text += f"\nNo known package for {', '.join(self.unknown)}: `apt-file search NAME`."
        return text


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so`` (in a PyInstaller bundle: the bundled one), or None."""
    roots: list[Path] = []
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        roots.append(Path(frozen) / "PySide6" / "Qt" / "plugins")
    try:
        import importlib.util

        spec = importlib.util.find_spec("PySide6")
        for loc in (spec.submodule_search_locations or []) if spec else []:
            roots.append(Path(loc) / "Qt" / "plugins")
    except (ImportError, ValueError):
        pass
    for r in roots:
        p = r / "platforms" / "libqxcb.so"
        if p.is_file():
            return p
    return None


def missing_libraries(plugin: Path, ldd: str | None = None) -> tuple[str, ...]:
    """Sonames the plugin (and what it links) cannot find: ``ldd``, else a trial ``dlopen``.

    ``ldd``: the ldd program (default: the one on PATH; ``""``: do not use ldd, dlopen only).
    """
    if ldd is None:
        ldd = shutil.which("ldd")
    qt_lib = plugin.parent.parent.parent / "lib"  # PySide6/Qt/plugins/platforms -> PySide6/Qt/lib
    if ldd:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            x for x in (str(qt_lib), env.get("LD_LIBRARY_PATH", "")) if x
        )
        try:
            out = subprocess.run(
                [ldd, str(plugin)], capture_output=True, text=True, env=env, timeout=60
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("ldd could not run on %s: %s", plugin, exc)
        else:
            return tuple(dict.fromkeys(_NOT_FOUND.findall(out.stdout + out.stderr)))
    try:  # no ldd: dlopen names the first missing library
        ctypes.CDLL(str(plugin), mode=getattr(os, "RTLD_LAZY", 1) | ctypes.RTLD_LOCAL)
    except OSError as exc:
        m = _DLOPEN_MISSING.search(str(exc))
        return (m.group(1),) if m else (str(exc),)
    return ()


def check(plugin: Path | None = None, ldd: str | None = None) -> Check:
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return Check(None)
    missing = missing_libraries(plugin, ldd)
    pkgs = tuple(dict.fromkeys(PACKAGES[m] for m in missing if m in PACKAGES))
    unknown = tuple(m for m in missing if m not in PACKAGES)
    return Check(plugin, missing, pkgs, unknown)


def can_install() -> bool:
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("apt-get") is not None
    )


def install(packages: Sequence[str]) -> bool:
    """``apt-get install`` as root (after one ``apt-get update`` if the first try fails)."""
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=180", "install", *APT_OPTS.split(), *packages]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log.info("installing the Qt system libraries: %s", " ".join(packages))
    for attempt in range(2):
        if attempt:
            subprocess.run(["apt-get", "-q", "update"], env=env, stdin=subprocess.DEVNULL)
        if subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL).returncode == 0:
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m octviewer.ui.qt_syslibs [--install] [--plugin SO]``: 0 complete, 1 missing."""
    p = argparse.ArgumentParser(prog="python -m octviewer.ui.qt_syslibs", description=__doc__)
    p.add_argument("--install", action="store_true", help="apt-get install what is missing (root)")
    p.add_argument("--plugin", type=Path, help="the plugin to check (default: PySide6's xcb)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not sys.platform.startswith("linux"):
        log.info("Qt system libraries: nothing to check on %s (Linux only)", sys.platform)
        return 0
    result = check(args.plugin)
    if result.ok:
        log.info("Qt system libraries: complete (%s)", result.plugin)
        return 0
    installable = args.install and result.packages and not result.unknown and can_install()
    if installable and install(result.packages) and check(args.plugin).ok:
        log.info("Qt system libraries: installed %s", " ".join(result.packages))
        return 0
    log.error("%s", result.message())
    if args.install and not can_install() and result.packages:
        log.error("(not installed automatically: that needs root and apt-get)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
