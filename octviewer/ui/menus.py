"""The main window's menu bar and toolbar, declared as data over the window's actions.

An item is the name of a window attribute: a QAction (``"act_open"``), a dict of choice
actions (``"contour_actions"``, added in order), :data:`SEP` for a separator, or a
:class:`Submenu`. The actions themselves come from :mod:`octviewer.ui.actions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QMenu, QToolBar

SEP = "-"


@dataclass(frozen=True)
class Submenu:
    """A menu inside a menu; ``attr`` keeps it on the window, ``on_show`` fills it."""

    title: str
    items: tuple[Any, ...] = ()
    attr: str | None = None
    on_show: str | None = None


MENUS: tuple[Submenu, ...] = (
    Submenu("&File", (
        "act_open", "act_open_folder",
        Submenu("Open &sample", attr="sample_menu", on_show="_fill_samples"),
        Submenu("Open &recent", attr="recent_menu", on_show="_fill_recent"), "act_restore",
        SEP, "act_export", "act_export_all", "act_identity",
        SEP, "act_archive_open", "act_archive_send", "act_archive_nodes",
        SEP, "act_load_model", "act_close",
        SEP, "act_quit",
    )),
    Submenu("&View", (
        "act_fit", "act_actual", "act_zoom_in", "act_zoom_out",
        SEP, "act_reset_wl", "act_aspect", "act_overlay",
        Submenu("Heatmap &contour lines", ("contour_actions",)),
        "act_map", "act_map_attention",
        SEP, "act_prev", "act_next", "act_first", "act_last", "act_suspicious",
    )),
    Submenu("&Analysis", ("act_reanalyse", "act_cancel", SEP, "act_cache", "act_clear_cache")),
    Submenu("&Model", (
        "act_load_model", "act_model_card", "act_mirage",
        Submenu("&Device", ("device_actions", SEP, "act_bf16", "act_int8")),
    )),
    Submenu("&Help", ("act_shortcuts", "act_logs", "act_about")),
)  # fmt: skip
TOOLBAR: tuple[str, ...] = (
    "act_open", "act_open_folder", "act_export",
    SEP, "act_fit", "act_actual", "act_overlay",
)  # fmt: skip


def _fill(window: Any, menu: QMenu | QToolBar, items: tuple[Any, ...]) -> None:
    for item in items:
        if item == SEP:
            menu.addSeparator()
        elif isinstance(item, Submenu):
            sub = menu.addMenu(item.title)
            if item.attr:
                setattr(window, item.attr, sub)
            if item.on_show:
                sub.aboutToShow.connect(getattr(window, item.on_show))
            _fill(window, sub, item.items)
        else:
            target = getattr(window, item)
            if isinstance(target, dict):
                menu.addActions(list(target.values()))
            else:
                menu.addAction(target)


def build_menus(window: Any) -> None:
    """Fill ``window``'s menu bar (a QMainWindow with the actions already built)."""
    mb = window.menuBar()
    for spec in MENUS:
        _fill(window, mb.addMenu(spec.title), spec.items)


def build_toolbar(window: Any) -> QToolBar:
    """Add the main toolbar to ``window``."""
    tb = QToolBar("Main")
    tb.setObjectName("maintoolbar")
    tb.setMovable(False)
    tb.setIconSize(QSize(18, 18))
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    _fill(window, tb, TOOLBAR)
    window.addToolBar(tb)
    return tb
