"""The main window: it composes the views and wires them to the session and the view state.

The views, each with one ``render`` and its own signals: the scan screen
(:mod:`~octviewer.ui.scan_screen`: image, localizer, volume bar), the result panel
(:mod:`~octviewer.ui.result_panel`), the scan list (:mod:`~octviewer.ui.scan_list`) and the
status area (:mod:`~octviewer.ui.status_area`). The window is *told*: the session's events
(:mod:`octviewer.viewer.events`, emitted by the :class:`~octviewer.ui.controller.Controller`)
and the view state's ``ViewChanged`` each lead to one redraw. The actions, menus and toolbar
are derived from the command records (:mod:`~octviewer.ui.command_list`); their handlers are
plain functions (:mod:`~octviewer.ui.file_commands`, :mod:`~octviewer.ui.model_commands`).
Errors are shown through :meth:`MainWindow.show_error` (non-blocking dialogs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

import octviewer
from octviewer.core.overlay import COLORMAPS
from octviewer.ui import command_list, commands, dialogs
from octviewer.ui import model_commands as model
from octviewer.ui.controller import Controller
from octviewer.ui.result_panel import PREDICTED, ResultPanel
from octviewer.ui.scan_list import ScanList
from octviewer.ui.scan_screen import ScanScreen
from octviewer.ui.session_keeper import SessionKeeper
from octviewer.ui.settings import Settings
from octviewer.ui.status_area import StatusArea
from octviewer.ui.style import STYLE_SHEET
from octviewer.ui.window_events import WindowEvents
from octviewer.viewer.entry import ScanEntry
from octviewer.viewer.presenters import NONE_ASSESSABLE
from octviewer.viewer.session import ModelState
from octviewer.viewer.shown import Shown
from octviewer.viewer.view_state import ViewState, bind_settings

log = logging.getLogger(__name__)
#: Files opened with the first wait for its result at most this long.
OPEN_REST_AFTER_MS = 8000


class MainWindow(QMainWindow):
    def __init__(
        self, settings: Settings | None = None, controller: Controller | None = None
    ) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.controller = controller or Controller()
        self.view = ViewState()  # what is on screen, and how
        bind_settings(self.view, self.settings)  # the remembered fields, read and written
        self.export_dialog: QProgressDialog | None = None
        self.last_dialog: QWidget | None = None  # kept alive while it shows
        self.errors: list[tuple[str, str]] = []  # every error shown (title, message), newest last
        self.setWindowTitle("octviewer")
        self.setAcceptDrops(True)
        self.resize(1360, 860)
        self.setStyleSheet(STYLE_SHEET)
        self._compose()
        self.restorer = SessionKeeper(self)  # the last session and the result cache
        self.act = commands.build_actions(self, command_list.COMMANDS)
        records = (command_list.COMMANDS, command_list.SUBMENUS, self.act)
        self.menus = commands.build_menus(self, command_list.MENU_TITLES, records)
        commands.build_toolbar(self, records)
        self.contour_actions = {
            levels: self.act[f"contours{i}"]
            for i, (_label, levels) in enumerate(command_list.CONTOUR_CHOICES)
        }
        self.events = WindowEvents(self)  # the session's and the view state's events
        self._connect()
        self._restore()
        self.redraw()
        self.restorer.start()
        commands.refresh(self, command_list.COMMANDS, self.act)

    # --- construction -------------------------------------------------------------------------
    def _compose(self) -> None:
        """The research-only banner above a three-way splitter: the scan list, the scan
        screen, the result panel; the status area below."""
        self.banner = QLabel(f"{octviewer.RESEARCH_ONLY}")
        self.banner.setObjectName("banner")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scan_list = ScanList()
        self.screen = ScanScreen()
        self.image_view, self.localizer = self.screen.image_view, self.screen.localizer
        self.strip = self.screen.strip
        self.result_panel = ResultPanel(COLORMAPS)
        scroll = QScrollArea()
        scroll.setWidget(self.result_panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setMinimumWidth(300)
        self.main_split = QSplitter(Qt.Orientation.Horizontal)
        self.main_split.addWidget(_side(self.scan_list, "Opened scans", (8, 8, 0, 8)))
        self.main_split.addWidget(self.screen)
        self.main_split.addWidget(_side(scroll, "", (0, 8, 8, 8)))
        for i, stretch in enumerate((0, 1, 0)):
            self.main_split.setStretchFactor(i, stretch)
        self.main_split.setSizes([240, 800, 320])
        root = QWidget()
        rlay = QVBoxLayout(root)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.setSpacing(0)
        rlay.addWidget(self.banner)
        rlay.addWidget(self.main_split, 1)
        self.setCentralWidget(root)
        self.status = StatusArea(self.statusBar())

    def _connect(self) -> None:
        c, s, rp, view = self.controller, self.screen, self.result_panel, self.view
        self.status.cancel_requested.connect(c.cancel_analysis)
        self.scan_list.current_uid_changed.connect(self.show_entry)
        self.scan_list.remove_requested.connect(c.remove)
        s.frame_step.connect(self.step_frame)
        s.frame_picked.connect(self.set_frame)
        s.most_suspicious.connect(self.go_most_suspicious)
        self.image_view.view_changed.connect(self.status.view_label.setText)
        s.view_split.splitterMoved.connect(
            lambda *_: setattr(self.settings, "localizer_split", s.view_split.saveState())
        )
        rp.overlay_box.setChecked(view.overlay_visible)
        rp.opacity.setValue(view.opacity_percent)
        rp.colormap.setCurrentText(view.colormap)
        rp.overlay_toggled.connect(lambda on: setattr(view, "overlay_visible", on))
        rp.opacity_changed.connect(view.set_opacity)
        rp.colormap_changed.connect(view.set_colormap)
        rp.cam_class_changed.connect(
            lambda i: setattr(view, "cam_class", None if i == PREDICTED else i)
        )
        rp.show_anyway_toggled.connect(lambda on: setattr(view, "show_unreliable", on))

    def _restore(self) -> None:
        geom, state = self.settings.window_state()
        if geom is not None:
            self.restoreGeometry(geom)
        if state is not None:
            self.restoreState(state)
        split = self.settings.localizer_split
        if split is not None:
            self.screen.view_split.restoreState(split)

    # --- start-up ---------------------------------------------------------------------------------
    def start(
        self,
        files: Sequence[str | Path] = (),
        model_path: str | Path | None = None,
        device: str | None = None,
    ) -> None:
        """After the window is shown: open the files and load the model in the background."""
        if device:
            self.settings.device = device
            for d, a in self.act.items():
                if d.startswith("device_"):
                    a.setChecked(d == f"device_{self.settings.device}")
        files = list(files)
        if files:  # the first now, the others once it has its result
            self.open_paths(files[:1])
            if files[1:]:
                self._open_after_first_result(files[1:])
        last = self.settings.last_model
        if model_path is None and last and Path(last).is_file():
            model_path = last
        model.load_model_as_set(self, model_path)

    def _open_after_first_result(self, paths: Sequence[str | Path]) -> None:
        """Open ``paths`` once the first scan has its result (or failed, or no model loads; at
        the latest after ``OPEN_REST_AFTER_MS``): reading them meanwhile competes with the model
        job and the first analysis for the CPU (7 samples on 2 cores: about 0.5 s later)."""
        c, pending = self.controller, [list(paths)]

        def go(*_args: object) -> None:
            if not pending:
                return
            for signal, slot in hooks:
                signal.disconnect(slot)
            self.open_paths(pending.pop())

        def on_model(state: str, _text: str) -> None:
            if state not in (ModelState.LOADING.value, ModelState.READY.value):
                go()

        hooks = [(c.result_ready, go), (c.analysis_failed, go), (c.model_changed, on_model)]
        for signal, slot in hooks:
            signal.connect(slot)
        QTimer.singleShot(OPEN_REST_AFTER_MS, go)

    # --- opening ---------------------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[str | Path]) -> list[int]:
        paths = [Path(p) for p in paths]
        for p in paths:
            self.settings.add_recent(p)
        return self.controller.open_paths(paths)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        md = event.mimeData()
        if md.hasUrls() and any(u.isLocalFile() for u in md.urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # --- the entry and frame on screen -------------------------------------------------------------
    def shown(self) -> Shown:
        """What is on screen now (the views render it)."""
        entry = self.controller.session.entry(self.view.uid)
        return Shown(entry, self.view, self.controller.model_state)

    def current_entry(self) -> ScanEntry | None:
        return self.shown().entry

    def show_entry(self, uid: int) -> None:
        """Show an opened scan (from the list)."""
        if uid != self.view.uid:
            entry = self.controller.session.entry(uid)
            known = None if entry is None else entry.scan or entry.header  # released: header
            self.controller.set_priority(uid)
            self.view.select(uid, known)  # redrawn on its event
        self.scan_list.select(uid)

    def close_current(self) -> None:
        if self.view.uid is not None:
            self.controller.remove(self.view.uid)

    @property
    def current_frame(self) -> int:
        return self.view.frame

    def set_frame(self, frame: int) -> None:
        scan = self.shown().scan
        if scan is not None:
            self.view.frame = self.view.clamp(frame, scan.n_frames)  # redrawn on its event

    def step_frame(self, delta: int) -> None:
        scan = self.shown().scan
        if scan is not None:
            self.set_frame(self.view.stepped(delta, scan.n_frames))

    def go_most_suspicious(self) -> None:
        entry = self.current_entry()
        if entry is not None and entry.result is not None:
            if not entry.result.assessable_frames:
                self.status.say(NONE_ASSESSABLE, 8000)
                return
            self.set_frame(entry.result.most_suspicious_frame())

    def reanalyse_current(self) -> None:
        if self.view.uid is not None:
            self.controller.analyse(self.view.uid)

    # --- drawing ---------------------------------------------------------------------------------
    def redraw(self, new_scan: bool = False) -> None:
        """Everything the entry on screen shows: title, scan screen, result panel, heatmap."""
        shown = self.shown()
        if shown.scan is not None:
            frame = self.view.clamp(self.view.frame, shown.scan.n_frames)
            if frame != self.view.frame:  # a scan shorter than thought: redrawn on its event
                self.view.frame = frame
                return
        self.setWindowTitle(shown.title)
        self.screen.render(shown, new_scan=new_scan)
        self.result_panel.render(shown)
        if shown.scan is not None:
            self.refresh_overlay(shown)

    def refresh_overlay(self, shown: Shown | None = None) -> None:
        """The heatmap of the frame on screen (asked for when not computed yet)."""
        shown = shown or self.shown()
        cam, cls, visible = None, shown.cam_class, shown.overlay_visible
        if shown.entry is not None and cls is not None and visible:
            cam = self.controller.request_cam(shown.entry.uid, shown.frame, cls)
        self.screen.show_overlay(cam, self.view, visible)

    # --- errors -----------------------------------------------------------------------------------------
    def show_error(self, title: str, message: str, details: str = "") -> QMessageBox:
        """The one route for error dialogs. Non-blocking (the app keeps working)."""
        self.errors.append((title, message))
        self.status.say(title, 8000)
        box = dialogs.error_box(self, title, message, details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    # --- teardown ----------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.restorer.closed()
        self.controller.shutdown()
        super().closeEvent(event)


def _side(widget: QWidget, heading: str, margins: tuple[int, int, int, int]) -> QWidget:
    """``widget`` in a column with its margins, under ``heading`` (none when empty)."""
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(*margins)
    if heading:
        title = QLabel(heading)
        title.setObjectName("heading")
        lay.addWidget(title)
    lay.addWidget(widget, 1)
    return box
