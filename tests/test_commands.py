"""Commands as data: every action is one record; the QActions, menus and toolbar are derived
from the records, and no handler is named by a string."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ui_helpers import shown_window

pytestmark = pytest.mark.gui

from PySide6.QtGui import QAction  # noqa: E402
from PySide6.QtWidgets import QMenu, QToolBar  # noqa: E402

from octviewer.ui.command_list import COMMANDS, MENU_TITLES, SUBMENUS  # noqa: E402
from octviewer.ui.commands import TOOLBAR, Command  # noqa: E402

UI = Path(__file__).resolve().parent.parent / "octviewer" / "ui"


def _menu_actions(menu: QMenu, path: str, out: dict[str, list[QAction]]) -> None:
    for a in menu.actions():
        if a.menu() is not None:
            _menu_actions(a.menu(), f"{path}/{_submenu_id(a.menu())}", out)
        elif not a.isSeparator():
            out.setdefault(path, []).append(a)


def _submenu_id(menu: QMenu) -> str:
    return next(s.id for s in SUBMENUS if s.title == menu.title())


def test_records_are_data_with_callables() -> None:
    ids = [c.id for c in COMMANDS]
    assert len(ids) == len(set(ids))
    for c in COMMANDS:
        assert isinstance(c, Command) and callable(c.run), c.id
        assert c.checked is None or callable(c.checked)
        assert c.enabled is None or callable(c.enabled)
    menus = {m for m, _ in MENU_TITLES} | {f"{s.place.menu}/{s.id}" for s in SUBMENUS}
    for c in COMMANDS:
        assert all(p.menu in menus | {TOOLBAR} for p in c.places), c.id


def test_no_handler_is_named_by_a_string() -> None:
    """No getattr on the window by a name: handlers are callables in the records."""
    for name in ("commands.py", "command_list.py", "main_window.py", "window_events.py"):
        tree = ast.parse((UI / name).read_text(encoding="utf-8"))
        calls = [
            n.func.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
        assert "getattr" not in calls, name
    assert not (UI / "actions.py").exists() and not (UI / "menus.py").exists()


def test_every_record_ends_up_in_a_menu(qtbot, tmp_path) -> None:
    w = shown_window(qtbot, tmp_path)
    placed: dict[str, list[QAction]] = {}
    for a in w.menuBar().actions():
        menu_id = next(i for i, title in MENU_TITLES if title == a.text())
        _menu_actions(a.menu(), menu_id, placed)
    (toolbar,) = w.findChildren(QToolBar)
    placed[TOOLBAR] = [a for a in toolbar.actions() if not a.isSeparator()]
    for c in COMMANDS:
        action = w.act[c.id]
        for p in c.places:
            assert action in placed[p.menu], (c.id, p.menu)
        if not c.places:  # a keyboard command: its shortcut works on the window
            assert action in w.actions() and not action.shortcut().isEmpty(), c.id
    # and nothing in the menus that is not a record (the dynamic submenus aside)
    records = {id(w.act[c.id]) for c in COMMANDS}
    for path, actions in placed.items():
        if path.endswith(("/Samples", "/Recent")):
            continue
        assert all(id(a) in records for a in actions), path
    w.close()


def test_menus_keep_their_layout(qtbot, tmp_path) -> None:
    w = shown_window(qtbot, tmp_path)
    file_menu = w.menuBar().actions()[0].menu()
    texts = [("---" if a.isSeparator() else a.text()) for a in file_menu.actions()]
    assert texts == [
        "&Open files…", "Open &folder…", "Open &sample", "Open &recent", "Restore &last session",
        "---", "&Export report…", "Export &all reports…", "Include patient identifiers in reports",
        "Report &page size", "---", "Load &model…", "&Close scan", "---", "Open from &archive…",
        "Send results to archi&ve", "Archive &nodes…", "---", "&Quit",
    ]  # fmt: skip
    assert [a.text() for a in w.menuBar().actions()] == [t for _, t in MENU_TITLES]
    assert not w.act["restore"].isEnabled()  # enabled-when: there is no last session
    w.act["overlay"].trigger()  # a checkable record writes the view state
    assert not w.view.overlay_visible and not w.result_panel.overlay_box.isChecked()
    w.contour_actions[(0.5,)].trigger()  # a choice
    assert w.view.contours == (0.5,) and w.settings.overlay_contours == (0.5,)
    w.close()


def test_report_page_size_is_a_choice_bound_to_its_setting(qtbot, tmp_path) -> None:
    w = shown_window(qtbot, tmp_path)
    page_menu = next(
        a.menu()
        for a in w.menuBar().actions()[0].menu().actions()
        if a.text() == "Report &page size"
    )
    assert [a.text() for a in page_menu.actions()] == [
        "&A4 (210 × 297 mm)",
        "US &Letter (8.5 × 11 in)",
    ]
    assert w.settings.report_page == "A4" and w.act["page_a4"].isChecked()
    w.act["page_letter"].trigger()
    assert w.settings.report_page == "Letter"
    assert w.act["page_letter"].isChecked() and not w.act["page_a4"].isChecked()
    w.act["page_a4"].trigger()
    assert w.settings.report_page == "A4" and not w.act["page_letter"].isChecked()
    w.close()
