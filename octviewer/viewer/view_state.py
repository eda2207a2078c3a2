"""What the main window shows, without Qt: the scan and frame on screen and how it is drawn.

:class:`ViewState` holds what the window used to read back from its widgets (the heatmap's
visibility, colours, opacity and contour lines, physical proportions, the disease map, whether
reports name the patient). MainWindow fills it from Settings once; its handlers write to it
(and to Settings), and drawing reads only from it. Defaults come from :mod:`octviewer.core.overlay`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from octviewer.core.overlay import COLORMAPS, DEFAULT_COLORMAP, DEFAULT_OPACITY

if TYPE_CHECKING:
    from octviewer.core.scan import PixelSpacing, Scan
    from octviewer.viewer.residency import ScanHeader


@dataclass
class ViewState:
    uid: int | None = None  # the entry on screen
    frame: int = 0
    overlay_visible: bool = True
    opacity: float = DEFAULT_OPACITY  # 0..1 in steps of 0.01 (the panel's slider)
    colormap: str = DEFAULT_COLORMAP
    contours: tuple[float, ...] = ()
    physical_aspect: bool = False
    disease_map: bool = True
    map_attention: bool = False
    include_identity: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> ViewState:
        """The state a new window starts from (``settings``: a ui.settings.Settings)."""
        view = cls(
            overlay_visible=settings.overlay_visible,
            contours=settings.overlay_contours,
            physical_aspect=settings.physical_aspect,
            disease_map=settings.disease_map,
            map_attention=settings.map_attention,
            include_identity=settings.include_identity,
        )
        view.set_opacity(settings.overlay_opacity)
        view.set_colormap(settings.overlay_colormap)
        return view

    # --- scan and frame ----------------------------------------------------------------------
    def select(self, uid: int | None, scan: Scan | ScanHeader | None = None) -> bool:
        """Show entry ``uid``: a volume opens on its middle frame, anything else on frame 0.
        False (nothing changes) when it is already on screen."""
        if uid == self.uid:
            return False
        self.uid = uid
        self.frame = scan.n_frames // 2 if scan is not None and scan.is_volume else 0
        return True

    @staticmethod
    def clamp(frame: int, n_frames: int) -> int:
        """``frame`` inside ``0 .. n_frames - 1``."""
        return max(0, min(int(frame), n_frames - 1))

    def clamp_frame(self, n_frames: int) -> int:
        """Keep the current frame inside a scan of ``n_frames``; return it."""
        self.frame = self.clamp(self.frame, n_frames)
        return self.frame

    def stepped(self, delta: int, n_frames: int) -> int:
        """The frame ``delta`` frames away, inside the scan."""
        return self.clamp(self.frame + delta, n_frames)

    # --- drawing -------------------------------------------------------------------------------
    def set_opacity(self, value: float) -> None:
        """0..1, rounded to the panel slider's steps of 0.01."""
        self.opacity = round(min(1.0, max(0.0, float(value))) * 100) / 100

    @property
    def opacity_percent(self) -> int:
        return round(self.opacity * 100)

    def set_colormap(self, name: str) -> None:
        """``name`` if it is a known colour map, else the default."""
        self.colormap = name if name in COLORMAPS else DEFAULT_COLORMAP

    def aspect(self, spacing: PixelSpacing | None) -> float:
        """Row/column display ratio: physical proportions when on and the spacing is known."""
        return spacing.aspect if (spacing is not None and self.physical_aspect) else 1.0

    def overlay_look(self) -> dict[str, Any]:
        """The heatmap as the window shows it, for the report (same core blend)."""
        return {"colormap": self.colormap, "opacity": self.opacity, "contours": self.contours}
