"""The main window's widgets and their layout, built onto the window as named attributes.

:func:`build_widgets` creates every widget MainWindow wires up (``window.image_view``,
``window.result_panel``, ``window.strip``, ``window.localizer``, the status bar's progress
and labels, ...) and lays them out: the research-only banner above a three-way splitter of
the scan list, the view (localizer beside the B-scan, the volume controls below) and the
result panel. Connections to the controller stay in MainWindow.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

import octviewer
from octviewer.core.overlay import COLORMAPS
from octviewer.ui.actions import SUSPICIOUS_TIP
from octviewer.ui.empty_state import EmptyState
from octviewer.ui.image_view import ImageView
from octviewer.ui.localizer_view import LocalizerView
from octviewer.ui.probability_strip import ProbabilityStrip
from octviewer.ui.result_panel import ResultPanel
from octviewer.ui.scan_list import ScanList
from octviewer.viewer.presenters import NO_MODEL_TEXT


def build_widgets(window: Any) -> None:
    """Create and lay out the main window's widgets (``window`` is a MainWindow)."""
    window.banner = QLabel(f"{octviewer.RESEARCH_ONLY}")
    window.banner.setObjectName("banner")
    window.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
    _build_view(window)
    _build_volume_box(window)
    center = _center(window)
    scroll = _result_scroll(window)
    left = _scan_side(window)
    _build_main_split(window, left, center, scroll)
    root = QWidget()
    rlay = QVBoxLayout(root)
    rlay.setContentsMargins(0, 0, 0, 0)
    rlay.setSpacing(0)
    rlay.addWidget(window.banner)
    rlay.addWidget(window.main_split, 1)
    window.setCentralWidget(root)
    _build_status_bar(window)


def _build_view(window: Any) -> None:
    """The scan list, and the localizer beside the B-scan (or the empty state)."""
    window.scan_list = ScanList()
    window.image_view = ImageView()
    window.image_view.setAcceptDrops(False)
    window.image_view.viewport().setAcceptDrops(False)
    window.empty = EmptyState()
    window.stack = QStackedWidget()
    window.stack.addWidget(window.empty)
    window.stack.addWidget(window.image_view)
    window.localizer = LocalizerView()
    window.localizer.hide()
    window.view_split = QSplitter(Qt.Orientation.Horizontal)
    window.view_split.addWidget(window.localizer)
    window.view_split.addWidget(window.stack)
    window.view_split.setStretchFactor(0, 1)
    window.view_split.setStretchFactor(1, 2)
    window.view_split.setChildrenCollapsible(False)
    window.view_split.setSizes([380, 700])


def _build_volume_box(window: Any) -> None:
    """The volume controls: frame buttons and slider, the map note, the probability strip."""
    window.volume_bar = QWidget()
    vb = QHBoxLayout(window.volume_bar)
    vb.setContentsMargins(6, 2, 6, 2)
    window.prev_btn = QPushButton("◀")
    window.prev_btn.setToolTip("Previous frame (Left)")
    window.next_btn = QPushButton("▶")
    window.next_btn.setToolTip("Next frame (Right)")
    for b in (window.prev_btn, window.next_btn):
        b.setFixedWidth(34)
    window.slider = QSlider(Qt.Orientation.Horizontal)
    window.slider.setToolTip("Frame (mouse wheel over the image, Left/Right keys)")
    window.frame_label = QLabel("Frame 1 / 1")
    window.frame_label.setMinimumWidth(110)
    window.suspicious_btn = QPushButton("Most suspicious frame  (S)")
    window.suspicious_btn.setToolTip(SUSPICIOUS_TIP)
    vb.addWidget(window.prev_btn)
    vb.addWidget(window.slider, 1)
    vb.addWidget(window.next_btn)
    vb.addWidget(window.frame_label)
    vb.addWidget(window.suspicious_btn)
    window.strip = ProbabilityStrip()
    window.map_note = QLabel("")  # why a volume has no disease map
    window.map_note.setObjectName("muted")
    window.map_note.setWordWrap(True)
    window.map_note.hide()
    window.volume_box = QWidget()
    vl = QVBoxLayout(window.volume_box)
    vl.setContentsMargins(0, 0, 0, 0)
    vl.setSpacing(2)
    vl.addWidget(window.volume_bar)
    vl.addWidget(window.map_note)
    vl.addWidget(window.strip)
    window.volume_box.hide()


def _center(window: Any) -> QWidget:
    center = QWidget()
    cl = QVBoxLayout(center)
    cl.setContentsMargins(0, 0, 0, 0)
    cl.setSpacing(0)
    cl.addWidget(window.view_split, 1)
    cl.addWidget(window.volume_box)
    return center


def _result_scroll(window: Any) -> QScrollArea:
    window.result_panel = ResultPanel(COLORMAPS)
    scroll = QScrollArea()
    scroll.setWidget(window.result_panel)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setMinimumWidth(300)
    return scroll


def _scan_side(window: Any) -> QWidget:
    left = QWidget()
    ll = QVBoxLayout(left)
    ll.setContentsMargins(8, 8, 0, 8)
    title = QLabel("Opened scans")
    title.setObjectName("heading")
    ll.addWidget(title)
    ll.addWidget(window.scan_list, 1)
    return left


def _build_main_split(window: Any, left: QWidget, center: QWidget, scroll: QScrollArea) -> None:
    window.main_split = QSplitter(Qt.Orientation.Horizontal)
    window.main_split.addWidget(left)
    window.main_split.addWidget(center)
    right = QWidget()
    rl = QVBoxLayout(right)
    rl.setContentsMargins(0, 8, 8, 8)
    rl.addWidget(scroll)
    window.main_split.addWidget(right)
    window.main_split.setStretchFactor(0, 0)
    window.main_split.setStretchFactor(1, 1)
    window.main_split.setStretchFactor(2, 0)
    window.main_split.setSizes([240, 800, 320])


def _build_status_bar(window: Any) -> None:
    sb = window.statusBar()
    window.progress = QProgressBar()
    window.progress.setMaximumWidth(200)
    window.progress.setTextVisible(True)
    window.cancel_btn = QPushButton("Cancel")
    window.cancel_btn.setToolTip("Stop the running analysis (Esc)")
    window.progress.hide()
    window.cancel_btn.hide()
    window.view_label = QLabel("")
    window.view_label.setObjectName("muted")
    window.model_label = QLabel(NO_MODEL_TEXT)
    window.device_label = QLabel("")
    window.device_label.setObjectName("muted")
    sb.addWidget(window.progress)
    sb.addWidget(window.cancel_btn)
    sb.addPermanentWidget(window.view_label)
    sb.addPermanentWidget(window.model_label)
    sb.addPermanentWidget(window.device_label)
