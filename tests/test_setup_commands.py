"""The two set-up-and-go commands (README first screen), their environment stamp, the Qt
system-library check, the Qt start-failure paths, the frozen ``--help`` and file modes."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from octviewer.cli import SUBCOMMANDS
from octviewer.core import summary
from octviewer.ui import app, qt_syslibs

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _bash_blocks(text: str) -> list[list[str]]:
    """The command lines (comments stripped) of each ```bash block."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [
        [ln.split("#")[0].strip() for ln in b.splitlines() if ln.split("#")[0].strip()]
        for b in blocks
    ]


def _makefile_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"{target}:")
    recipe = []
    for ln in lines[start + 1 :]:
        if not ln.startswith("\t"):
            break
        recipe.append(ln.strip())
    return recipe


# --- README <-> entry points -------------------------------------------------------------------
def test_readme_first_screen_gives_the_two_commands_and_they_exist() -> None:
    first_screen = README.split("\n## ", 1)[0]
    blocks = _bash_blocks(first_screen)
    assert blocks, "no ```bash block before the first section of the README"
    assert blocks[0] == ["make run", "make test"]
    for target, script, purpose in (
        ("run", "scripts/run", "run"),
        ("test", "scripts/test", "test"),
    ):
        recipe = _makefile_recipe(target)
        assert recipe and recipe[0].split()[0] == script, recipe
        path = ROOT / script
        assert path.is_file() and os.access(path, os.X_OK), f"{script} is not executable"
        assert f"scripts/setup_env.sh {purpose}" in path.read_text(encoding="utf-8")
        assert f"`{script}" in first_screen, f"the first screen does not name {script} (no make)"
    assert re.search(r"measured", first_screen, re.I), "the first screen gives no measured times"


def test_readme_test_section_and_ci_run_the_same_command() -> None:
    test_section = README.split("\n## Test\n", 1)[1].split("\n## ", 1)[0]
    assert "scripts/test" in _bash_blocks(test_section)[0]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "scripts/test" in [ln.strip() for ln in ci], ".ci/run does not run scripts/test"
    assert "scripts/build_app.sh" in [ln.strip() for ln in ci]
    # the long-form Install section uses the same torch pair and extras as setup_env.sh
    setup = (ROOT / "scripts" / "setup_env.sh").read_text(encoding="utf-8")
    pair = re.search(r'DEFAULT_TORCH="([^"]+)"', setup).group(1)
    install = README.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    assert all(p in install for p in pair.split()), f"Install does not give {pair}"
    assert (
        'pip install -e ".[jpeg,vendor,archive]"' in install
        and 'pip install -e ".[all]"' in install
    )


