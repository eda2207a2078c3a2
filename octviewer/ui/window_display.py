"""What the main window shows for the entry on screen: the frame, the volume bar, the
localizer with its disease map, and the result panel (texts from :mod:`~octviewer.viewer.presenters`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from octviewer.core.result_cache import cached_at_text
from octviewer.viewer.presenters import (
    NO_SCAN_TEXT,
    frame_label,
    result_placeholder,
    scan_facts,
    volume_caption,
)
from octviewer.viewer.session import EntryStatus, ScanEntry

if TYPE_CHECKING:
    from octviewer.core.results import FrameResult
    from octviewer.core.scan import Scan


class DisplayMixin:
    """MainWindow's drawing of the current entry (a mixin: the window supplies the widgets)."""

    def _aspect(self, scan: Scan) -> float:
        return self.view.aspect(scan.metadata.spacing)

    def _show_current(self, new_scan: bool = False) -> None:
        entry = self.current_entry()
        rp = self.result_panel
        if entry is None:
            self.stack.setCurrentWidget(self.empty)
            self.volume_box.hide()
            self.localizer.hide()
            self.image_view.set_frame(None)
            rp.set_prediction_placeholder(NO_SCAN_TEXT)
            rp.scan_info.setText("—")
            self.setWindowTitle("octviewer")
            return
        self.setWindowTitle(f"{entry.name} — octviewer")
        scan = entry.scan
        if scan is None:
            waiting = entry.status is EntryStatus.OPENING or entry.released  # being read
            self.stack.setCurrentWidget(self.image_view if waiting else self.empty)
            self.image_view.set_frame(None)
            self.volume_box.hide()
            self.localizer.hide()
            rp.set_prediction_placeholder(self._placeholder(entry))
            rp.scan_info.setText(str(entry.path.name))
            return
        self.stack.setCurrentWidget(self.image_view)
        frame = self.view.clamp_frame(scan.n_frames)
        self.image_view.wheel_steps_frames = scan.is_volume
        sp = scan.metadata.spacing
        self.image_view.set_frame(
            scan.frame_as_uint8(frame),
            self._aspect(scan),
            reset_view=new_scan,
            spacing_um=(sp.row * 1000, sp.col * 1000) if sp and sp.unit == "mm" else None,
            render=False,  # _refresh_overlay below draws frame and heatmap at once
        )
        self.volume_box.setVisible(scan.is_volume)
        if scan.is_volume:
            self.slider.blockSignals(True)
            self.slider.setRange(0, scan.n_frames - 1)
            self.slider.setValue(frame)
            self.slider.blockSignals(False)
            self.frame_label.setText(frame_label(frame, scan.n_frames))
            if entry.result is not None and len(entry.result.frames) > 1:
                res = entry.result
                self.strip.set_data(
                    res.probability_matrix(),
                    [f.frame_index for f in res.frames],
                    res.class_names,
                    scan.n_frames,
                    assessable=[f.assessable for f in res.frames],
                )
            else:
                self.strip.set_data(None, [], (), scan.n_frames)
            self.strip.set_current(frame)
        loc = scan.localizer
        # on every refresh, not only for a new entry: the first file opened is selected before
        # its scan has loaded, and its localizer arrives with a later update
        self.localizer.show_localizer(loc)
        self.localizer.setVisible(loc is not None)
        self._show_map(entry)
        self.localizer.set_current(frame)
        rp.scan_info.setText(scan_facts(scan, _frame_result(entry, frame)))
        self._show_result()
        self._refresh_overlay()

    def _show_map(self, entry) -> None:
        from octviewer.core.disease_map import unavailable_reason

        scan, res, lv = entry.scan, entry.result, self.localizer
        lv.map_visible = self.view.disease_map
        lv.attention_visible = self.view.map_attention
        lv.colormap = self.view.colormap
        cams = {}
        if res is not None and lv.attention_visible:
            for fr in res.frames:
                cam = entry.cams.get((fr.frame_index, fr.predicted_index))
                if cam is not None:
                    cams[fr.frame_index] = cam
        lv.show_map(scan, res, cams)
        reason = unavailable_reason(scan) if scan.is_volume else None
        self.map_note.setText(reason or "")
        self.map_note.setVisible(bool(reason) and self.view.disease_map)

    def _on_map(self, on: bool) -> None:
        self.view.disease_map = on

    def _on_map_attention(self, on: bool) -> None:
        self.view.map_attention = on

    def _refresh_map(self) -> None:
        entry = self.current_entry()
        if entry is not None and entry.scan is not None:
            self._show_map(entry)

    def _show_result(self) -> None:
        entry = self.current_entry()
        rp = self.result_panel
        if entry is None or entry.scan is None:
            return
        placeholder = self._placeholder(entry)
        if placeholder is not None:
            rp.set_prediction_placeholder(placeholder)
            return
        assert entry.result is not None
        frame = self.view.frame
        caption = volume_caption(entry.scan, entry.result, frame)
        cached = cached_at_text(entry.result)  # "result from the cache, computed ..."
        caption = f"{caption}\n{cached}" if caption and cached else caption or cached or ""
        rp.show_result(entry.result.frame(frame), caption, key=(entry.uid, frame))

    def _placeholder(self, entry: ScanEntry | None) -> str | None:
        return result_placeholder(entry, self.view.frame, self.controller.model_state)

    def _on_cam_ready(self, uid: int, frame: int, cls: int) -> None:
        if uid == self.view.uid and frame == self.view.frame and cls == self._cam_class():
            self._refresh_overlay()
        if uid == self.view.uid and self.view.map_attention:
            self._refresh_map()


def _frame_result(entry: ScanEntry, frame: int) -> FrameResult | None:
    """The result of ``frame`` when it has been analysed."""
    if entry.result is None:
        return None
    try:
        return entry.result.frame(frame)
    except KeyError:
        return None
