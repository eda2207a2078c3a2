"""Writing PNG reports from the main window: the current scan/frame, or every analysed scan."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QProgressDialog

from octviewer.ui.controller import default_report_name


class ReportsMixin:
    """MainWindow's report export (a mixin: the window supplies settings, controller and views)."""

    def _on_identity(self, on: bool) -> None:
        self.view.include_identity = self.settings.include_identity = on

    def export_current(self, path: str | Path | None = None) -> bool:
        """Export the current scan/frame's report; asks for a file name when ``path`` is None."""
        entry = self.current_entry()
        if entry is None or entry.result is None:
            self.show_error(
                "Nothing to export",
                "Open a scan and wait for its analysis before exporting a report.",
            )
            return False
        if path is None:
            start = Path(self.settings.export_dir or Path.home()) / default_report_name(
                entry, self.view.frame
            )
            p, chosen = QFileDialog.getSaveFileName(
                self, "Export report", str(start), "PNG image (*.png);;PDF, printable page (*.pdf)"
            )
            if not p:
                return False
            ext = ".pdf" if "pdf" in chosen.lower() or p.lower().endswith(".pdf") else ".png"
            path = p if p.lower().endswith(ext) else p + ext
            self.settings.export_dir = str(Path(path).parent)
        cls = self._cam_class()
        self.statusBar().showMessage("Writing report…")
        self.controller.export_report(
            entry.uid,
            self.view.frame,
            path,
            class_index=cls,
            include_identity=self.view.include_identity,
            look={**self.view.overlay_look(), "page": self.settings.report_page},
            show_unreliable=self.result_panel.show_anyway.isChecked(),
        )
        return True

    def export_all(self, directory: str | Path | None = None) -> bool:
        if directory is None:
            directory = QFileDialog.getExistingDirectory(
                self, "Export all reports to folder", self.settings.export_dir or str(Path.home())
            )
            if not directory:
                return False
            self.settings.export_dir = str(directory)
        uids = self.controller.export_all(
            directory, include_identity=self.view.include_identity, look=self.view.overlay_look()
        )
        if not uids:
            self.show_error("Nothing to export", "No scan has been analysed yet.")
            return False
        dlg = QProgressDialog("Writing reports…", "Cancel", 0, len(uids), self)
        dlg.setWindowTitle("Export all reports")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(300)
        dlg.canceled.connect(self.controller.cancel_export)
        self._export_dialog = dlg
        return True

    def _on_export_progress(self, done: int, total: int) -> None:
        if self._export_dialog is not None:
            self._export_dialog.setMaximum(total)
            self._export_dialog.setValue(done)

    def _on_exported(self, paths: list) -> None:
        if self._export_dialog is not None:
            self._export_dialog.reset()
            self._export_dialog = None
        if len(paths) == 1:
            self.statusBar().showMessage(f"Report saved: {paths[0]}", 8000)
        else:
            self.statusBar().showMessage(f"{len(paths)} reports saved", 8000)
