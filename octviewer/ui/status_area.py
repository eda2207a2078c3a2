"""The status area: the analysis progress and its Cancel button, the image view's zoom and
window/level, the model and the device it computes on.

:meth:`StatusArea.render` draws a :class:`StatusState`; ``cancel_requested`` is its one signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from octviewer.viewer.presenters import NO_MODEL_TEXT


@dataclass(frozen=True)
class StatusState:
    """What the status area shows: the model's text, where it computes (with a tooltip),
    whether an analysis runs and how far it is (``progress`` (done, total); None: busy)."""

    model_text: str = NO_MODEL_TEXT
    device_text: str = ""
    device_tip: str = ""
    running: bool = False
    progress: tuple[int, int] | None = None


class StatusArea(QObject):
    """The status bar's widgets (see the module docstring)."""

    cancel_requested = Signal()

    def __init__(self, bar: QStatusBar) -> None:
        super().__init__(bar)
        self.bar = bar
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setTextVisible(True)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the running analysis (Esc)")
        self.progress.hide()
        self.cancel_btn.hide()
        self.view_label = QLabel("")
        self.view_label.setObjectName("muted")
        self.model_label = QLabel(NO_MODEL_TEXT)
        self.device_label = QLabel("")
        self.device_label.setObjectName("muted")
        bar.addWidget(self.progress)
        bar.addWidget(self.cancel_btn)
        bar.addPermanentWidget(self.view_label)
        bar.addPermanentWidget(self.model_label)
        bar.addPermanentWidget(self.device_label)
        self.cancel_btn.clicked.connect(self.cancel_requested)

    def render(self, state: StatusState) -> None:
        self.model_label.setText(state.model_text)
        self.device_label.setText(state.device_text)
        self.device_label.setToolTip(state.device_tip)
        self.progress.setVisible(state.running)
        self.cancel_btn.setVisible(state.running)
        if state.running and state.progress is None:
            self.progress.setRange(0, 0)  # busy until the first batch is done
        elif state.progress is not None:
            done, total = state.progress
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
            self.progress.setFormat(f"Analysing {done}/{total}")

    def say(self, text: str, timeout_ms: int = 0) -> None:
        """A message beside the progress (the newest replaces the last)."""
        self.bar.showMessage(text, timeout_ms)
