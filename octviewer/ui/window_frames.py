"""Frame navigation and the heatmap overlay of the main window."""

from __future__ import annotations

from octviewer.ui.result_panel import PREDICTED
from octviewer.viewer.presenters import NONE_ASSESSABLE


class FramesMixin:
    """MainWindow's frame stepping and overlay settings (a mixin: the window supplies the views)."""

    def _cam_class(self) -> int | None:
        entry = self.current_entry()
        if entry is None or entry.result is None:
            return None
        try:
            fr = entry.result.frame(self.view.frame)
        except KeyError:
            return None
        sel = self.result_panel.selected_cam_class()
        return fr.predicted_index if sel == PREDICTED else sel

    def _refresh_overlay(self) -> None:
        entry = self.current_entry()
        cam = None
        # a frame that is not assessed gets its heatmap only after "Show model output anyway"
        view = self.view
        visible = view.overlay_visible and self.result_panel.output_revealed
        cls = self._cam_class()
        if entry is not None and cls is not None and visible:
            cam = self.controller.request_cam(entry.uid, view.frame, cls)
        self.image_view.set_overlay(cam, view.colormap, view.opacity, visible, view.contours)

    def set_frame(self, frame: int) -> None:
        entry = self.current_entry()
        if entry is None or entry.scan is None:
            return
        frame = self.view.clamp(frame, entry.scan.n_frames)
        if frame == self.view.frame and self.slider.value() == frame:
            return
        self.view.frame = frame
        self._show_current()

    def step_frame(self, delta: int) -> None:
        entry = self.current_entry()
        if entry is not None and entry.scan is not None:
            self.set_frame(self.view.stepped(delta, entry.scan.n_frames))

    @property
    def current_frame(self) -> int:
        return self.view.frame

    def go_most_suspicious(self) -> None:
        entry = self.current_entry()
        if entry is not None and entry.result is not None:
            if not entry.result.assessable_frames:
                self.statusBar().showMessage(NONE_ASSESSABLE, 8000)
                return
            self.set_frame(entry.result.most_suspicious_frame())

    def set_overlay_visible(self, visible: bool) -> None:
        for w in (self.act_overlay, self.result_panel.overlay_box):
            if w.isChecked() != visible:
                w.blockSignals(True)
                w.setChecked(visible)
                w.blockSignals(False)
        self.view.overlay_visible = self.settings.overlay_visible = visible
        self._refresh_overlay()

    def _on_opacity(self, v: float) -> None:
        self.view.set_opacity(v)
        self.settings.overlay_opacity = v
        self._refresh_overlay()

    def _on_colormap(self, name: str) -> None:
        self.view.set_colormap(name)
        self.settings.overlay_colormap = name
        self._refresh_overlay()

    def _on_contours(self, levels: tuple[float, ...]) -> None:
        self.view.contours = self.settings.overlay_contours = levels
        self._refresh_overlay()

    def _on_aspect(self, on: bool) -> None:
        self.view.physical_aspect = self.settings.physical_aspect = on
        self._show_current(new_scan=True)
