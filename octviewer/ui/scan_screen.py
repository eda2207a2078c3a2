"""The scan screen: the B-scan (or the empty state), the localizer with its disease map beside
it, and the volume bar below (frame buttons and slider, the map's note, the probability strip).

:meth:`ScanScreen.render` draws a :class:`~octviewer.viewer.shown.Shown`; the screen's own
signals say what the user asked for (a frame, a step, the most suspicious frame). It never
reads the session or the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from octviewer.ui.empty_state import EmptyState
from octviewer.ui.image_view import ImageView
from octviewer.ui.localizer_view import LocalizerView
from octviewer.ui.probability_strip import ProbabilityStrip
from octviewer.viewer.presenters import SUSPICIOUS_TIP, frame_label

if TYPE_CHECKING:
    from octviewer.core.heatmap import Heatmap
    from octviewer.core.scan import Scan
    from octviewer.viewer.shown import Shown
    from octviewer.viewer.view_state import ViewState


class ScanScreen(QWidget):
    """See the module docstring."""

    frame_picked = Signal(int)  # a frame chosen (slider, strip, localizer)
    frame_step = Signal(int)  # frames to move (buttons, the wheel on a volume)
    most_suspicious = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._build_view()
        self._build_volume_box()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.view_split, 1)
        lay.addWidget(self.volume_box)
        self.image_view.frame_step.connect(self.frame_step)
        self.slider.valueChanged.connect(self.frame_picked)
        self.prev_btn.clicked.connect(lambda: self.frame_step.emit(-1))
        self.next_btn.clicked.connect(lambda: self.frame_step.emit(1))
        self.suspicious_btn.clicked.connect(self.most_suspicious)
        self.strip.frame_clicked.connect(self.frame_picked)
        self.localizer.frame_picked.connect(self.frame_picked)

    def _build_view(self) -> None:
        """The localizer beside the B-scan (or the empty state)."""
        self.image_view = ImageView()
        self.image_view.setAcceptDrops(False)
        self.image_view.viewport().setAcceptDrops(False)
        self.empty = EmptyState()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.image_view)
        self.localizer = LocalizerView()
        self.localizer.hide()
        self.view_split = QSplitter(Qt.Orientation.Horizontal)
        self.view_split.addWidget(self.localizer)
        self.view_split.addWidget(self.stack)
        self.view_split.setStretchFactor(0, 1)
        self.view_split.setStretchFactor(1, 2)
        self.view_split.setChildrenCollapsible(False)
        self.view_split.setSizes([380, 700])

    def _build_volume_box(self) -> None:
        """The volume controls: frame buttons and slider, the map note, the probability strip."""
        self.volume_bar = QWidget()
        vb = QHBoxLayout(self.volume_bar)
        vb.setContentsMargins(6, 2, 6, 2)
        self.prev_btn = QPushButton("◀")
        self.prev_btn.setToolTip("Previous frame (Left)")
        self.next_btn = QPushButton("▶")
        self.next_btn.setToolTip("Next frame (Right)")
        for b in (self.prev_btn, self.next_btn):
            b.setFixedWidth(34)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Frame (mouse wheel over the image, Left/Right keys)")
        self.frame_label = QLabel("Frame 1 / 1")
        self.frame_label.setMinimumWidth(110)
        self.suspicious_btn = QPushButton("Most suspicious frame  (S)")
        self.suspicious_btn.setToolTip(SUSPICIOUS_TIP)
        vb.addWidget(self.prev_btn)
        vb.addWidget(self.slider, 1)
        vb.addWidget(self.next_btn)
        vb.addWidget(self.frame_label)
        vb.addWidget(self.suspicious_btn)
        self.strip = ProbabilityStrip()
        self.map_note = QLabel("")  # why a volume has no disease map
        self.map_note.setObjectName("muted")
        self.map_note.setWordWrap(True)
        self.map_note.hide()
        self.volume_box = QWidget()
        vl = QVBoxLayout(self.volume_box)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.setSpacing(2)
        vl.addWidget(self.volume_bar)
        vl.addWidget(self.map_note)
        vl.addWidget(self.strip)
        self.volume_box.hide()

    # --- drawing ----------------------------------------------------------------------------------
    def render(self, shown: Shown, *, new_scan: bool = False) -> None:
        """Draw ``shown``'s frame, volume bar and localizer (``new_scan``: fit the view anew).
        The heatmap follows from :meth:`show_overlay`."""
        scan = shown.scan
        if scan is None:
            self.stack.setCurrentWidget(self.image_view if shown.reading else self.empty)
            self.image_view.set_frame(None)
            self.volume_box.hide()
            self.localizer.hide()
            return
        self.stack.setCurrentWidget(self.image_view)
        frame = shown.frame
        self.image_view.wheel_steps_frames = scan.is_volume
        sp = scan.metadata.spacing
        self.image_view.set_frame(
            scan.frame_as_uint8(frame),
            shown.view.aspect(sp),
            reset_view=new_scan,
            spacing_um=(sp.row * 1000, sp.col * 1000) if sp and sp.unit == "mm" else None,
            render=False,  # show_overlay draws frame and heatmap at once
        )
        self.volume_box.setVisible(scan.is_volume)
        if scan.is_volume:
            self._render_volume_bar(shown, scan)
        # on every render, not only for a new entry: the first file opened is selected before
        # its scan has loaded, and its localizer arrives with a later update
        self.localizer.show_localizer(scan.localizer)
        self.localizer.setVisible(scan.localizer is not None)
        self.render_map(shown)
        self.localizer.set_current(frame)

    def _render_volume_bar(self, shown: Shown, scan: Scan) -> None:
        frame = shown.frame
        self.slider.blockSignals(True)
        self.slider.setRange(0, scan.n_frames - 1)
        self.slider.setValue(frame)
        self.slider.blockSignals(False)
        self.frame_label.setText(frame_label(frame, scan.n_frames))
        res = None if shown.entry is None else shown.entry.result
        if res is not None and len(res.frames) > 1:
            self.strip.set_data(
                res.probability_matrix(),
                [f.frame_index for f in res.frames],
                res.class_names,
                scan.n_frames,
                assessable=[f.assessable for f in res.frames],
            )
        else:
            self.strip.set_data(None, [], (), scan.n_frames)
        self.strip.set_current(frame)

    def render_map(self, shown: Shown) -> None:
        """The disease map on the localizer (and the note when a volume has none)."""
        from octviewer.core.disease_map import unavailable_reason

        scan, view, lv = shown.scan, shown.view, self.localizer
        if scan is None or shown.entry is None:
            return
        lv.map_visible = view.disease_map
        lv.attention_visible = view.map_attention
        lv.colormap = view.colormap
        lv.show_map(scan, shown.entry.result, shown.map_cams())
        reason = unavailable_reason(scan) if scan.is_volume else None
        self.map_note.setText(reason or "")
        self.map_note.setVisible(bool(reason) and view.disease_map)

    def show_overlay(self, cam: Heatmap | None, view: ViewState, visible: bool) -> None:
        """Draw the frame with the heatmap ``cam`` as ``view`` says (or without it)."""
        self.image_view.set_overlay(cam, view.colormap, view.opacity, visible, view.contours)
