"""What the window shows now, without Qt: one snapshot the views render from.

:class:`Shown` is built once per event from the session's entry on screen, the view state and
the model's state; the scan screen, the result panel and the window title each read what they
draw from it (texts from :mod:`~octviewer.viewer.presenters`), so no view asks the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from octviewer.core.result_cache import cached_at_text
from octviewer.viewer.entry import EntryStatus, ScanEntry
from octviewer.viewer.presenters import result_placeholder, volume_caption
from octviewer.viewer.session import ModelState
from octviewer.viewer.view_state import ViewState

if TYPE_CHECKING:
    from octviewer.core.heatmap import Heatmap
    from octviewer.core.results import FrameResult
    from octviewer.core.scan import Scan

APP_TITLE = "octviewer"


@dataclass(frozen=True)
class Shown:
    """The entry on screen (None: none), how it is drawn, and where the model stands."""

    entry: ScanEntry | None
    view: ViewState
    model_state: ModelState = ModelState.NONE

    @property
    def scan(self) -> Scan | None:
        return None if self.entry is None else self.entry.scan

    @property
    def frame(self) -> int:
        return self.view.frame

    @property
    def title(self) -> str:
        return APP_TITLE if self.entry is None else f"{self.entry.name} — {APP_TITLE}"

    @property
    def reading(self) -> bool:
        """The scan is being read (opened, or read again after its frames were released)."""
        e = self.entry
        return e is not None and (e.status is EntryStatus.OPENING or e.released)

    @property
    def frame_result(self) -> FrameResult | None:
        """The result of the frame on screen, when it has been analysed."""
        if self.entry is None or self.entry.result is None:
            return None
        try:
            return self.entry.result.frame(self.view.frame)
        except KeyError:
            return None

    @property
    def placeholder(self) -> str | None:
        """What the result panel says instead of an answer; None when there is one."""
        return result_placeholder(self.entry, self.view.frame, self.model_state)

    @property
    def caption(self) -> str:
        """Under the answer: the volume's frame and most suspicious one, the cache's note."""
        scan, e = self.scan, self.entry
        if scan is None or e is None or e.result is None:
            return ""
        caption = volume_caption(scan, e.result, self.view.frame)
        cached = cached_at_text(e.result)  # "result from the cache, computed ..."
        return f"{caption}\n{cached}" if caption and cached else caption or cached or ""

    @property
    def cam_class(self) -> int | None:
        """The class whose heatmap is shown: the chosen one, else the predicted one."""
        fr = self.frame_result
        if fr is None:
            return None
        return fr.predicted_index if self.view.cam_class is None else self.view.cam_class

    @property
    def overlay_visible(self) -> bool:
        """The heatmap is drawn: switched on, and the frame assessed (or shown anyway)."""
        fr = self.frame_result
        revealed = fr is not None and (fr.assessable or self.view.show_unreliable)
        return self.view.overlay_visible and revealed

    def map_cams(self) -> dict[int, Heatmap]:
        """Each frame's heatmap of its predicted class, where computed (the map's attention)."""
        e = self.entry
        if e is None or e.result is None or not self.view.map_attention:
            return {}
        cams = {}
        for fr in e.result.frames:
            cam = e.cams.get((fr.frame_index, fr.predicted_index))
            if cam is not None:
                cams[fr.frame_index] = cam
        return cams
