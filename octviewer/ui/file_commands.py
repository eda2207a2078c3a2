"""The File menu's handlers, as plain functions of the window: opening scans (dialogs, the
sample and recent-file menus, the choice among a folder's series) and writing PNG reports
(the current scan/frame, or every analysed scan, with a progress dialog)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMenu, QProgressDialog

from octviewer.viewer.work import ReportOptions, default_report_name

if TYPE_CHECKING:
    from octviewer.ui.window_face import Window

SCAN_FILTER = "Scans (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff *.bmp *.vol *.e2e *.E2E *.fda);;All files (*)"


# --- opening -----------------------------------------------------------------------------------------
def open_files_dialog(window: Window) -> None:
    s = window.settings
    files, _ = QFileDialog.getOpenFileNames(window, "Open scans", s.open_dir, SCAN_FILTER)
    if files:
        s.open_dir = str(Path(files[0]).parent)
        window.open_paths(files)


def open_folder_dialog(window: Window) -> None:
    s = window.settings
    d = QFileDialog.getExistingDirectory(window, "Open a DICOM series or image folder", s.open_dir)
    if d:
        s.open_dir = str(Path(d).parent)
        window.open_paths([d])


def fill_samples(window: Window, menu: QMenu) -> None:
    from octviewer.resources import sample_scans

    menu.clear()
    files = sample_scans()
    for p in files:
        a = menu.addAction(p.name)
        a.triggered.connect(lambda _=False, path=p: window.open_paths([path]))
    if not files:
        a = menu.addAction("(no sample scans installed)")
        a.setEnabled(False)


def fill_recent(window: Window, menu: QMenu) -> None:
    menu.clear()
    recent = window.settings.recent_files
    for r in recent:
        a = menu.addAction(r)
        a.triggered.connect(lambda _=False, path=r: window.open_paths([path]))
    if not recent:
        menu.addAction("(none)").setEnabled(False)
    else:
        menu.addSeparator()
        menu.addAction("Clear list").triggered.connect(
            lambda: (window.settings.clear_recent(), fill_recent(window, menu))
        )


def choose_series(window: Window, series: dict[str, str]) -> str | None:
    """Ask which of a folder's series to open; its key, or None when the user declines."""
    keys = list(series)
    labels = [series[k] for k in keys]
    label, ok = QInputDialog.getItem(
        window,
        "Choose a series",
        "This folder holds several series. Which one should be opened?",
        labels,
        0,
        False,
    )
    return keys[labels.index(label)] if ok and label in labels else None


# --- reports -----------------------------------------------------------------------------------------
def export_current(window: Window, path: str | Path | None = None) -> bool:
    """Export the current scan/frame's report; asks for a file name when ``path`` is None."""
    entry, view = window.current_entry(), window.view
    if entry is None or entry.result is None:
        window.show_error(
            "Nothing to export",
            "Open a scan and wait for its analysis before exporting a report.",
        )
        return False
    if path is None:
        name = default_report_name(entry, view.frame)
        start = Path(window.settings.export_dir or Path.home()) / name
        p, chosen = QFileDialog.getSaveFileName(
            window,
            "Export report",
            str(start),
            "PNG image (*.png);;PDF, printable page (*.pdf)",
        )
        if not p:
            return False
        ext = ".pdf" if "pdf" in chosen.lower() or p.lower().endswith(".pdf") else ".png"
        path = p if p.lower().endswith(ext) else p + ext
        window.settings.export_dir = str(Path(path).parent)
    options = ReportOptions(
        class_index=window.shown().cam_class,
        include_identity=view.include_identity,
        show_unreliable=view.show_unreliable,
        look={**view.overlay_look(), "page": window.settings.report_page},
    )
    window.status.say("Writing report…")
    window.controller.export_report(entry.uid, view.frame, path, options)
    return True


def set_report_page(window: Window, page: str) -> None:
    """The page size (``A4`` or ``Letter``) of every report the window writes, PNG and PDF, and
    of the PDF filed into an archive (the ``report/page`` setting)."""
    window.settings.report_page = page


def export_all(window: Window, directory: str | Path | None = None) -> bool:
    """One report per analysed scan into ``directory`` (asked for when None)."""
    if directory is None:
        directory = QFileDialog.getExistingDirectory(
            window, "Export all reports to folder", window.settings.export_dir or str(Path.home())
        )
        if not directory:
            return False
        window.settings.export_dir = str(directory)
    view = window.view
    options = ReportOptions(
        include_identity=view.include_identity,
        look={**view.overlay_look(), "page": window.settings.report_page},
    )
    uids = window.controller.export_all(directory, options)
    if not uids:
        window.show_error("Nothing to export", "No scan has been analysed yet.")
        return False
    dlg = QProgressDialog("Writing reports…", "Cancel", 0, len(uids), window)
    dlg.setWindowTitle("Export all reports")
    dlg.setWindowModality(Qt.WindowModality.WindowModal)
    dlg.setMinimumDuration(300)
    dlg.canceled.connect(window.controller.cancel_export)
    window.export_dialog = dlg
    return True


def on_export_progress(window: Window, done: int, total: int) -> None:
    if window.export_dialog is not None:
        window.export_dialog.setMaximum(total)
        window.export_dialog.setValue(done)


def on_exported(window: Window, paths: list[Path]) -> None:
    if window.export_dialog is not None:
        window.export_dialog.reset()
        window.export_dialog = None
    if len(paths) == 1:
        window.status.say(f"Report saved: {paths[0]}", 8000)
    else:
        window.status.say(f"{len(paths)} reports saved", 8000)
