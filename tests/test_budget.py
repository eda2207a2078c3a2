"""The size budget of issue 24, read from the source (nothing is imported): modules of at most
400 lines, functions of at most 80, and no function with more than six parameters unless it
builds an argument parser.

What counts: a module's lines are its newline characters; a function's lines run from its
``def`` to its last line (decorators not counted); its parameters are all it declares except
``self`` and ``cls``, keyword-only ones and ``*args``/``**kwargs`` included. A function named
``build_parser``, ``add_<name>_arguments`` or ``add_<name>_parser`` builds an argument parser:
it is exempt from the parameter count only, never from the length.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 6
PARSER_NAME = re.compile(r"build_parser|add_\w+_(?:arguments|parser)")

#: Folders with a case of their own, left out of their parent folder's case.
OWN_CASE = ("octviewer/core/report",)

AREAS = [
    pytest.param("octviewer", id="octviewer"),
    pytest.param("octviewer/core/report", id="octviewer-core-report"),
    pytest.param("benchmarks", id="benchmarks"),
    pytest.param("scripts", id="scripts"),
    pytest.param("training", id="training"),
]


def parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Every parameter ``fn`` declares but ``self``/``cls``; ``*args`` and ``**kwargs`` too."""
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names = [n for n in names if n not in ("self", "cls")]
    if a.vararg is not None:
        names.append(f"*{a.vararg.arg}")
    if a.kwarg is not None:
        names.append(f"**{a.kwarg.arg}")
    return names


def over_budget(source: str, where: str) -> list[str]:
    """What in ``source`` (the text of the module ``where``) is over the budget."""
    found = []
    n_lines = source.count("\n")
    if n_lines > MAX_MODULE_LINES:
        found.append(f"{where}: module of {n_lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            found.append(f"{where}:{node.lineno} {node.name}: {length} lines")
        n = len(parameters(node))
        if n > MAX_PARAMETERS and not PARSER_NAME.fullmatch(node.name):
            found.append(f"{where}:{node.lineno} {node.name}: {n} parameters")
    return found


def _files(area: str) -> list[Path]:
    base = ROOT / area
    own = [ROOT / o for o in OWN_CASE if o != area and (ROOT / o).is_relative_to(base)]
    return [p for p in sorted(base.rglob("*.py")) if not any(p.is_relative_to(o) for o in own)]


@pytest.mark.parametrize("area", AREAS)
def test_the_size_budget(area: str) -> None:
    """Over the budget? Split by responsibility, not by line count: group parameters that
    travel together into a typed record, give each step of a long function its own."""
    files = _files(area)
    assert files  # the walk found the code
    found = [
        v
        for p in files
        for v in over_budget(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))
    ]
    assert found == []


def test_the_budget_check_finds_what_is_over() -> None:
    def body(n: int) -> str:
        return "    x = 1\n" * n

    assert over_budget("def f(a, b, c, d, e, f):\n    pass\n", "m") == []
    assert over_budget("def f(a, b, c, d, e, *, f, g):\n    pass\n", "m") == ["m:1 f: 7 parameters"]
    assert over_budget("def f(a, b, c, d, e, *args, **kw):\n    pass\n", "m") == [
        "m:1 f: 7 parameters"
    ]
    method = "class C:\n    def m(self, a, b, c, d, e, f):\n        pass\n"
    assert over_budget(method, "m") == []
    for name in ("build_parser", "add_analyze_arguments", "add_archive_parser"):
        assert over_budget(f"def {name}(a, b, c, d, e, f, g):\n    pass\n", "m") == []
    assert over_budget("def add_things(a, b, c, d, e, f, g):\n    pass\n", "m") != []
    assert over_budget("def g():\n" + body(79), "m") == []
    assert over_budget("def g():\n" + body(80), "m") == ["m:1 g: 81 lines"]
    assert over_budget("def build_parser():\n" + body(80), "m") == ["m:1 build_parser: 81 lines"]
    assert over_budget("x = 1\n" * 400, "m") == []
    assert over_budget("x = 1\n" * 401, "m") == ["m: module of 401 lines (at most 400)"]


def test_a_folder_with_its_own_case_is_left_out_of_its_parent() -> None:
    report = ROOT / "octviewer" / "core" / "report"
    assert any(p.is_relative_to(report) for p in _files("octviewer/core/report"))
    assert not any(p.is_relative_to(report) for p in _files("octviewer"))
