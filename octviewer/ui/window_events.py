"""How the main window is told: each event of the session (:mod:`octviewer.viewer.events`) and
each change of the view state leads to one redraw of what it touches.

:class:`WindowEvents` is the window's one subscriber: it routes an event to the views that
draw it (the scan list gets the entry the event carries; the status area a
:class:`~octviewer.ui.status_area.StatusState`; the scan screen and the result panel the
window's :meth:`~octviewer.ui.main_window.Window.redraw`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from octviewer.ui import file_commands as files
from octviewer.ui.status_area import StatusState
from octviewer.viewer import events as ev
from octviewer.viewer.presenters import compute_label
from octviewer.viewer.session import ModelState

if TYPE_CHECKING:
    from octviewer.ui.window_face import Window

#: The view state's fields that only the heatmap overlay reads.
OVERLAY_FIELDS = frozenset(
    {"overlay_visible", "opacity", "colormap", "contours", "cam_class", "show_unreliable"}
)
#: ... that only the disease map reads.
MAP_FIELDS = frozenset({"disease_map", "map_attention"})


class WindowEvents:
    """See the module docstring; connected on construction."""

    def __init__(self, window: Window) -> None:
        self.w = window
        self.status = StatusState()
        window.controller.events.connect(self.on_event)
        window.view.events.connect(self.on_view_changed)

    def on_event(self, event: ev.Event) -> None:
        w = self.w
        if isinstance(event, (ev.ScanAdded, ev.ScanChanged)):
            self._on_entry(event)
        elif isinstance(event, ev.ScanRemoved):
            self._on_removed(event.uid)
        elif isinstance(event, ev.AnalysisProgress):
            w.scan_list.render(event.entry)  # cheap: the list only, no full redraw per batch
            self._status(progress=(event.done, event.total))
        elif isinstance(event, ev.AnalysisRunning):
            self._status(running=event.running, progress=None)
        elif isinstance(event, ev.CamReady):
            self._on_cam(event)
        elif isinstance(event, ev.ModelChanged):
            self._on_model(event)
        elif isinstance(event, ev.ErrorRaised):
            w.show_error(event.title, event.message, event.details)
        elif isinstance(event, ev.SeriesNeeded):
            key = files.choose_series(w, event.series)
            if key is not None:
                w.controller.open_series(event.uid, key)
        elif isinstance(event, ev.ExportProgress):
            files.on_export_progress(w, event.done, event.total)
        elif isinstance(event, ev.ExportFinished):
            files.on_exported(w, event.paths)

    def on_view_changed(self, event: ev.Event) -> None:
        """One redraw per change of the view state: what the changed fields touch."""
        if not isinstance(event, ev.ViewChanged):
            return
        w, changed = self.w, event.fields
        if "overlay_visible" in changed:  # the menu's check and the panel's box agree
            on = w.view.overlay_visible
            for box in (w.act["overlay"], w.result_panel.overlay_box):
                box.blockSignals(True)
                box.setChecked(on)
                box.blockSignals(False)
        if changed & {"uid", "frame", "physical_aspect"}:
            w.redraw(new_scan=bool(changed & {"uid", "physical_aspect"}))
        elif changed & OVERLAY_FIELDS:
            w.refresh_overlay()
        elif changed & MAP_FIELDS:
            w.screen.render_map(w.shown())

    # --- the session's events ----------------------------------------------------------------------
    def _on_entry(self, event: ev.ScanAdded | ev.ScanChanged) -> None:
        w, entry = self.w, event.entry
        w.scan_list.render(entry)
        if isinstance(event, ev.ScanAdded):
            if w.view.uid is None:
                w.scan_list.select(entry.uid)
        elif entry.uid == w.view.uid:
            w.redraw()

    def _on_removed(self, uid: int) -> None:
        w = self.w
        w.scan_list.remove(uid)
        if uid == w.view.uid:
            nxt = w.scan_list.current_uid()
            if nxt is not None:
                w.show_entry(nxt)
            else:
                w.view.select(None)  # redrawn on its event

    def _on_cam(self, event: ev.CamReady) -> None:
        w = self.w
        if event.uid != w.view.uid:
            return
        shown = w.shown()
        if event.frame == w.view.frame and event.class_index == shown.cam_class:
            w.refresh_overlay(shown)
        if w.view.map_attention:
            w.screen.render_map(shown)

    def _on_model(self, event: ev.ModelChanged) -> None:
        w, eng = self.w, event.engine
        if event.state == ModelState.READY.value and eng is not None:
            where = compute_label(eng.device, eng.compute_dtype, eng.quantized)
            tip = f"Computes in {'int8' if eng.quantized else eng.compute_dtype}"
            self._status(model_text=event.text, device_text=f"Device: {where}", device_tip=tip)
            if w.settings.int8_choice is None:  # left to the model: show what it chose
                act = w.act["int8"]
                act.blockSignals(True)
                act.setChecked(eng.quantized)
                act.blockSignals(False)
            w.result_panel.show_model(eng.identity, where)
        else:
            self._status(model_text=event.text, device_text="")
            w.result_panel.show_model(None, extra=event.text)
        w.result_panel.render(w.shown())

    def _status(self, **changes: object) -> None:
        self.status = replace(self.status, **changes)  # type: ignore[arg-type]
        self.w.status.render(self.status)
