"""Opening scans from the main window.

File and folder dialogs, the sample and recent-file menus, and the choice among a folder's series.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QInputDialog

SCAN_FILTER = "Scans (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff *.bmp *.vol *.e2e *.E2E *.fda);;All files (*)"


class OpeningMixin:
    """MainWindow's file opening (a mixin: the window supplies settings, controller and menus)."""

    def open_paths(self, paths: Sequence[str | Path]) -> list[int]:
        paths = [Path(p) for p in paths]
        for p in paths:
            self.settings.add_recent(p)
        self._fill_recent()
        return self.controller.open_paths(paths)

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open scans", self.settings.open_dir, SCAN_FILTER
        )
        if files:
            self.settings.open_dir = str(Path(files[0]).parent)
            self.open_paths(files)

    def open_folder_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(
            self, "Open a DICOM series or image folder", self.settings.open_dir
        )
        if d:
            self.settings.open_dir = str(Path(d).parent)
            self.open_paths([d])

    def _fill_samples(self) -> None:
        from octviewer.resources import sample_scans

        self.sample_menu.clear()
        files = sample_scans()
        for p in files:
            a = self.sample_menu.addAction(p.name)
            a.triggered.connect(lambda _=False, path=p: self.open_paths([path]))
        if not files:
            a = self.sample_menu.addAction("(no sample scans installed)")
            a.setEnabled(False)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for r in self.settings.recent_files:
            a = self.recent_menu.addAction(r)
            a.triggered.connect(lambda _=False, path=r: self.open_paths([path]))
        if not self.settings.recent_files:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list").triggered.connect(
                lambda: (self.settings.clear_recent(), self._fill_recent())
            )

    def _on_series_needed(self, uid: int, series: dict) -> None:
        key = self.choose_series(series)
        if key is not None:
            self.controller.open_series(uid, key)

    def choose_series(self, series: dict[str, str]) -> str | None:
        keys = list(series)
        labels = [series[k] for k in keys]
        label, ok = QInputDialog.getItem(
            self,
            "Choose a series",
            "This folder holds several series. Which one should be opened?",
            labels,
            0,
            False,
        )
        return keys[labels.index(label)] if ok and label in labels else None
