"""The main window's analysis status: progress, cancel button and the model/device labels."""

from __future__ import annotations

from octviewer.viewer import presenters
from octviewer.viewer.session import ModelState


class AnalysisStatusMixin:
    """MainWindow's analysis and model state handlers (a mixin: the window supplies the widgets)."""

    def reanalyse_current(self) -> None:
        if self.view.uid is not None:
            self.controller.analyse(self.view.uid)

    def _on_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_btn.setVisible(running)
        if running:
            self.progress.setRange(0, 0)

    def _on_progress(self, uid: int, done: int, total: int) -> None:
        entry = self.controller.entry(uid)
        if entry is not None:
            self.scan_list.upsert(entry)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"Analysing {done}/{total}")

    def _on_model_changed(self, state: str, text: str) -> None:
        self.model_label.setText(text)
        eng = self.controller.engine
        if state == ModelState.READY.value and eng is not None:
            where = presenters.compute_label(eng.device, eng.compute_dtype, eng.quantized)
            self.device_label.setText(f"Device: {where}")
            self.device_label.setToolTip(
                f"Computes in {'int8' if eng.quantized else eng.compute_dtype}"
            )
            if self.settings.int8_choice is None:  # left to the model: show what it chose
                self.act_int8.blockSignals(True)
                self.act_int8.setChecked(eng.quantized)
                self.act_int8.blockSignals(False)
            self.result_panel.show_model(eng.identity, where)
        else:
            self.device_label.setText("")
            self.result_panel.show_model(None, extra=text)
        self._show_result()
