"""The core must stay usable without Qt, and `import octviewer` must stay cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_import_octviewer_is_light() -> None:
    r = _run(
        """
        import sys, octviewer
        import octviewer.viewer.session, octviewer.viewer.view_state, octviewer.viewer.presenters
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
        # the viewer's Qt-free package: session, view state, presenters, the last session
        import octviewer.viewer as viewer
        for mod in pkgutil.walk_packages(viewer.__path__, "octviewer.viewer."):
            importlib.import_module(mod.name)
        import octviewer.core.report.naming
        """
    )
    assert r.returncode == 0, r.stderr


def test_every_viewer_module_imports_without_qt() -> None:
    """Importing every module of ``octviewer/viewer/`` loads no PySide6 (nor torch)."""
    r = _run(
        """
        import importlib, pkgutil, sys
        import octviewer.viewer as viewer
        names = [m.name for m in pkgutil.walk_packages(viewer.__path__, "octviewer.viewer.")]
        for name in names:
            importlib.import_module(name)
        assert len(names) >= 5, names
        loaded = [m for m in ("PySide6", "shiboken6", "torch") if m in sys.modules]
        assert not loaded, loaded
        """
    )
    assert r.returncode == 0, r.stderr


# --- the house's contracts, read from the source (no imports run) ------------------------------
ROOT = Path(__file__).resolve().parent.parent
FACES = ("PySide6", "shiboken6", "octviewer.ui", "octviewer.cli", "octviewer.selftest",
         "octviewer.__main__", "training")  # fmt: skip


def _imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(module, imported names) of every import in ``path``, relative ones resolved."""
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.append((base, tuple(a.name for a in node.names)))
    return out


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(files: list[Path], banned: tuple[str, ...]) -> list[str]:
    return [
        f"{f.relative_to(ROOT)} imports {m}"
        for f in files
        for m, _ in _imports(f)
        if _under(m, banned)
    ]


def test_core_imports_no_face_and_no_trainer() -> None:
    files = sorted((ROOT / "octviewer" / "core").rglob("*.py"))
    assert files and not _violations(files, FACES)


def test_the_viewer_package_obeys_the_core_rule() -> None:
    """``octviewer/viewer/`` (session, view state, presenters) imports no face and no Qt."""
    files = sorted((ROOT / "octviewer" / "viewer").rglob("*.py"))
    assert files and not _violations(files, FACES)


def test_faces_keep_to_their_side() -> None:
    cli_and_training = [
        *(ROOT / "octviewer" / "cli").rglob("*.py"),
        *(ROOT / "training").rglob("*.py"),
    ]
    assert not _violations(cli_and_training, ("octviewer.ui", "PySide6"))
    ui = sorted((ROOT / "octviewer" / "ui").rglob("*.py"))
    assert not _violations(ui, ("training", "octviewer.selftest", "octviewer.__main__"))


def test_training_uses_only_public_core_names() -> None:
    bad = []
    for f in sorted((ROOT / "training").rglob("*.py")):
        for m, names in _imports(f):
            if not _under(m, ("octviewer",)):
                continue
            if not _under(m, ("octviewer.core", "octviewer.errors")) and m != "octviewer":
                bad.append(f"{f.name} imports {m}")
            bad += [f"{f.name} imports {m}.{n}" for n in names if n.startswith("_")]
    assert not bad


def test_no_architectures_ensemble_cycle() -> None:
    mods = [m for m, _ in _imports(ROOT / "octviewer" / "core" / "model" / "ensemble.py")]
    assert not [m for m in mods if m.endswith("architectures")]
