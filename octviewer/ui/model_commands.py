"""The Model and Help menus' handlers, as plain functions of the window: loading a bundle, the
compute device and arithmetic, the model card, MIRAGE weights, and the about, log folder and
keyboard shortcut dialogs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog

import octviewer
from octviewer.core.model.card import finetune_command
from octviewer.ui import dialogs
from octviewer.ui.commands import shortcut_rows

if TYPE_CHECKING:
    from octviewer.ui.window_face import Window


# --- the model ---------------------------------------------------------------------------------------
def load_model_dialog(window: Window) -> None:
    last = window.settings.last_model
    start = str(Path(last).parent) if last else ""
    p, _ = QFileDialog.getOpenFileName(
        window, "Load model bundle", start, "Model bundle (*.safetensors);;All files (*)"
    )
    if p:
        load_model(window, p)


def load_model(window: Window, path: str | Path) -> None:
    """Load the bundle at ``path`` and remember it."""
    window.settings.last_model = str(path)
    load_model_as_set(window, path)


def load_model_as_set(window: Window, path: str | Path | None) -> None:
    """Load ``path`` (None: the default) on the device and arithmetic the settings name."""
    s = window.settings
    int8 = {True: "+int8", False: "+noint8", None: ""}[s.int8_choice]
    window.controller.load_model(path, s.device, s.precision + int8)


def reload_model(window: Window) -> None:
    if window.controller.engine is not None:
        load_model_as_set(window, window.settings.last_model or None)


def set_device(window: Window, device: str) -> None:
    window.settings.device = device
    reload_model(window)


def set_bf16(window: Window, on: bool) -> None:
    """Allow bf16 ("auto") or force fp32; reloads a loaded model."""
    window.settings.precision = "auto" if on else "fp32"
    reload_model(window)


def set_int8(window: Window, on: bool) -> None:
    """int8 arithmetic on the CPU (faster, approximate) or not; reloads a loaded model."""
    window.settings.int8 = on
    reload_model(window)


def show_model_card(window: Window) -> None:
    eng, last = window.controller.engine, window.settings.last_model
    body = dialogs.model_card_html(
        eng.config if eng else None,
        eng.identity.sha256 if eng else "",
        Path(last) if eng and last else default_model_if_exists(),
        eng.device if eng else "",
    )
    _open(window, dialogs.HtmlDialog("About this model", body, window))


def show_mirage_dialog(window: Window) -> None:
    dlg = dialogs.HtmlDialog(
        "Use MIRAGE weights", dialogs.mirage_html(), window, extra_button="Choose a file…"
    )
    dlg.accepted.connect(lambda: choose_mirage_file(window))
    _open(window, dlg)


def choose_mirage_file(window: Window) -> None:
    p, _ = QFileDialog.getOpenFileName(
        window,
        "Choose MIRAGE weights or a fine-tuned bundle",
        "",
        "Weights (*.safetensors *.pth);;All files (*)",
    )
    if p:
        use_mirage_file(window, p)


def use_mirage_file(window: Window, path: str | Path) -> None:
    """A fine-tuned bundle is loaded; official (not fine-tuned) weights get the explanation."""
    path = Path(path)
    try:
        from octviewer.core.model.bundle import read_bundle_config

        read_bundle_config(path)
    except octviewer.OCTViewerError as exc:
        window.show_error(
            "These are not fine-tuned weights",
            f"{exc}\n\nThe official MIRAGE files are pretrained encoders without a classifier. "
            f"Fine-tune them once with:\n\n{finetune_command(path)}\n\n"
            "then load the resulting bundle with File > Load model….",
        )
        return
    load_model(window, path)


def default_model_if_exists() -> Path | None:
    from octviewer.resources import default_model_path

    p = default_model_path()
    return p if p.is_file() else None


# --- help ---------------------------------------------------------------------------------------------
def show_about(window: Window) -> None:
    _open(window, dialogs.HtmlDialog("About octviewer", dialogs.about_html(), window))


def show_log_folder(window: Window) -> None:
    from octviewer.ui.logging_setup import log_dir

    d = log_dir()
    d.mkdir(parents=True, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(d)))


def show_shortcuts(window: Window) -> None:
    rows = "".join(
        f"<tr><td><b>{key}</b></td><td>{text}</td></tr>" for key, text in shortcut_rows(window)
    )
    body = (
        "<h3>Keyboard and mouse</h3><table cellspacing='4'>" + rows + "</table>"
        "<p>Mouse: wheel zooms around the cursor (on volumes it steps frames; Ctrl+wheel zooms), "
        "left-drag pans, right-drag adjusts brightness (up/down) and contrast (left/right). "
        "Drop files or folders anywhere on the window to open them.</p>"
    )
    _open(window, dialogs.HtmlDialog("Keyboard shortcuts", body, window))


def _open(window: Window, dlg: dialogs.HtmlDialog) -> None:
    """Open ``dlg`` (non-modal) and keep it alive while it shows."""
    dlg.open()
    window.last_dialog = dlg
