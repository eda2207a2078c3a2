"""Frame navigation and the heatmap overlay of the main window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from octviewer.ui.result_panel import PREDICTED
from octviewer.viewer.events import Event, ViewChanged
from octviewer.viewer.presenters import NONE_ASSESSABLE

if TYPE_CHECKING:
    from octviewer.core.results import FrameResult

#: The view state's fields that only the heatmap overlay reads.
OVERLAY_FIELDS = frozenset(
    {"overlay_visible", "opacity", "colormap", "contours", "cam_class", "show_unreliable"}
)


class FramesMixin:
    """MainWindow's frame stepping and overlay settings (a mixin: the window supplies the views)."""

    def _shown_result(self) -> FrameResult | None:
        """The result of the frame on screen, when it has one."""
        entry = self.current_entry()
        if entry is None or entry.result is None:
            return None
        try:
            return entry.result.frame(self.view.frame)
        except KeyError:
            return None

    def _cam_class(self) -> int | None:
        fr = self._shown_result()
        if fr is None:
            return None
        return fr.predicted_index if self.view.cam_class is None else self.view.cam_class

    def _on_cam_class(self, selected: int) -> None:
        self.view.cam_class = None if selected == PREDICTED else selected

    def _refresh_overlay(self) -> None:
        entry = self.current_entry()
        cam = None
        # a frame that is not assessed gets its heatmap only after "Show model output anyway"
        view, fr = self.view, self._shown_result()
        revealed = fr is not None and (fr.assessable or view.show_unreliable)
        visible = view.overlay_visible and revealed
        cls = self._cam_class()
        if entry is not None and cls is not None and visible:
            cam = self.controller.request_cam(entry.uid, view.frame, cls)
        self.image_view.set_overlay(cam, view.colormap, view.opacity, visible, view.contours)

    def set_frame(self, frame: int) -> None:
        entry = self.current_entry()
        if entry is None or entry.scan is None:
            return
        self.view.frame = self.view.clamp(frame, entry.scan.n_frames)  # redrawn on its event

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
        self.view.overlay_visible = visible

    def _on_opacity(self, v: float) -> None:
        self.view.set_opacity(v)

    def _on_colormap(self, name: str) -> None:
        self.view.set_colormap(name)

    def _on_contours(self, levels: tuple[float, ...]) -> None:
        self.view.contours = levels

    def _on_aspect(self, on: bool) -> None:
        self.view.physical_aspect = on

    def _on_view_changed(self, event: Event) -> None:
        """One redraw per change of the view state: what the changed fields touch."""
        if not isinstance(event, ViewChanged):
            return
        changed = event.fields
        if changed & {"uid", "frame", "physical_aspect"}:
            self._show_current(new_scan=bool(changed & {"uid", "physical_aspect"}))
        elif changed & OVERLAY_FIELDS:
            self._refresh_overlay()
        elif changed & {"disease_map", "map_attention"}:
            self._refresh_map()
