"""The main window's actions, declared as data and built onto the window by one function.

Each :class:`ActionSpec` becomes ``window.<attr>``. A plain action calls its handler when
triggered; a checkable one calls it with the new state when toggled, starts from a value read
from :class:`~octviewer.ui.settings.Settings`, and gets a status tip only. The two exclusive
choice groups (heatmap contour lines, compute device) are built by their own small functions
at their place in :data:`ACTIONS`, so the window's actions keep their order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QStyle

from octviewer.ui.settings import DEVICES, Settings

SP = QStyle.StandardPixmap
SUSPICIOUS_TIP = (
    "Show the frame with the lowest probability of NORMAL; frames that are not assessed "
    "(not a B-scan, unlike the training data) are skipped"
)
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


@dataclass(frozen=True)
class ActionSpec:
    """One action of the main window.

    ``handler`` is a dotted attribute path on the window (``"image_view.fit"``). With
    ``args`` set, the handler is looked up when the action fires and called with them;
    without, the bound handler found at build time is connected directly.
    """

    attr: str
    text: str
    handler: str
    shortcut: str | QKeySequence.StandardKey | None = None
    tip: str = ""
    icon: QStyle.StandardPixmap | None = None
    args: tuple[Any, ...] | None = None
    checked: Callable[[Settings], bool] | None = None  # set: a checkable action
    on_window: bool = True  # added to the window, so its shortcut works without the menu


@dataclass(frozen=True)
class Group:
    """A place in :data:`ACTIONS` where an exclusive choice group is built."""

    build: Callable[[Any], None]


def _resolve(window: Any, path: str) -> Any:
    obj = window
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def _build_contours(window: Any) -> None:
    window.contour_group = QActionGroup(window)
    window.contour_actions = {}
    saved = window.settings.overlay_contours
    for label, levels in CONTOUR_CHOICES:
        a = QAction(label, window, checkable=True)
        a.setChecked(
            levels == saved or (not levels and saved not in dict(CONTOUR_CHOICES).values())
        )
        a.triggered.connect(lambda _=False, lv=levels: window._on_contours(lv))
        window.contour_group.addAction(a)
        window.contour_actions[levels] = a


def _build_devices(window: Any) -> None:
    window.device_group = QActionGroup(window)
    window.device_actions = {}
    for d in DEVICES:
        a = QAction(DEVICE_LABELS[d], window, checkable=True)
        a.setChecked(d == window.settings.device)
        a.triggered.connect(lambda _=False, dev=d: window.set_device(dev))
        window.device_group.addAction(a)
        window.device_actions[d] = a


ACTIONS: tuple[ActionSpec | Group, ...] = (
    # File
    ActionSpec("act_open", "&Open files…", "open_files_dialog", QKeySequence.StandardKey.Open,
               "Open scan files", SP.SP_DialogOpenButton, args=()),
    ActionSpec("act_open_folder", "Open &folder…", "open_folder_dialog", "Ctrl+Shift+O",
               "Open a DICOM series or image stack folder", SP.SP_DirOpenIcon, args=()),
    ActionSpec("act_export", "&Export report…", "export_current", "Ctrl+E",
               "Save the PNG report of the current scan/frame", SP.SP_DialogSaveButton,
               args=()),
    ActionSpec("act_export_all", "Export &all reports…", "export_all", "Ctrl+Shift+E",
               "Save a PNG report for every analysed scan", args=()),
    ActionSpec("act_archive_open", "Open from &archive…", "archive.open_from_archive",
               tip="Search a PACS (DICOMweb or DIMSE) and open a study's scans", args=()),
    ActionSpec("act_archive_send", "Send results to archi&ve", "archive.send_results",
               tip="File the report (Encapsulated PDF) and the result (DICOM SR) into the "
               "scan's study, with the patient's identity", args=()),
    ActionSpec("act_archive_nodes", "Archive &nodes…", "archive.manage_nodes",
               tip="Add, test and remove archives; clear the archive cache", args=()),
    ActionSpec("act_identity", "Include patient identifiers in reports", "_on_identity",
               checked=lambda s: s.include_identity, on_window=False),
    ActionSpec("act_restore", "Restore &last session", "restorer.restore_last_session",
               tip="Reopen the scans that were open when octviewer last ran, with their "
               "results from the cache", args=()),
    ActionSpec("act_close", "&Close scan", "close_current", QKeySequence.StandardKey.Close,
               "Remove the current scan from the list", args=()),
    ActionSpec("act_load_model", "Load &model…", "load_model_dialog", "Ctrl+M",
               "Load a model bundle (.safetensors)", args=()),
    ActionSpec("act_quit", "&Quit", "close", QKeySequence.StandardKey.Quit),
    # View
    ActionSpec("act_fit", "&Fit to window", "image_view.fit", "F",
               "Fit the image to the window"),
    ActionSpec("act_actual", "&1:1 (actual pixels)", "image_view.actual_size", "1",
               "One image pixel per screen pixel"),
    ActionSpec("act_zoom_in", "Zoom &in", "image_view.zoom", QKeySequence.StandardKey.ZoomIn,
               args=(1.25,)),
    ActionSpec("act_zoom_out", "Zoom &out", "image_view.zoom", QKeySequence.StandardKey.ZoomOut,
               args=(0.8,)),
    ActionSpec("act_reset_wl", "&Reset brightness/contrast", "image_view.reset_window_level",
               "R", "Reset window/level (right-drag on the image adjusts it)"),
    ActionSpec("act_aspect", "&Physical proportions (pixel spacing)", "_on_aspect", "A",
               "Off: the device's pixel grid, as the device shows B-scans. On: true proportions.",
               checked=lambda s: s.physical_aspect),
    Group(_build_contours),
    ActionSpec("act_map", "Disease &map on the localizer", "_on_map", "M",
               checked=lambda s: s.disease_map),
    ActionSpec("act_map_attention", "Attention along the B-scan &lines", "_on_map",
               checked=lambda s: s.map_attention, on_window=False),
    ActionSpec("act_overlay", "Show &heatmap", "set_overlay_visible", "H",
               checked=lambda s: s.overlay_visible),
    ActionSpec("act_next", "&Next frame", "step_frame", "Right", args=(1,)),
    ActionSpec("act_prev", "&Previous frame", "step_frame", "Left", args=(-1,)),
    ActionSpec("act_next10", "Forward 10 frames", "step_frame", "PgDown", args=(10,)),
    ActionSpec("act_prev10", "Back 10 frames", "step_frame", "PgUp", args=(-10,)),
    ActionSpec("act_first", "First frame", "set_frame", "Home", args=(0,)),
    ActionSpec("act_last", "Last frame", "set_frame", "End", args=(10**9,)),
    ActionSpec("act_suspicious", "Most &suspicious frame", "go_most_suspicious", "S",
               SUSPICIOUS_TIP),
    # Analysis
    ActionSpec("act_reanalyse", "&Analyse again", "reanalyse_current", "Ctrl+R",
               "Run the model on the current scan again"),
    ActionSpec("act_cancel", "&Cancel analysis", "controller.cancel_analysis", "Esc",
               "Stop the running analysis"),
    ActionSpec("act_cache", "Reuse results from the result cac&he", "restorer.set_cache_enabled",
               tip="A scan analysed before with the same model and arithmetic shows its stored "
               "result at once (docs/CACHE.md)",
               checked=lambda s: s.result_cache, on_window=False),
    ActionSpec("act_clear_cache", "C&lear result cache", "restorer.clear_result_cache",
               tip="Delete every stored result (the cache folder is emptied)", args=()),
    # Model
    ActionSpec("act_model_card", "About this &model…", "show_model_card"),
    ActionSpec("act_mirage", "Use &MIRAGE weights…", "show_mirage_dialog"),
    Group(_build_devices),
    ActionSpec("act_bf16", "Faster &bf16 arithmetic where the processor supports it",
               "set_bf16",
               tip="bf16 on CPUs with AVX512-BF16/AMX and on GPUs; off: full fp32 precision "
               "everywhere",
               checked=lambda s: s.precision == "auto", on_window=False),
    ActionSpec("act_int8", "Fastest: &int8 arithmetic on the CPU (approximate)", "set_int8",
               tip=INT8_TIP, checked=lambda s: s.int8, on_window=False),
    # Help
    ActionSpec("act_about", "&About octviewer", "show_about"),
    ActionSpec("act_logs", "Show &log folder", "show_log_folder"),
    ActionSpec("act_shortcuts", "&Keyboard shortcuts", "show_shortcuts", "F1"),
)  # fmt: skip


def _plain(window: QMainWindow, spec: ActionSpec) -> QAction:
    a = QAction(spec.text, window)
    if spec.shortcut:
        a.setShortcut(QKeySequence(spec.shortcut))
    if spec.tip:
        a.setStatusTip(spec.tip)
        a.setToolTip(
            f"{spec.tip} ({a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
            if spec.shortcut
            else spec.tip
        )
    if spec.icon is not None:
        a.setIcon(window.style().standardIcon(spec.icon))
    if spec.args is None:
        a.triggered.connect(_resolve(window, spec.handler))
    else:
        a.triggered.connect(lambda: _resolve(window, spec.handler)(*spec.args))
    return a


def _checkable(window: Any, spec: ActionSpec) -> QAction:
    a = QAction(spec.text, window)
    a.setCheckable(True)
    if spec.shortcut:
        a.setShortcut(QKeySequence(spec.shortcut))
    if spec.tip:
        a.setStatusTip(spec.tip)
    a.setChecked(spec.checked(window.settings))
    a.toggled.connect(_resolve(window, spec.handler))
    return a


def build_actions(window: Any, specs: tuple[ActionSpec | Group, ...] = ACTIONS) -> None:
    """Create every action in ``specs`` on ``window`` (a MainWindow), in order."""
    for spec in specs:
        if isinstance(spec, Group):
            spec.build(window)
            continue
        a = _plain(window, spec) if spec.checked is None else _checkable(window, spec)
        if spec.on_window:
            window.addAction(a)
        setattr(window, spec.attr, a)