# --- the stamp: a second run does no install work --------------------------------------------
FAKE_PIP = """import sys, pathlib
with open(pathlib.Path(sys.prefix) / "pip-calls.txt", "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
"""
FAKE_PYTEST = "import os, sys; sys.exit(int(os.environ['FAKE_PYTEST_RC']))\n"


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    """A venv without pip whose ``python -m pip`` only records its arguments and whose
    ``python -m pytest`` exits with $FAKE_PYTEST_RC."""
    d = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(d)
    out = subprocess.run(
        [d / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    for name, main in (("pip", FAKE_PIP), ("pytest", FAKE_PYTEST)):
        pkg = Path(out.stdout.strip()) / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "__main__.py").write_text(main)
    return d


def _setup(
    venv_dir: Path, purpose: str, script: str = "setup_env.sh", **env: str
) -> tuple[subprocess.CompletedProcess, list[str]]:
    e = {k: v for k, v in os.environ.items() if k not in ("OCTVIEWER_TORCH", "TORCH_INDEX_URL")}
    e.update(
        OCTVIEWER_VENV=str(venv_dir), OCTVIEWER_SKIP_SYSLIBS="1", OCTVIEWER_SKIP_ORTHANC="1", **env
    )
    r = subprocess.run(
        ["bash", ROOT / "scripts" / script, *([purpose] if purpose else [])],
        capture_output=True,
        text=True,
        env=e,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    calls = venv_dir / "pip-calls.txt"
    return r, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.skipif(sys.platform == "win32", reason="bash scripts")
def test_setup_installs_once_and_reinstalls_only_when_the_key_changes(fake_venv: Path) -> None:
    r, calls = _setup(fake_venv, "run")
    assert r.returncode == 0, r.stderr
    assert len(calls) == 2, calls
    assert calls[0].split()[-2:] == ["torch==2.14.1", "torchvision==0.29.1"]
    assert calls[1].endswith("-e .[archive,jpeg,vendor]"), calls[1]

    r, calls = _setup(fake_venv, "run")  # nothing changed: no pip at all
    assert r.returncode == 0 and "environment up to date" in r.stdout
    assert len(calls) == 2

    r, calls = _setup(fake_venv, "test")  # more extras: installs the union
    assert r.returncode == 0, r.stderr
    assert calls[-1].endswith("-e .[archive,jpeg,package,test,train,vendor]"), calls[-1]
    r, calls = _setup(fake_venv, "run")  # run needs a subset of what test installed
    assert "environment up to date" in r.stdout and len(calls) == 4

    override = "torch==2.9.0 torchvision==0.24.0"
    r, calls = _setup(fake_venv, "run", OCTVIEWER_TORCH=override, TORCH_INDEX_URL="file:///x")
    assert r.returncode == 0, r.stderr
    assert calls[4].split() == ["install", "-q", "--index-url", "file:///x", *override.split()]


@pytest.mark.skipif(sys.platform == "win32", reason="bash scripts")
def test_scripts_test_fails_when_pytest_collects_nothing(fake_venv: Path) -> None:
    for pytest_rc, want in ((0, 0), (1, 1), (5, 1)):
        r, _ = _setup(fake_venv, "", script="test", FAKE_PYTEST_RC=str(pytest_rc))
        assert r.returncode == want, (pytest_rc, r.stdout, r.stderr)
    assert "collected no tests" in r.stderr


# --- Qt's system libraries -----------------------------------------------------------------------
def _fake_ldd(tmp_path: Path, missing: list[str]) -> str:
    ldd = tmp_path / "ldd"
    lines = ["\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x0)"]
    lines += [f"\t{m} => not found" for m in missing]
    ldd.write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
    ldd.chmod(0o755)
    return str(ldd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd / Linux only")
def test_missing_xcb_libraries_give_the_apt_line(tmp_path: Path) -> None:
    plugin = tmp_path / "platforms" / "libqxcb.so"
    plugin.parent.mkdir()
    plugin.write_bytes(b"\x7fELF")
    ldd = _fake_ldd(tmp_path, ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-icccm.so.4"])
    c = qt_syslibs.check(plugin, ldd=ldd)
    assert not c.ok
    assert c.missing == ("libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    assert c.install_line() == (
        "sudo apt-get install -y -q --no-install-recommends libxcb-icccm4 libxcb-keysyms1"
    )
    assert c.install_line() in c.message()
    weird = qt_syslibs.check(plugin, ldd=_fake_ldd(tmp_path, ["libnowhere.so.9"]))
    assert weird.unknown == ("libnowhere.so.9",) and "apt-file search" in weird.message()
    assert qt_syslibs.check(plugin, ldd=_fake_ldd(tmp_path, [])).ok


@pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or shutil.which("cc") is None
    or shutil.which("ldd") is None,
    reason="needs Linux with a C compiler and ldd",
)
@pytest.mark.parametrize("use_ldd", [True, False], ids=["ldd", "dlopen"])
def test_a_real_missing_library_is_found(tmp_path: Path, use_ldd: bool, capsys) -> None:
    """A real ELF plugin that links a library which is then removed, like a missing libxcb."""
    (tmp_path / "dep.c").write_text("int dep_fn(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text(
        "int dep_fn(void);\nint plugin_fn(void) { return dep_fn(); }\n"
    )
    soname = "libxcb-octviewer-test-gap.so.1"  # a name no system has (a real one may be installed)
    cc = shutil.which("cc")
    subprocess.run([cc, "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", tmp_path / soname,
                    tmp_path / "dep.c"], check=True)  # fmt: skip
    plugin = tmp_path / "platforms" / "libqxcb.so"
    plugin.parent.mkdir()
    subprocess.run([cc, "-shared", "-fPIC", "-o", plugin, tmp_path / "plugin.c",
                    tmp_path / soname], check=True)  # fmt: skip
    (tmp_path / soname).unlink()
    c = qt_syslibs.check(plugin, ldd=None if use_ldd else "")
    assert c.missing == (soname,) and c.unknown == (soname,) and not c.ok
    if use_ldd:  # the command-line form, without --install: exit 1 and the line to run
        assert qt_syslibs.main(["--plugin", str(plugin)]) == 1


# --- Qt start failures -------------------------------------------------------------------------------
def test_no_display_is_named_before_qt_aborts(monkeypatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert "no display" in app.qt_start_problem()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.qt_start_problem() is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")
    gap = qt_syslibs.Check(Path("libqxcb.so"), ("libxcb-icccm.so.4",), ("libxcb-icccm4",))
    monkeypatch.setattr(qt_syslibs, "check", lambda: gap)
    assert (
        "sudo apt-get install -y -q --no-install-recommends libxcb-icccm4" in app.qt_start_problem()
    )


def _app(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    e = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    e.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "octviewer"], capture_output=True, text=True, env=e, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 display rules are Linux")
def test_app_without_display_exits_3_with_the_cause_on_stderr_and_in_the_log(
    tmp_path: Path,
) -> None:
    r = _app(tmp_path)
    assert r.returncode == app.EXIT_QT_FAILED, r.stderr
    assert "there is no display (DISPLAY is not set)" in r.stderr
    logs = list(tmp_path.rglob("octviewer.log"))
    assert logs and "there is no display" in logs[0].read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="elsewhere a native dialog")
def test_start_failure_dialog_uses_the_first_dialog_tool_there_is(monkeypatch, capsys) -> None:
    tried = []

    def popen(cmd, **kw):
        tried.append(cmd[0])
        if cmd[0] != "xmessage":
            raise FileNotFoundError(cmd[0])

    monkeypatch.setattr(app.subprocess, "Popen", popen)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app.report_start_failure("no window for you")
    assert tried == []  # no display: log and stderr only
    monkeypatch.setenv("DISPLAY", ":0")
    app.report_start_failure("no window for you")
    assert tried == ["zenity", "kdialog", "xmessage"]
    assert "no window for you" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="elsewhere a native dialog")
def test_fatal_qt_error_exits_3_not_a_core_dump(tmp_path: Path) -> None:
    r = _app(tmp_path, QT_QPA_PLATFORM="no-such-platform")
    assert r.returncode == app.EXIT_QT_FAILED, (r.returncode, r.stderr)
    assert "Qt could not start" in r.stderr and "no-such-platform" in r.stderr


def test_samples_option_opens_the_bundled_samples() -> None:
    files = app.sample_files()
    assert files and all(f.suffix.lower() not in (".md", ".json", ".txt") for f in files)
    assert app.build_parser().parse_args(["--samples"]).samples


# --- the frozen app's --help -------------------------------------------------------------------------
def test_frozen_entry_help_lists_every_subcommand() -> None:
    spec = importlib.util.spec_from_file_location(
        "octviewer_main", ROOT / "packaging" / "octviewer_main.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.help_text()
    for cmd in (*SUBCOMMANDS, "--self-test"):
        assert re.search(rf"^  {re.escape(cmd)} ", text, re.M), f"--help does not list {cmd}"
    r = subprocess.run(
        [sys.executable, ROOT / "packaging" / "octviewer_main.py", "--help"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout == text


# --- file modes of reports and summaries ------------------------------------------------------------------
@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_cli_reports_and_summaries_get_the_umask_mode(
    tmp_path: Path, data_dir: Path, umask, mask: int, mode: int
) -> None:
    from octviewer import cli

    try:
        from helpers_models import make_tiny_bundle
    except ImportError:
        from tests.helpers_models import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "tiny.safetensors")
    umask(mask)
    out = tmp_path / "out"
    scan = data_dir / "report" / "CNV-53018-1.jpeg"
    rc = cli.main(["analyze", str(scan), "--model", str(bundle), "--out", str(out),
                   "--device", "cpu", "--no-progress"])  # fmt: skip
    assert rc == 0
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.suffix for p in written} >= {".png", ".csv", ".json"}, written
    for p in written:
        assert p.stat().st_mode & 0o777 == mode, f"{p.name}: {oct(p.stat().st_mode & 0o777)}"
    summary.write_csv([], tmp_path / "direct.csv", ("A", "B"))
    assert (tmp_path / "direct.csv").stat().st_mode & 0o777 == mode


def test_one_dispatcher_routes_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher, ``python -m octviewer`` and the frozen app share octviewer.__main__.main."""
    import octviewer.selftest
    from octviewer import __main__ as entry

    seen: list[list[str]] = []
    monkeypatch.setattr(octviewer.selftest, "main", lambda a: seen.append(a) or 0)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert entry.main(["--self-test", "--json", "out.json"]) == 0
    assert seen == [["--json", "out.json"]]
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # set once, before torch is imported
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["gui-scripts"]
    assert scripts["octviewer"] == "octviewer.__main__:main"
    frozen = (ROOT / "packaging" / "octviewer_main.py").read_text()
    assert "from octviewer.__main__ import" in frozen
