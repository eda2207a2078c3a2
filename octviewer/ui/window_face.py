"""What the command handlers, the event router and the session keeper use of the main window.

:class:`Window` is a Protocol (MainWindow is one), so those modules name the window's face
without importing :mod:`octviewer.ui.main_window`, which imports them (no import cycle).
It is also a QMainWindow: they parent dialogs on it and use its status bar and actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import (
        QMenuBar,
        QMessageBox,
        QProgressDialog,
        QStatusBar,
        QStyle,
        QToolBar,
        QWidget,
    )

    from octviewer.ui.controller import Controller
    from octviewer.ui.image_view import ImageView
    from octviewer.ui.result_panel import ResultPanel
    from octviewer.ui.scan_list import ScanList
    from octviewer.ui.scan_screen import ScanScreen
    from octviewer.ui.settings import Settings
    from octviewer.ui.status_area import StatusArea
    from octviewer.viewer.entry import ScanEntry
    from octviewer.viewer.shown import Shown
    from octviewer.viewer.view_state import ViewState


class Window(Protocol):
    settings: Settings
    controller: Controller
    view: ViewState
    act: dict[str, QAction]
    screen: ScanScreen
    image_view: ImageView
    result_panel: ResultPanel
    scan_list: ScanList
    status: StatusArea
    restorer: Any  # SessionKeeper (which names this face)
    export_dialog: QProgressDialog | None
    last_dialog: QWidget | None

    def open_paths(self, paths: Sequence[str | Path]) -> list[int]: ...
    def show_error(self, title: str, message: str, details: str = "") -> QMessageBox: ...
    def current_entry(self) -> ScanEntry | None: ...
    def shown(self) -> Shown: ...
    def show_entry(self, uid: int) -> None: ...
    def close_current(self) -> None: ...
    def set_frame(self, frame: int) -> None: ...
    def step_frame(self, delta: int) -> None: ...
    def go_most_suspicious(self) -> None: ...
    def reanalyse_current(self) -> None: ...
    def redraw(self, new_scan: bool = False) -> None: ...
    def refresh_overlay(self, shown: Shown | None = None) -> None: ...

    # the QMainWindow it is
    def statusBar(self) -> QStatusBar: ...
    def actions(self) -> list[QAction]: ...
    def addAction(self, action: QAction) -> None: ...
    def menuBar(self) -> QMenuBar: ...
    def addToolBar(self, toolbar: QToolBar) -> None: ...
    def style(self) -> QStyle: ...
    def close(self) -> bool: ...
