"""The result panel: predicted class, every class probability, warnings, heatmap controls, model.

A frame that is *not assessed* (:attr:`FrameResult.assessable` False) shows "Not assessed" and
its reason instead of a class; its probabilities and heatmap stay hidden until the user ticks
"Show model output anyway", and are then captioned as unreliable. The tick is cleared whenever
another frame or scan is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from octviewer.core.overlay import COLORMAPS, DEFAULT_OPACITY, HEATMAP_LEGEND
from octviewer.core.presentation import NOT_EXCLUDED, NOT_EXCLUDED_RGB
from octviewer.core.results import FrameResult, ModelIdentity

if TYPE_CHECKING:
    from octviewer.viewer.shown import Shown
from octviewer.ui.style import class_color
from octviewer.viewer.presenters import NO_SCAN_TEXT, model_facts, scan_facts

LEGEND = HEATMAP_LEGEND + "."
PREDICTED = -1
SHOW_ANYWAY = "Show model output anyway"
UNRELIABLE = "UNRELIABLE — not assessed. The model's output for this frame cannot be trusted."
NOT_ASSESSED_COLOR = "#6B7280"
#: A NORMAL that does not exclude disease: amber, never the reassuring green.
NOT_EXCLUDED_COLOR = "#{:02X}{:02X}{:02X}".format(*NOT_EXCLUDED_RGB)
ALERT_COLOR = "#B00020"


class ProbabilityBars(QWidget):
    """One horizontal bar per class, the predicted one in bold."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._names: tuple[str, ...] = ()
        self._probs: np.ndarray | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_probabilities(self, names: tuple[str, ...], probs: np.ndarray | None) -> None:
        self._names, self._probs = tuple(names), None if probs is None else np.asarray(probs, float)
        self.setFixedHeight(max(1, len(self._names)) * 26 + 4)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(240, max(1, len(self._names)) * 26 + 4)

    def paintEvent(self, event: QPaintEvent) -> None:
        if self._probs is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = p.fontMetrics()
        label_w = max([fm.horizontalAdvance(n) for n in self._names] + [40]) + 8
        pct_w = fm.horizontalAdvance("100.0 %") + 6
        best = int(np.argmax(self._probs))
        for i, (name, prob) in enumerate(zip(self._names, self._probs, strict=False)):
            y = 2 + i * 26
            f = p.font()
            f.setBold(i == best)
            p.setFont(f)
            p.setPen(QColor("#1F2328"))
            p.drawText(QRectF(0, y, label_w, 22), Qt.AlignmentFlag.AlignVCenter, name)
            bar = QRectF(label_w, y + 4, max(10.0, self.width() - label_w - pct_w), 14)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#EEF0F3"))
            p.drawRoundedRect(bar, 3, 3)
            p.setBrush(class_color(i, self._names))
            p.drawRoundedRect(
                QRectF(
                    bar.left(), bar.top(), bar.width() * float(np.clip(prob, 0, 1)), bar.height()
                ),
                3,
                3,
            )
            p.setPen(QColor("#1F2328"))
            p.drawText(
                QRectF(bar.right(), y, pct_w, 22),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{prob * 100:.1f} %",
            )
        p.end()


class ColorBar(QLabel):
    def set_colormap(self, name: str) -> None:
        from octviewer.core.overlay import lut

        row = np.ascontiguousarray(np.repeat(lut(name)[None], 10, axis=0))
        img = QImage(row.data, 256, 10, row.strides[0], QImage.Format.Format_RGB888).copy()
        self.setPixmap(QPixmap.fromImage(img).scaled(160, 10))


