"""Settings remembered between runs (QSettings): recent files, model, device, overlay, export."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from octviewer.core.overlay import DEFAULT_COLORMAP, DEFAULT_OPACITY

MAX_RECENT = 10
DEVICES = ("auto", "cpu", "cuda", "mps")


class Settings:
    """Typed access to the app's QSettings. Tests pass a QSettings on a temporary ini file."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self._s = qsettings if qsettings is not None else QSettings()

    @classmethod
    def at(cls, ini_path: str | Path) -> Settings:
        return cls(QSettings(str(ini_path), QSettings.Format.IniFormat))

    def _str(self, key: str, default: str) -> str:
        v = self._s.value(key, default)
        return str(v) if v is not None else default

    # --- recent files --------------------------------------------------------------------
    @property
    def recent_files(self) -> list[str]:
        v = self._s.value("recent/files", [])
        if isinstance(v, str):
            v = [v]
        return [str(p) for p in (v or [])]

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path))
        items = [p] + [r for r in self.recent_files if r != p]
        self._s.setValue("recent/files", items[:MAX_RECENT])

    def clear_recent(self) -> None:
        self._s.setValue("recent/files", [])

    # --- printable report -----------------------------------------------------------------
    @property
    def report_page(self) -> str:
        """Page size of PDF reports: "A4" (default) or "Letter"."""
        return "Letter" if self._str("report/page", "A4").lower() == "letter" else "A4"

    @report_page.setter
    def report_page(self, value: str) -> None:
        self._s.setValue("report/page", "Letter" if value.lower() == "letter" else "A4")

    # --- model ------------------------------------------------------------------------------
    @property
    def last_model(self) -> str:
        return self._str("model/path", "")

    @last_model.setter
    def last_model(self, path: str) -> None:
        self._s.setValue("model/path", str(path))

    @property
    def device(self) -> str:
        d = self._str("model/device", "auto")
        return d if d in DEVICES else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self._s.setValue("model/device", value if value in DEVICES else "auto")

    @property
    def precision(self) -> str:
        """ "auto" (bf16 where the hardware computes it natively) or "fp32"."""
        return "fp32" if self._str("model/precision", "auto") == "fp32" else "auto"

    @precision.setter
    def precision(self, value: str) -> None:
        self._s.setValue("model/precision", "fp32" if value == "fp32" else "auto")

    @property
    def int8(self) -> bool:
        """int8 arithmetic on the CPU chosen by the user (not set: left to the model's
        validation, :attr:`int8_choice`)."""
        return self.int8_choice is True

    @property
    def int8_choice(self) -> bool | None:
        """True: always int8 on the CPU; False: never; None (not set): when the bundle was
        validated in int8 for this CPU (octviewer.core.arithmetic)."""
        value = self._s.value("model/int8", None)
        if value in (None, ""):
            return None
        return value in (True, "true", "1")

    @int8.setter
    def int8(self, value: bool) -> None:
        self._s.setValue("model/int8", "true" if value else "false")

    @property
    def result_cache(self) -> bool:
        """Read results computed before from the result cache and store new ones (on by
        default; docs/CACHE.md)."""
        return str(self._s.value("model/result_cache", "true")).lower() in ("true", "1")

    @result_cache.setter
    def result_cache(self, value: bool) -> None:
        self._s.setValue("model/result_cache", "true" if value else "false")

    # --- overlay -------------------------------------------------------------------------------
    @property
    def overlay_opacity(self) -> float:
        try:
            return min(1.0, max(0.0, float(self._s.value("overlay/opacity", DEFAULT_OPACITY))))
        except (TypeError, ValueError):
            return DEFAULT_OPACITY

    @overlay_opacity.setter
    def overlay_opacity(self, value: float) -> None:
        self._s.setValue("overlay/opacity", float(value))

    @property
    def overlay_colormap(self) -> str:
        return self._str("overlay/colormap", DEFAULT_COLORMAP)

    @overlay_colormap.setter
    def overlay_colormap(self, value: str) -> None:
        self._s.setValue("overlay/colormap", value)

    @property
    def overlay_visible(self) -> bool:
        return str(self._s.value("overlay/visible", "true")).lower() in ("true", "1")

    @overlay_visible.setter
    def overlay_visible(self, value: bool) -> None:
        self._s.setValue("overlay/visible", "true" if value else "false")

    @property
    def overlay_contours(self) -> tuple[float, ...]:
        """Attention levels (0..1) at which the heatmap draws iso-lines; () = none."""
        raw = self._str("overlay/contours", "")
        try:
            levels = tuple(float(x) for x in raw.split(",") if x.strip())
        except ValueError:
            return ()
        return tuple(v for v in levels if 0.0 < v <= 1.0)

    @overlay_contours.setter
    def overlay_contours(self, levels: tuple[float, ...]) -> None:
        self._s.setValue("overlay/contours", ",".join(f"{v:g}" for v in levels))

    @property
    def physical_aspect(self) -> bool:
        """Draw B-scans in physical proportions; off by default: the device's pixel grid, as
        the device software and its exported images show them."""
        return str(self._s.value("view/physical_aspect", "false")).lower() in ("true", "1")

    @physical_aspect.setter
    def physical_aspect(self, value: bool) -> None:
        self._s.setValue("view/physical_aspect", "true" if value else "false")

    @property
    def disease_map(self) -> bool:
        return str(self._s.value("view/disease_map", "true")).lower() in ("true", "1")

    @disease_map.setter
    def disease_map(self, value: bool) -> None:
        self._s.setValue("view/disease_map", "true" if value else "false")

    @property
    def map_attention(self) -> bool:
        return str(self._s.value("view/map_attention", "false")).lower() in ("true", "1")

    @map_attention.setter
    def map_attention(self, value: bool) -> None:
        self._s.setValue("view/map_attention", "true" if value else "false")

    @property
    def localizer_split(self) -> object:
        """The saved state of the localizer / B-scan splitter (QByteArray) or None."""
        return self._s.value("view/localizer_split")

    @localizer_split.setter
    def localizer_split(self, state: object) -> None:
        self._s.setValue("view/localizer_split", state)

    # --- export ----------------------------------------------------------------------------------
    @property
    def include_identity(self) -> bool:
        return str(self._s.value("export/include_identity", "false")).lower() in ("true", "1")

    @include_identity.setter
    def include_identity(self, value: bool) -> None:
        self._s.setValue("export/include_identity", "true" if value else "false")

    @property
    def export_dir(self) -> str:
        return self._str("export/dir", "")

    @export_dir.setter
    def export_dir(self, value: str) -> None:
        self._s.setValue("export/dir", str(value))

    @property
    def open_dir(self) -> str:
        return self._str("open/dir", "")

    @open_dir.setter
    def open_dir(self, value: str) -> None:
        self._s.setValue("open/dir", str(value))

    # --- window ----------------------------------------------------------------------------------
    def window_state(self) -> tuple[object, object]:
        return self._s.value("window/geometry"), self._s.value("window/state")

    def save_window_state(self, geometry: object, state: object) -> None:
        self._s.setValue("window/geometry", geometry)
        self._s.setValue("window/state", state)

    def sync(self) -> None:
        self._s.sync()
