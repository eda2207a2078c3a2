"""Commands as data: each action of the window is one :class:`Command` record, and the QActions,
the menu bar and the toolbar are all derived from the records (napari's app-model shape).

A record says what the user sees (text, shortcut, tip, icon), where it goes (:class:`Place`:
a menu path, a group and an order; the toolbar is the menu ``"toolbar"``), when it is enabled
(``enabled``, evaluated on :func:`refresh`) and what it does (``run``: a callable taking the
window; a checkable command's also takes the new state). Dynamic submenus (samples, recent
files) are :class:`Submenu` records with a ``fill`` callable. The records themselves are in
:mod:`octviewer.ui.command_list`; nothing names a handler as a string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QStyle, QToolBar, QWidget

if TYPE_CHECKING:
    from octviewer.ui.window_face import Window

TOOLBAR = "toolbar"


@dataclass(frozen=True)
class Place:
    """Where a command or submenu appears: ``menu`` is a path of menu ids ("File",
    "View/Contours"); groups are split by separators; ``order`` sorts within a group."""

    menu: str
    group: int = 0
    order: int = 0


@dataclass(frozen=True)
class Command:
    """One action of the window (see the module docstring)."""

    id: str
    text: str
    run: Callable[..., Any]
    places: tuple[Place, ...] = ()
    shortcut: str | QKeySequence.StandardKey | None = None
    tip: str = ""
    icon: QStyle.StandardPixmap | None = None
    checked: Callable[[Window], bool] | None = None  # set: checkable, its first state
    choice: str | None = None  # set: one of an exclusive group of checkable commands
    enabled: Callable[[Window], bool] | None = None  # None: always
    on_window: bool = True  # added to the window: its shortcut works without the menu


@dataclass(frozen=True)
class Submenu:
    """A menu inside a menu (``id`` is its path's last part); ``fill(window, menu)`` fills it
    each time it is about to show."""

    id: str
    title: str
    place: Place
    fill: Callable[[Window, QMenu], None] | None = None


def build_actions(window: Window, commands: tuple[Command, ...]) -> dict[str, QAction]:
    """One QAction per command, in order (the keyboard-shortcut list follows this order)."""
    actions: dict[str, QAction] = {}
    groups: dict[str, QActionGroup] = {}
    for cmd in commands:
        a = QAction(cmd.text, window)
        if cmd.shortcut:
            a.setShortcut(QKeySequence(cmd.shortcut))
        if cmd.icon is not None:
            a.setIcon(window.style().standardIcon(cmd.icon))
        _set_tips(a, cmd)
        _connect(window, a, cmd)
        if cmd.choice is not None:
            groups.setdefault(cmd.choice, QActionGroup(window)).addAction(a)
        if cmd.on_window:
            window.addAction(a)
        actions[cmd.id] = a
    return actions


def _set_tips(a: QAction, cmd: Command) -> None:
    if not cmd.tip:
        return
    a.setStatusTip(cmd.tip)
    if cmd.checked is None:  # a checkable action gets a status tip only
        key = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        a.setToolTip(f"{cmd.tip} ({key})" if cmd.shortcut else cmd.tip)


def _connect(window: Window, a: QAction, cmd: Command) -> None:
    run = cmd.run
    if cmd.checked is None:
        a.triggered.connect(lambda _=False: run(window))
        return
    a.setCheckable(True)
    a.setChecked(cmd.checked(window))
    if cmd.choice is not None:  # an exclusive choice: chosen, never unchosen
        a.triggered.connect(lambda _=False: run(window))
    else:
        a.toggled.connect(lambda on: run(window, on))


def refresh(window: Window, commands: tuple[Command, ...], actions: dict[str, QAction]) -> None:
    """Apply each command's enabled-when to its action."""
    for cmd in commands:
        if cmd.enabled is not None:
            actions[cmd.id].setEnabled(cmd.enabled(window))


def _items(menu: str, commands: tuple[Command, ...], submenus: tuple[Submenu, ...]) -> list:
    """The commands and submenus placed in ``menu``, sorted by (group, order)."""
    found: list[tuple[int, int, int, Any]] = []
    for i, cmd in enumerate(commands):
        found += [(p.group, p.order, i, cmd) for p in cmd.places if p.menu == menu]
    for i, sub in enumerate(submenus):
        if sub.place.menu == menu:
            found.append((sub.place.group, sub.place.order, len(commands) + i, sub))
    return [(group, item) for group, _order, _i, item in sorted(found, key=lambda t: t[:3])]


def _fill(
    window: Window,
    target: QMenu | QToolBar,
    path: str,
    menus: tuple[tuple[Command, ...], tuple[Submenu, ...], dict[str, QAction]],
) -> dict[str, QMenu]:
    """Add the items placed at ``path`` to ``target``; return the submenus made, by path."""
    commands, submenus, actions = menus
    made: dict[str, QMenu] = {}
    last_group = None
    for group, item in _items(path, commands, submenus):
        if last_group is not None and group != last_group:
            target.addSeparator()
        last_group = group
        if isinstance(item, Command):
            target.addAction(actions[item.id])
            continue
        sub_path = f"{path}/{item.id}"
        sub = target.addMenu(item.title)
        made[sub_path] = sub
        if item.fill is not None:
            fill = item.fill
            sub.aboutToShow.connect(lambda s=sub, f=fill: f(window, s))
        made.update(_fill(window, sub, sub_path, menus))
    return made


def build_menus(
    window: Window,
    titles: tuple[tuple[str, str], ...],
    menus: tuple[tuple[Command, ...], tuple[Submenu, ...], dict[str, QAction]],
) -> dict[str, QMenu]:
    """Fill the menu bar: one menu per (id, title) in ``titles``, in order, with what the
    records place there. Returns every menu made, by path ("File", "File/Recent")."""
    made: dict[str, QMenu] = {}
    bar = window.menuBar()
    for menu_id, title in titles:
        menu = bar.addMenu(title)
        made[menu_id] = menu
        made.update(_fill(window, menu, menu_id, menus))
    return made


def build_toolbar(
    window: Window, menus: tuple[tuple[Command, ...], tuple[Submenu, ...], dict[str, QAction]]
) -> QToolBar:
    """The main toolbar: the commands placed in :data:`TOOLBAR`."""
    tb = QToolBar("Main")
    tb.setObjectName("maintoolbar")
    tb.setMovable(False)
    tb.setIconSize(QSize(18, 18))
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    _fill(window, tb, TOOLBAR, menus)
    window.addToolBar(tb)
    return tb


def shortcut_rows(window: QWidget) -> list[tuple[str, str]]:
    """(key, text) of every window action with a shortcut, in order (the F1 dialog)."""
    rows = []
    for a in window.actions():
        if not a.shortcut().isEmpty():
            key = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            rows.append((key, a.text().replace("&", "")))
    return rows