class ResultPanel(QFrame):
    overlay_toggled = Signal(bool)
    opacity_changed = Signal(float)
    colormap_changed = Signal(str)
    cam_class_changed = Signal(int)  # class index, or PREDICTED (-1)
    show_anyway_toggled = Signal(bool)

    def __init__(
        self, colormaps: tuple[str, ...] = COLORMAPS, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("panel")
        self.setMinimumWidth(280)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 12, 14, 12)
        lay.setSpacing(8)
        self._build_result(lay)
        lay.addSpacing(6)
        self._build_heatmap(lay, colormaps)
        lay.addSpacing(6)
        self._build_facts(lay)
        lay.addStretch(1)
        self._class_names: tuple[str, ...] = ()
        self._selected = PREDICTED  # the heatmap class shown in the selector
        self._anyway = False  # "Show model output anyway" ticked
        self._shown: FrameResult | None = None
        self._shown_key: object = None

    def _build_result(self, lay: QVBoxLayout) -> None:
        """The answer: class, probability, warnings, "show anyway", the probability bars."""
        self.heading = _label("Result", "heading")
        self.prediction = _label("—", "prediction")
        self.confidence = _label("Open a scan to see the model's answer.", "confidence", wrap=True)
        self.warning = _label("", "warning", wrap=True)
        self.warning.hide()
        self.show_anyway = QCheckBox(SHOW_ANYWAY)
        self.show_anyway.setToolTip(
            "Show the probabilities and the heatmap of a frame that is not assessed. "
            "They are unreliable: the model was not made for this image."
        )
        self.show_anyway.toggled.connect(self._on_show_anyway)
        self.show_anyway.hide()
        self.unreliable = _label(UNRELIABLE, "unreliable", wrap=True)
        self.unreliable.setStyleSheet(f"color: {ALERT_COLOR}; font-weight: bold;")
        self.unreliable.hide()
        self.bars = ProbabilityBars()
        for w in (
            self.heading,
            self.prediction,
            self.confidence,
            self.warning,
            self.show_anyway,
            self.unreliable,
            self.bars,
        ):
            lay.addWidget(w)

    def _build_heatmap(self, lay: QVBoxLayout, colormaps: tuple[str, ...]) -> None:
        """The heatmap controls: show, class, opacity, colours, the colour bar and legend."""
        lay.addWidget(_label("Heatmap", "heading"))
        self.overlay_box = QCheckBox("Show heatmap  (H)")
        self.overlay_box.setChecked(True)
        self.overlay_box.toggled.connect(self.overlay_toggled)
        lay.addWidget(self.overlay_box)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.cam_class = QComboBox()
        self.cam_class.setToolTip("Show where the model looked for this class")
        self.cam_class.currentIndexChanged.connect(self._on_cam_class)
        form.addRow("For class", self.cam_class)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(DEFAULT_OPACITY * 100))
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        form.addRow("Opacity", self.opacity)
        self.colormap = QComboBox()
        self.colormap.addItems(list(colormaps))
        self.colormap.currentTextChanged.connect(self._on_colormap)
        form.addRow("Colours", self.colormap)
        lay.addLayout(form)
        self.colorbar = ColorBar()
        self.colorbar.set_colormap(colormaps[0])
        lay.addWidget(self.colorbar)
        lay.addWidget(_label("low attention  →  high attention", "legend"))
        self.legend = _label(LEGEND, "legend", wrap=True)
        lay.addWidget(self.legend)

    def _build_facts(self, lay: QVBoxLayout) -> None:
        """The scan and model facts (selectable text)."""
        lay.addWidget(_label("Scan", "heading"))
        self.scan_info = _label("—", "muted", wrap=True, selectable=True)
        lay.addWidget(self.scan_info)
        lay.addWidget(_label("Model", "heading"))
        self.model_info = _label("—", "muted", wrap=True, selectable=True)
        lay.addWidget(self.model_info)

    # --- updates --------------------------------------------------------------------------------
    def render(self, shown: Shown) -> None:
        """The answer for ``shown``'s frame (or what stands instead) and the scan's facts; the
        heatmap class and "show model output anyway" as the view state says."""
        entry, scan = shown.entry, shown.scan
        if entry is None or scan is None:
            self.set_prediction_placeholder(NO_SCAN_TEXT if entry is None else shown.placeholder)
            self.scan_info.setText("—" if entry is None else str(entry.path.name))
            return
        self.scan_info.setText(scan_facts(scan, shown.frame_result))
        placeholder = shown.placeholder
        fr = shown.frame_result
        if placeholder is not None or fr is None:
            self.set_prediction_placeholder(placeholder or "")
            return
        names_changed = fr.class_names != self._class_names
        self._reset_show_anyway(shown.view.show_unreliable)
        self.show_result(fr, shown.caption, key=(entry.uid, shown.frame))
        self._select_cam_class(shown.view.cam_class, names_changed)

    def _select_cam_class(self, selected: int | None, names_changed: bool) -> None:
        """Show ``selected`` (None: the predicted class) in the class selector; other class
        names (another model) start again from the predicted class, and say so."""
        want = PREDICTED if selected is None or names_changed else selected
        self._selected = want
        self.cam_class.blockSignals(True)
        self.cam_class.setCurrentIndex(max(self.cam_class.findData(want), 0))
        self.cam_class.blockSignals(False)
        if selected is not None and want == PREDICTED:
            self.cam_class_changed.emit(PREDICTED)

    def _on_cam_class(self, idx: int) -> None:
        if idx >= 0:
            self._selected = int(self.cam_class.itemData(idx))
            self.cam_class_changed.emit(self._selected)

    def _on_colormap(self, name: str) -> None:
        self.colorbar.set_colormap(name)
        self.colormap_changed.emit(name)

    def set_class_names(self, names: tuple[str, ...], predicted: str | None) -> None:
        """Fill the class selector: "Predicted (X)" first, then every class."""
        self.cam_class.blockSignals(True)
        self.cam_class.clear()
        self.cam_class.addItem(f"Predicted ({predicted})" if predicted else "Predicted", PREDICTED)
        for i, n in enumerate(names):
            self.cam_class.addItem(n, i)
        if names != self._class_names:
            self._selected = PREDICTED
        self.cam_class.setCurrentIndex(max(self.cam_class.findData(self._selected), 0))
        self.cam_class.blockSignals(False)
        self._class_names = names

    def show_message(self, title: str, text: str) -> None:
        self.prediction.setText(title)
        self.confidence.setText(text)
        self.warning.hide()
        self._shown, self._shown_key = None, None
        self._reset_show_anyway()
        self.show_anyway.hide()
        self.unreliable.hide()
        self.bars.set_probabilities((), None)

    @property
    def output_revealed(self) -> bool:
        """Whether the shown frame's probabilities and heatmap may be displayed: always for an
        assessable frame, only after "Show model output anyway" for one that is not."""
        fr = self._shown
        return fr is not None and (fr.assessable or self._anyway)

    def _reset_show_anyway(self, on: bool = False) -> None:
        self._anyway = on
        self.show_anyway.blockSignals(True)
        self.show_anyway.setChecked(on)
        self.show_anyway.blockSignals(False)

    def _on_show_anyway(self, on: bool) -> None:
        self._anyway = on
        if self._shown is not None:
            self._show_output(self._shown)
        self.show_anyway_toggled.emit(on)

    def show_result(self, fr: FrameResult, frame_text: str = "", key: object = None) -> None:
        """Show ``fr``. ``key`` names the frame on screen (e.g. scan and frame number): when it
        changes, "Show model output anyway" is cleared."""
        if key != self._shown_key or key is None:
            self._reset_show_anyway()
        self._shown, self._shown_key = fr, key
        suffix = f"  ·  {frame_text}" if frame_text else ""
        if fr.reassurance_withheld:
            self.prediction.setText(NOT_EXCLUDED)
            self.prediction.setStyleSheet(f"color: {NOT_EXCLUDED_COLOR};")
            self.confidence.setText(
                f"{fr.predicted_class} {fr.confidence * 100:.1f} % probability{suffix}"
            )
        elif fr.assessable:
            self.prediction.setText(fr.predicted_class)
            self.prediction.setStyleSheet(
                f"color: {class_color(fr.predicted_index, fr.class_names).darker(140).name()};"
            )
            self.confidence.setText(f"{fr.confidence * 100:.1f} % probability{suffix}")
        else:
            self.prediction.setText(fr.headline)
            self.prediction.setStyleSheet(f"color: {NOT_ASSESSED_COLOR};")
            ood = f" {fr.ood_text.capitalize()}." if fr.ood_text else ""
            self.confidence.setText(f"{fr.reason_text}{ood}{suffix}")
        warnings = [fr.flag_sentence(flag) for flag in fr.cautions]
        self.warning.setText("⚠  " + "\n\n⚠  ".join(warnings) if warnings else "")
        self.warning.setVisible(bool(warnings))
        self.show_anyway.setVisible(not fr.assessable)
        self.prediction.setToolTip(fr.ood_text[:1].upper() + fr.ood_text[1:] if fr.ood_text else "")
        self._show_output(fr)

    def _show_output(self, fr: FrameResult) -> None:
        """The probabilities and the class selector, hidden for a frame not assessed unless
        the user asked to see them."""
        revealed = self.output_revealed
        self.unreliable.setVisible(revealed and not fr.assessable)
        self.bars.setVisible(revealed)
        self.bars.set_probabilities(fr.class_names, fr.probabilities if revealed else None)
        self.set_class_names(fr.class_names, fr.predicted_class if revealed else None)

    def show_model(self, identity: ModelIdentity | None, device: str = "", extra: str = "") -> None:
        self.model_info.setText(model_facts(identity, device, extra))

    def set_prediction_placeholder(self, text: str) -> None:
        self.prediction.setStyleSheet("")
        self.show_message("—", text)


def _label(text: str, name: str, *, wrap: bool = False, selectable: bool = False) -> QLabel:
    """A QLabel styled by its object name (style.py)."""
    label = QLabel(text)
    label.setObjectName(name)
    if wrap:
        label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label
