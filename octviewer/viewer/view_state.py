"""What the main window shows, without Qt: the scan and frame on screen and how it is drawn.

:class:`ViewState` holds everything drawing reads (the scan and frame on screen, the heatmap's
class, visibility, colours, opacity and contour lines, whether a frame that is not assessed
shows its output anyway, physical proportions, the disease map, whether reports name the
patient). Every change of a field is a :class:`~octviewer.viewer.events.ViewChanged` event
on :attr:`ViewState.events`; handlers write here, never to a widget or the settings, and
:func:`bind_settings` is the one place the remembered fields meet the settings. Defaults come
from :mod:`octviewer.core.overlay`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from octviewer.core.overlay import COLORMAPS, DEFAULT_COLORMAP, DEFAULT_OPACITY
from octviewer.viewer.events import Events, ViewChanged

if TYPE_CHECKING:
    from octviewer.core.scan import PixelSpacing, Scan
    from octviewer.viewer.residency import ScanHeader

#: The fields remembered between runs, and their names on ui.settings.Settings.
PERSISTED: tuple[tuple[str, str], ...] = (
    ("overlay_visible", "overlay_visible"),
    ("opacity", "overlay_opacity"),
    ("colormap", "overlay_colormap"),
    ("contours", "overlay_contours"),
    ("physical_aspect", "physical_aspect"),
    ("disease_map", "disease_map"),
    ("map_attention", "map_attention"),
    ("include_identity", "include_identity"),
)


def _normal(name: str, value: Any) -> Any:
    """Opacity 0..1 in the panel slider's steps of 0.01; an unknown colour map: the default."""
    if name == "opacity":
        return round(min(1.0, max(0.0, float(value))) * 100) / 100
    if name == "colormap":
        return value if value in COLORMAPS else DEFAULT_COLORMAP
    return value


@dataclass
class ViewState:
    uid: int | None = None  # the entry on screen
    frame: int = 0
    cam_class: int | None = None  # the heatmap's class; None: the predicted class
    show_unreliable: bool = False  # a frame not assessed: its output shown anyway
    overlay_visible: bool = True
    opacity: float = DEFAULT_OPACITY  # 0..1 in steps of 0.01 (the panel's slider)
    colormap: str = DEFAULT_COLORMAP
    contours: tuple[float, ...] = ()
    physical_aspect: bool = False
    disease_map: bool = True
    map_attention: bool = False
    include_identity: bool = False
    events: Events = field(default_factory=Events, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        """Setting a field to a new value emits ViewChanged with its name."""
        if name in _FIELDS:
            self.update(**{name: value})
        else:
            object.__setattr__(self, name, value)

    def update(self, **changes: Any) -> bool:
        """Set several fields at once: one ViewChanged naming those that changed (none: no
        event). Showing another scan or frame clears ``show_unreliable``."""
        moved = (changes.get("uid", self.uid), changes.get("frame", self.frame))
        if moved != (self.uid, self.frame) and "show_unreliable" not in changes:
            changes["show_unreliable"] = False
        changed = set()
        for name, value in changes.items():
            value = _normal(name, value)
            if getattr(self, name, None) != value or name not in self.__dict__:
                object.__setattr__(self, name, value)
                changed.add(name)
        if changed and "events" in self.__dict__:
            self.events.emit(ViewChanged(frozenset(changed)))
        return bool(changed)

    # --- scan and frame ----------------------------------------------------------------------
    def select(self, uid: int | None, scan: Scan | ScanHeader | None = None) -> bool:
        """Show entry ``uid``: a volume opens on its middle frame, anything else on frame 0.
        False (nothing changes) when it is already on screen."""
        if uid == self.uid:
            return False
        frame = scan.n_frames // 2 if scan is not None and scan.is_volume else 0
        self.update(uid=uid, frame=frame, show_unreliable=False)
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
        self.opacity = value

    @property
    def opacity_percent(self) -> int:
        return round(self.opacity * 100)

    def set_colormap(self, name: str) -> None:
        """``name`` if it is a known colour map, else the default."""
        self.colormap = name

    def aspect(self, spacing: PixelSpacing | None) -> float:
        """Row/column display ratio: physical proportions when on and the spacing is known."""
        return spacing.aspect if (spacing is not None and self.physical_aspect) else 1.0

    def overlay_look(self) -> dict[str, Any]:
        """The heatmap as the window shows it, for the report (same core blend)."""
        return {"colormap": self.colormap, "opacity": self.opacity, "contours": self.contours}


_FIELDS = frozenset(f.name for f in fields(ViewState)) - {"events"}


def bind_settings(view: ViewState, settings: Any) -> None:
    """The one binding of the view state to the settings (a ui.settings.Settings, or anything
    with its attributes): the :data:`PERSISTED` fields are read from them once, and every
    later change of one is written back. No handler writes both."""
    view.update(**{name: getattr(settings, key) for name, key in PERSISTED})

    def save(event: object) -> None:
        if isinstance(event, ViewChanged):
            for name, key in PERSISTED:
                if name in event.fields:
                    setattr(settings, key, getattr(view, name))

    view.events.connect(save)
