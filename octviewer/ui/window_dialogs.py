"""The main window's Model and Help handlers.

Loading a bundle, the compute device and precision, the model card, MIRAGE weights, and the
about, log folder and keyboard shortcut dialogs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QKeySequence
from PySide6.QtWidgets import QFileDialog

import octviewer
from octviewer.core.model.card import finetune_command
from octviewer.ui import dialogs


class DialogsMixin:
    """MainWindow's Model and Help menu handlers (a mixin: the window supplies the rest)."""

    def load_model_dialog(self) -> None:
        start = str(Path(self.settings.last_model).parent) if self.settings.last_model else ""
        p, _ = QFileDialog.getOpenFileName(
            self, "Load model bundle", start, "Model bundle (*.safetensors);;All files (*)"
        )
        if p:
            self.load_model(p)

    def load_model(self, path: str | Path) -> None:
        self.settings.last_model = str(path)
        self.load_model_as_set(path)

    def load_model_as_set(self, path: str | Path | None) -> None:
        """Load ``path`` (None: the default) on the device and arithmetic the settings name."""
        s = self.settings
        int8 = {True: "+int8", False: "+noint8", None: ""}[s.int8_choice]
        self.controller.load_model(path, s.device, s.precision + int8)

    def _reload_model(self) -> None:
        if self.controller.engine is not None:
            self.load_model_as_set(self.settings.last_model or None)

    def set_device(self, device: str) -> None:
        self.settings.device = device
        self._reload_model()

    def set_bf16(self, on: bool) -> None:
        """Allow bf16 ("auto") or force fp32; reloads a loaded model."""
        self.settings.precision = "auto" if on else "fp32"
        self._reload_model()

    def set_int8(self, on: bool) -> None:
        """int8 arithmetic on the CPU (faster, approximate) or not; reloads a loaded model."""
        self.settings.int8 = on
        self._reload_model()

    def show_model_card(self) -> None:
        eng = self.controller.engine
        body = dialogs.model_card_html(
            eng.config if eng else None,
            eng.identity.sha256 if eng else "",
            Path(self.settings.last_model)
            if eng and self.settings.last_model
            else _default_model_if_exists(),
            eng.device if eng else "",
        )
        dlg = dialogs.HtmlDialog("About this model", body, self)
        dlg.open()
        self._last_dialog = dlg

    def show_mirage_dialog(self) -> None:
        dlg = dialogs.HtmlDialog(
            "Use MIRAGE weights", dialogs.mirage_html(), self, extra_button="Choose a file…"
        )
        dlg.accepted.connect(self._choose_mirage_file)
        dlg.open()
        self._last_dialog = dlg

    def _choose_mirage_file(self) -> None:
        p, _ = QFileDialog.getOpenFileName(
            self,
            "Choose MIRAGE weights or a fine-tuned bundle",
            "",
            "Weights (*.safetensors *.pth);;All files (*)",
        )
        if p:
            self.use_mirage_file(p)

    def use_mirage_file(self, path: str | Path) -> None:
        """A fine-tuned bundle is loaded; official (not fine-tuned) weights get the explanation."""
        path = Path(path)
        try:
            from octviewer.core.model.bundle import read_bundle_config

            read_bundle_config(path)
        except octviewer.OCTViewerError as exc:
            self.show_error(
                "These are not fine-tuned weights",
                f"{exc}\n\nThe official MIRAGE files are pretrained encoders without a classifier. "
                f"Fine-tune them once with:\n\n{finetune_command(path)}\n\n"
                "then load the resulting bundle with File > Load model….",
            )
            return
        self.load_model(path)

    def show_about(self) -> None:
        dlg = dialogs.HtmlDialog("About octviewer", dialogs.about_html(), self)
        dlg.open()
        self._last_dialog = dlg

    def show_log_folder(self) -> None:
        from octviewer.ui.logging_setup import log_dir

        d = log_dir()
        d.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(d)))

    def show_shortcuts(self) -> None:
        rows = []
        for a in self.actions():
            if not a.shortcut().isEmpty():
                rows.append(
                    f"<tr><td><b>{a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}</b></td><td>{a.text().replace('&', '')}</td></tr>"
                )
        body = (
            "<h3>Keyboard and mouse</h3><table cellspacing='4'>" + "".join(rows) + "</table>"
            "<p>Mouse: wheel zooms around the cursor (on volumes it steps frames; Ctrl+wheel zooms), "
            "left-drag pans, right-drag adjusts brightness (up/down) and contrast (left/right). "
            "Drop files or folders anywhere on the window to open them.</p>"
        )
        dlg = dialogs.HtmlDialog("Keyboard shortcuts", body, self)
        dlg.open()
        self._last_dialog = dlg


def _default_model_if_exists() -> Path | None:
    from octviewer.resources import default_model_path

    p = default_model_path()
    return p if p.is_file() else None
