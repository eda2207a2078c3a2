"""The core must stay usable without Qt, and `import octviewer` must stay cheap."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_import_octviewer_is_light() -> None:
    r = _run(
        """
        import sys, octviewer
        heavy = [m for m in ("torch", "timm", "PySide6", "pytorch_grad_cam", "cv2") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    assert r.returncode == 0, r.stderr


def test_core_imports_with_pyside6_blocked() -> None:
    r = _run(
        """
        import importlib, pkgutil, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("PySide6", "shiboken6", "PyQt5", "PyQt6"):
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
        import octviewer.core as core
        for mod in pkgutil.walk_packages(core.__path__, "octviewer.core."):
            importlib.import_module(mod.name)
        import octviewer.cli
        """
    )
    assert r.returncode == 0, r.stderr
