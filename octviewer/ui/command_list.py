"""Every command of the main window, as records (:mod:`octviewer.ui.commands`), and the menu
bar's layout: which menus exist, in which order, and what the submenus are.

The tuple's order is the order actions are added to the window (the F1 shortcut list); where
each appears in the menus and the toolbar is its :class:`~octviewer.ui.commands.Place`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QStyle

from octviewer.ui import archive_dialogs as archive
from octviewer.ui import file_commands as files
from octviewer.ui import model_commands as model
from octviewer.ui.commands import TOOLBAR, Command, Place, Submenu
from octviewer.ui.settings import DEVICES
from octviewer.viewer.presenters import SUSPICIOUS_TIP

if TYPE_CHECKING:
    from octviewer.ui.window_face import Window

SP = QStyle.StandardPixmap
Key = QKeySequence.StandardKey
INT8_TIP = (
    "int8 convolutions for models calibrated for it (the default model): about 2x faster than "
    "bf16 on the CPU; probabilities can move by a few hundredths and results say 'int8'. "
    "On by default for a model validated in int8 on this kind of CPU; off: float32 or bf16."
)
CONTOUR_CHOICES: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("No contour lines", ()),
    ("Contour at 50 % attention", (0.5,)),
    ("Contours at 50 % and 80 %", (0.5, 0.8)),
    ("Contours at 25, 50 and 75 %", (0.25, 0.5, 0.75)),
)
DEVICE_LABELS = {
    "auto": "Automatic (GPU if available)",
    "cpu": "CPU",
    "cuda": "NVIDIA GPU (CUDA)",
    "mps": "Apple GPU (MPS)",
}
#: The menu bar's menus, in order: (id, title).
MENU_TITLES: tuple[tuple[str, str], ...] = (
    ("File", "&File"),
    ("View", "&View"),
    ("Analysis", "&Analysis"),
    ("Model", "&Model"),
    ("Help", "&Help"),
)
SUBMENUS: tuple[Submenu, ...] = (
    Submenu("Samples", "Open &sample", Place("File", 0, 2), files.fill_samples),
    Submenu("Recent", "Open &recent", Place("File", 0, 3), files.fill_recent),
    Submenu("Page", "Report &page size", Place("File", 1, 3)),
    Submenu("Contours", "Heatmap &contour lines", Place("View", 1, 3)),
    Submenu("Device", "&Device", Place("Model", 0, 3)),
)


# --- what the view commands do: write the view state, the window redraws on its event ----------
def _set_identity(w: Window, on: bool) -> None:
    w.view.include_identity = on


def _set_aspect(w: Window, on: bool) -> None:
    w.view.physical_aspect = on


def _set_map(w: Window, on: bool) -> None:
    w.view.disease_map = on


def _set_map_attention(w: Window, on: bool) -> None:
    w.view.map_attention = on


def _set_overlay(w: Window, on: bool) -> None:
    w.view.overlay_visible = on


def _set_contours(w: Window, levels: tuple[float, ...]) -> None:
    w.view.contours = levels


def _contours_checked(w: Window, levels: tuple[float, ...]) -> bool:
    saved = w.view.contours
    return levels == saved or (not levels and saved not in dict(CONTOUR_CHOICES).values())


CONTOURS = tuple(
    Command(f"contours{i}", label, partial(_set_contours, levels=levels),
            (Place("View/Contours", 0, i),),
            checked=partial(_contours_checked, levels=levels), choice="contours", on_window=False)
    for i, (label, levels) in enumerate(CONTOUR_CHOICES)
)  # fmt: skip
DEVICE_CHOICES = tuple(
    Command(f"device_{d}", DEVICE_LABELS[d], partial(model.set_device, device=d),
            (Place("Model/Device", 0, i),),
            checked=lambda w, d=d: w.settings.device == d, choice="device", on_window=False)
    for i, d in enumerate(DEVICES)
)  # fmt: skip
PAGE_LABELS = (("A4", "&A4 (210 × 297 mm)"), ("Letter", "US &Letter (8.5 × 11 in)"))
PAGE_CHOICES = tuple(
    Command(f"page_{p.lower()}", label, partial(files.set_report_page, page=p),
            (Place("File/Page", 0, i),), tip=f"Reports (PNG and PDF) on {p} pages",
            checked=lambda w, p=p: w.settings.report_page == p, choice="page", on_window=False)
    for i, (p, label) in enumerate(PAGE_LABELS)
)  # fmt: skip

COMMANDS: tuple[Command, ...] = (
    # File
    Command("open", "&Open files…", files.open_files_dialog,
            (Place("File", 0, 0), Place(TOOLBAR, 0, 0)), Key.Open, "Open scan files",
            SP.SP_DialogOpenButton),
    Command("open_folder", "Open &folder…", files.open_folder_dialog,
            (Place("File", 0, 1), Place(TOOLBAR, 0, 1)), "Ctrl+Shift+O",
            "Open a DICOM series or image stack folder", SP.SP_DirOpenIcon),
    Command("export", "&Export report…", files.export_current,
            (Place("File", 1, 0), Place(TOOLBAR, 0, 2)), "Ctrl+E",
            "Save the PNG report of the current scan/frame", SP.SP_DialogSaveButton),
    Command("export_all", "Export &all reports…", files.export_all, (Place("File", 1, 1),),
            "Ctrl+Shift+E", "Save a PNG report for every analysed scan"),
    Command("identity", "Include patient identifiers in reports", _set_identity,
            (Place("File", 1, 2),), checked=lambda w: w.view.include_identity, on_window=False),
    *PAGE_CHOICES,
    Command("restore", "Restore &last session", lambda w: w.restorer.restore_last_session(),
            (Place("File", 0, 4),),
            tip="Reopen the scans that were open when octviewer last ran, with their "
            "results from the cache", enabled=lambda w: bool(w.restorer.previous)),
    Command("close", "&Close scan", lambda w: w.close_current(), (Place("File", 2, 1),),
            Key.Close, "Remove the current scan from the list"),
    Command("load_model", "Load &model…", model.load_model_dialog,
            (Place("File", 2, 0), Place("Model", 0, 0)), "Ctrl+M",
            "Load a model bundle (.safetensors)"),
    Command("archive_open", "Open from &archive…", archive.open_from_archive,
            (Place("File", 3, 0),),
            tip="Search a PACS (DICOMweb or DIMSE) and open a study's scans"),
    Command("archive_send", "Send results to archi&ve", archive.send_results,
            (Place("File", 3, 1),),
            tip="File the report (Encapsulated PDF) and the result (DICOM SR) into the scan's "
            "study, with the patient's identity"),
    Command("archive_nodes", "Archive &nodes…", archive.manage_nodes, (Place("File", 3, 2),),
            tip="Add, test and remove archives; clear the archive cache"),
    Command("quit", "&Quit", lambda w: w.close(), (Place("File", 4, 0),), Key.Quit),
    # View
    Command("fit", "&Fit to window", lambda w: w.image_view.fit(),
            (Place("View", 0, 0), Place(TOOLBAR, 1, 0)), "F", "Fit the image to the window"),
    Command("actual", "&1:1 (actual pixels)", lambda w: w.image_view.actual_size(),
            (Place("View", 0, 1), Place(TOOLBAR, 1, 1)), "1",
            "One image pixel per screen pixel"),
    Command("zoom_in", "Zoom &in", lambda w: w.image_view.zoom(1.25), (Place("View", 0, 2),),
            Key.ZoomIn),
    Command("zoom_out", "Zoom &out", lambda w: w.image_view.zoom(0.8), (Place("View", 0, 3),),
            Key.ZoomOut),
    Command("reset_wl", "&Reset brightness/contrast",
            lambda w: w.image_view.reset_window_level(), (Place("View", 1, 0),), "R",
            "Reset window/level (right-drag on the image adjusts it)"),
    Command("aspect", "&Physical proportions (pixel spacing)", _set_aspect,
            (Place("View", 1, 1),), "A",
            "Off: the device's pixel grid, as the device shows B-scans. On: true proportions.",
            checked=lambda w: w.view.physical_aspect),
    *CONTOURS,
    Command("map", "Disease &map on the localizer", _set_map, (Place("View", 1, 4),), "M",
            checked=lambda w: w.view.disease_map),
    Command("map_attention", "Attention along the B-scan &lines", _set_map_attention,
            (Place("View", 1, 5),), checked=lambda w: w.view.map_attention, on_window=False),
    Command("overlay", "Show &heatmap", _set_overlay,
            (Place("View", 1, 2), Place(TOOLBAR, 1, 2)), "H",
            checked=lambda w: w.view.overlay_visible),
    Command("next", "&Next frame", lambda w: w.step_frame(1), (Place("View", 2, 1),), "Right"),
    Command("prev", "&Previous frame", lambda w: w.step_frame(-1), (Place("View", 2, 0),),
            "Left"),
    Command("next10", "Forward 10 frames", lambda w: w.step_frame(10), (), "PgDown"),
    Command("prev10", "Back 10 frames", lambda w: w.step_frame(-10), (), "PgUp"),
    Command("first", "First frame", lambda w: w.set_frame(0), (Place("View", 2, 2),), "Home"),
    Command("last", "Last frame", lambda w: w.set_frame(10**9), (Place("View", 2, 3),), "End"),
    Command("suspicious", "Most &suspicious frame", lambda w: w.go_most_suspicious(),
            (Place("View", 2, 4),), "S", SUSPICIOUS_TIP),
    # Analysis
    Command("reanalyse", "&Analyse again", lambda w: w.reanalyse_current(),
            (Place("Analysis", 0, 0),), "Ctrl+R", "Run the model on the current scan again"),
    Command("cancel", "&Cancel analysis", lambda w: w.controller.cancel_analysis(),
            (Place("Analysis", 0, 1),), "Esc", "Stop the running analysis"),
    Command("cache", "Reuse results from the result cac&he",
            lambda w, on: w.restorer.set_cache_enabled(on), (Place("Analysis", 1, 0),),
            tip="A scan analysed before with the same model and arithmetic shows its stored "
            "result at once (docs/CACHE.md)",
            checked=lambda w: w.settings.result_cache, on_window=False),
    Command("clear_cache", "C&lear result cache", lambda w: w.restorer.clear_result_cache(),
            (Place("Analysis", 1, 1),),
            tip="Delete every stored result (the cache folder is emptied)"),
    # Model
    Command("model_card", "About this &model…", model.show_model_card, (Place("Model", 0, 1),)),
    Command("mirage", "Use &MIRAGE weights…", model.show_mirage_dialog,
            (Place("Model", 0, 2),)),
    *DEVICE_CHOICES,
    Command("bf16", "Faster &bf16 arithmetic where the processor supports it", model.set_bf16,
            (Place("Model/Device", 1, 0),),
            tip="bf16 on CPUs with AVX512-BF16/AMX and on GPUs; off: full fp32 precision "
            "everywhere",
            checked=lambda w: w.settings.precision == "auto", on_window=False),
    Command("int8", "Fastest: &int8 arithmetic on the CPU (approximate)", model.set_int8,
            (Place("Model/Device", 1, 1),), tip=INT8_TIP,
            checked=lambda w: w.settings.int8, on_window=False),
    # Help
    Command("about", "&About octviewer", model.show_about, (Place("Help", 0, 2),)),
    Command("logs", "Show &log folder", model.show_log_folder, (Place("Help", 0, 1),)),
    Command("shortcuts", "&Keyboard shortcuts", model.show_shortcuts, (Place("Help", 0, 0),),
            "F1"),
)  # fmt: skip
