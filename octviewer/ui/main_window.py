"""The main window: menus, the side list, the B-scan view, the result panel, the status bar.

All work happens in :class:`~octviewer.ui.controller.Controller`; this class only wires
widgets to it. Errors are shown through :meth:`MainWindow.show_error` (non-blocking dialogs).
Widgets come from :mod:`~octviewer.ui.layout`, actions and menus from :mod:`~octviewer.ui.actions`
and :mod:`~octviewer.ui.menus`; the handlers of one concern each live in a ``window_*`` mixin
(opening, reports, Model/Help dialogs, frames and overlay, analysis status, display).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
)
from PySide6.QtWidgets import (
    QMainWindow,
    QMessageBox,
    QProgressDialog,
)

from octviewer.ui import dialogs
from octviewer.ui.actions import CONTOUR_CHOICES, SUSPICIOUS_TIP, build_actions  # noqa: F401
from octviewer.ui.archive_dialogs import ArchiveCommands
from octviewer.ui.controller import Controller, ScanEntry
from octviewer.ui.empty_state import EmptyState  # noqa: F401
from octviewer.ui.layout import build_widgets
from octviewer.ui.menus import build_menus, build_toolbar
from octviewer.ui.settings import Settings
from octviewer.ui.style import STYLE_SHEET
from octviewer.ui.view_state import ViewState
from octviewer.ui.window_dialogs import DialogsMixin
from octviewer.ui.window_display import DisplayMixin
from octviewer.ui.window_frames import NONE_ASSESSABLE, FramesMixin  # noqa: F401
from octviewer.ui.window_opening import (
    SCAN_FILTER,  # noqa: F401
    OpeningMixin,
)
from octviewer.ui.window_reports import ReportsMixin
from octviewer.ui.window_restore import SessionKeeper
from octviewer.ui.window_status import AnalysisStatusMixin

log = logging.getLogger(__name__)
#: Files opened with the first wait for its result at most this long.
OPEN_REST_AFTER_MS = 8000


class MainWindow(
    DisplayMixin,
    AnalysisStatusMixin,
    FramesMixin,
    DialogsMixin,
    ReportsMixin,
    OpeningMixin,
    QMainWindow,
):
    def __init__(
        self, settings: Settings | None = None, controller: Controller | None = None
    ) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.controller = controller or Controller(self)
        self.view = ViewState.from_settings(self.settings)  # what is on screen, and how
        self._export_dialog: QProgressDialog | None = None
        self.errors: list[tuple[str, str]] = []  # every error shown (title, message), newest last
        self.setWindowTitle("octviewer")
        self.setAcceptDrops(True)
        self.resize(1360, 860)
        self.setStyleSheet(STYLE_SHEET)
        build_widgets(self)
        self.restorer = SessionKeeper(self)  # the last session and the result cache
        self.archive = ArchiveCommands(self)  # File > Open from archive / Send results / nodes
        build_actions(self)
        self._build_menus()
        self._connect()
        self._restore()
        self._show_current()
        self.restorer.start()

    # --- construction -------------------------------------------------------------------------
    def _build_menus(self) -> None:
        build_menus(self)
        build_toolbar(self)
        self._fill_samples()
        self._fill_recent()

    def _connect(self) -> None:
        c = self.controller
        c.entry_added.connect(self._on_entry_added)
        c.entry_updated.connect(self._on_entry_updated)
        c.entry_removed.connect(self._on_entry_removed)
        c.cam_ready.connect(self._on_cam_ready)
        c.model_changed.connect(self._on_model_changed)
        c.error.connect(lambda t, m, d: self.show_error(t, m, d))
        c.series_needed.connect(self._on_series_needed)
        c.analysis_running.connect(self._on_running)
        c.analysis_progress.connect(self._on_progress)
        c.export_progress.connect(self._on_export_progress)
        c.export_finished.connect(self._on_exported)
        self.cancel_btn.clicked.connect(c.cancel_analysis)
        self.scan_list.current_uid_changed.connect(self.show_entry)
        self.scan_list.remove_requested.connect(c.remove)
        self.image_view.frame_step.connect(self.step_frame)
        self.image_view.view_changed.connect(self.view_label.setText)
        self.slider.valueChanged.connect(self.set_frame)
        self.prev_btn.clicked.connect(lambda: self.step_frame(-1))
        self.next_btn.clicked.connect(lambda: self.step_frame(1))
        self.suspicious_btn.clicked.connect(self.go_most_suspicious)
        self.strip.frame_clicked.connect(self.set_frame)
        self.localizer.frame_picked.connect(self.set_frame)
        self.view_split.splitterMoved.connect(
            lambda *_: setattr(self.settings, "localizer_split", self.view_split.saveState())
        )
        rp = self.result_panel
        rp.overlay_box.setChecked(self.view.overlay_visible)
        rp.opacity.setValue(self.view.opacity_percent)
        rp.colormap.setCurrentText(self.view.colormap)
        rp.overlay_toggled.connect(self.set_overlay_visible)
        rp.opacity_changed.connect(self._on_opacity)
        rp.colormap_changed.connect(self._on_colormap)
        rp.cam_class_changed.connect(lambda _: self._refresh_overlay())
        rp.show_anyway_toggled.connect(lambda _: self._refresh_overlay())

    def _restore(self) -> None:
        geom, state = self.settings.window_state()
        if geom is not None:
            self.restoreGeometry(geom)
        if state is not None:
            self.restoreState(state)
        split = self.settings.localizer_split
        if split is not None:
            self.view_split.restoreState(split)

    # --- start-up ---------------------------------------------------------------------------------
    def start(
        self,
        files: Sequence[str | Path] = (),
        model: str | Path | None = None,
        device: str | None = None,
    ) -> None:
        """After the window is shown: open the files and load the model in the background."""
        if device:
            self.settings.device = device
            for d, a in self.device_actions.items():
                a.setChecked(d == self.settings.device)
        files = list(files)
        if files:  # the first now, the others once it has its result
            self.open_paths(files[:1])
            if files[1:]:
                self._open_after_first_result(files[1:])
        if model is None and self.settings.last_model and Path(self.settings.last_model).is_file():
            model = self.settings.last_model
        self.load_model_as_set(model)

    def _open_after_first_result(self, paths: Sequence[str | Path]) -> None:
        """Open ``paths`` once the first scan has its result (or failed, or no model loads; at
        the latest after ``OPEN_REST_AFTER_MS``): reading them meanwhile competes with the model
        job and the first analysis for the CPU (7 samples on 2 cores: about 0.5 s later)."""
        from PySide6.QtCore import QTimer

        from octviewer.ui.session import ModelState

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
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        md = event.mimeData()
        if md.hasUrls() and any(u.isLocalFile() for u in md.urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # --- entries --------------------------------------------------------------------------------
    def _on_entry_added(self, uid: int) -> None:
        entry = self.controller.entry(uid)
        if entry is None:
            return
        self.scan_list.upsert(entry)
        if self.view.uid is None:
            self.scan_list.select(uid)

    def _on_entry_updated(self, uid: int) -> None:
        entry = self.controller.entry(uid)
        if entry is None:
            return
        self.scan_list.upsert(entry)
        if uid == self.view.uid:
            self._show_current()

    def _on_entry_removed(self, uid: int) -> None:
        self.scan_list.remove(uid)
        if uid == self.view.uid:
            self.view.uid = None
            nxt = self.scan_list.current_uid()
            if nxt is not None:
                self.show_entry(nxt)
            else:
                self._show_current()

    def show_entry(self, uid: int) -> None:
        """Show an opened scan (from the list)."""
        entry = self.controller.entry(uid)
        known = None if entry is None else entry.scan or entry.header  # released: its header
        if self.view.select(uid, known):
            self.controller.set_priority(uid)
            self._show_current(new_scan=True)
        self.scan_list.select(uid)

    def close_current(self) -> None:
        if self.view.uid is not None:
            self.controller.remove(self.view.uid)

    def current_entry(self) -> ScanEntry | None:
        return None if self.view.uid is None else self.controller.entry(self.view.uid)

    @property
    def _uid(self) -> int | None:  # the entry on screen (scripts read it)
        return self.view.uid

    # --- errors -----------------------------------------------------------------------------------------
    def show_error(self, title: str, message: str, details: str = "") -> QMessageBox:
        """The one route for error dialogs. Non-blocking (the app keeps working)."""
        self.errors.append((title, message))
        self.statusBar().showMessage(title, 8000)
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
