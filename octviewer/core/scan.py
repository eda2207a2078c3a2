"""The scan model: what every reader produces and everything downstream consumes."""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class Modality(str, enum.Enum):
    """What the pixels show, as far as the reader can tell."""

    OCT_BSCAN = "OCT B-scan"
    OCT_VOLUME = "OCT volume"
    FUNDUS = "fundus / SLO photograph"
    EN_FACE = "en-face image (SLO / infrared / OCT-A)"  # judged from the pixels (core/content.py)
    UNKNOWN = "unknown"

    @property
    def is_oct(self) -> bool:
        return self in (Modality.OCT_BSCAN, Modality.OCT_VOLUME)


class Laterality(str, enum.Enum):
    RIGHT = "OD"
    LEFT = "OS"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PixelSpacing:
    """Physical size of one pixel. ``row`` is the axial (depth) step, ``col`` the lateral step;
    ``frame`` the distance between B-scans of a volume when known."""

    row: float
    col: float
    unit: str = "mm"
    frame: float | None = None

    @property
    def aspect(self) -> float:
        """Height/width of one pixel on screen (row / col)."""
        return self.row / self.col if self.col else 1.0


@dataclass(frozen=True)
class PatientIdentity:
    """Identifying fields. Kept apart from :class:`ScanMetadata` so that reports and logs can
    leave them out by default; only code that the user asked to include them reads this."""

    name: str | None = None
    patient_id: str | None = None
    birth_date: str | None = None
    sex: str | None = None

    @property
    def is_empty(self) -> bool:
        return not any((self.name, self.patient_id, self.birth_date, self.sex))


#: scan patterns a localizer can show: B-scan lines (single line, volume raster, radial star)
#: or one circle per B-scan (the RNFL circle scan around the optic disc)
LOCALIZER_PATTERNS = ("line", "radial", "circle")


@dataclass(frozen=True)
class Localizer:
    """An en-face image (SLO / fundus) with the position of each B-scan drawn on it.

    ``positions`` has one row per frame, in localizer pixel coordinates (column, row):

    * ``pattern`` "line" (single line or volume raster) and "radial" (star): ``(x0, y0, x1,
      y1)``, the start and end of the B-scan line;
    * ``pattern`` "circle": ``(xs, ys, cx, cy)``, the point where the circular B-scan starts
      and the centre of the circle (as Heidelberg stores it); the radius is their distance.
    """

    image: np.ndarray
    positions: np.ndarray | None = None
    pattern: str = "line"

    def __post_init__(self) -> None:
        if self.pattern not in LOCALIZER_PATTERNS:
            raise ValueError(f"pattern must be one of {LOCALIZER_PATTERNS}, got {self.pattern!r}")

    def outline(self, index: int, segments: int = 96) -> np.ndarray:
        """The path of B-scan ``index`` on the localizer: ``(k, 2)`` points (column, row),
        two for a line, ``segments + 1`` (closed, from the start point) for a circle."""
        if self.positions is None:
            raise ValueError("this localizer has no B-scan positions")
        return outline_of(self.positions[index], self.pattern, segments)


def outline_of(position: np.ndarray, pattern: str, segments: int = 96) -> np.ndarray:
    """The path of one B-scan from its ``positions`` row (see :class:`Localizer`)."""
    x0, y0, x1, y1 = (float(v) for v in position)
    if pattern != "circle":
        return np.asarray([[x0, y0], [x1, y1]], np.float64)
    r = float(np.hypot(x0 - x1, y0 - y1))
    start = float(np.arctan2(y0 - y1, x0 - x1))
    t = start + np.linspace(0.0, 2 * np.pi, segments + 1)
    return np.stack([x1 + r * np.cos(t), y1 + r * np.sin(t)], axis=1)


class ScanPattern(str, enum.Enum):
    """How the device swept the beam, as the file states it (``UNKNOWN`` when it does not)."""

    LINE = "line"  # one B-scan (or a few repeated at one place)
    VOLUME = "volume"  # a raster of parallel B-scans
    CIRCLE = "circle"  # B-scans on a circle (the peripapillary RNFL scan)
    RADIAL = "radial"  # B-scans through one centre (a star)
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        return _PATTERN_LABELS[self]


_PATTERN_LABELS = {
    ScanPattern.LINE: "line scan",
    ScanPattern.VOLUME: "volume scan",
    ScanPattern.CIRCLE: "circle scan",
    ScanPattern.RADIAL: "radial scan",
    ScanPattern.UNKNOWN: "scan",
}


class ScanRegion(str, enum.Enum):
    """Which part of the fundus a scan is centred on, as the file states it."""

    MACULA = "macula"
    OPTIC_DISC = "optic disc"  # centred on the disc, or around it (peripapillary)
    OTHER = "other"  # stated, but neither (e.g. anterior segment, periphery)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ScanProtocol:
    """The acquisition protocol a file states: scan pattern, region and the device's own name.

    ``source`` says where it was read (e.g. ``".vol header ScanPattern 2"``, ``"DICOM Anatomic
    Region Sequence"``) so a clinician can check it. Everything ``UNKNOWN`` / None when the file
    says nothing (images, most exports): then the pixels decide (:mod:`octviewer.core.anatomy`).
    """

    pattern: ScanPattern = ScanPattern.UNKNOWN
    region: ScanRegion = ScanRegion.UNKNOWN
    name: str | None = None  # the device's protocol name, e.g. "Glaucoma RNFL circle"
    source: str = ""

    @property
    def is_stated(self) -> bool:
        return self.pattern is not ScanPattern.UNKNOWN or self.region is not ScanRegion.UNKNOWN

    @property
    def description(self) -> str:
        """Plain words: "peripapillary circle scan", "macular volume scan", "radial scan of the
        optic disc", "line scan", "protocol not stated"."""
        if not self.is_stated:
            return "protocol not stated"
        pattern = self.pattern.label
        if self.region is ScanRegion.MACULA:
            return f"macular {pattern}"
        if self.region is ScanRegion.OPTIC_DISC:
            return (
                f"peripapillary {pattern}"
                if self.pattern is ScanPattern.CIRCLE
                else f"{pattern} of the optic disc"
            )
        if self.region is ScanRegion.OTHER:
            return f"{pattern} outside the macula"
        return pattern


@dataclass(frozen=True)
class DeviceQuality:
    """The device's own image-quality index per frame, where the file stores one.

    ``name`` e.g. "Spectralis Q"; ``minimum`` the manufacturer's stated minimum (None when not
    documented); ``values`` one per frame (NaN where a frame has none)."""

    name: str
    values: tuple[float, ...]
    minimum: float | None = None
    source: str = ""


@dataclass(frozen=True)
class ScanMetadata:
    """Non-identifying facts about a scan."""

    source_paths: tuple[Path, ...]
    format: str  # "PNG", "JPEG", "TIFF", "BMP", "DICOM", "DICOM series", "image folder", "Heidelberg VOL", ...
    modality: Modality = Modality.UNKNOWN
    laterality: Laterality = Laterality.UNKNOWN
    spacing: PixelSpacing | None = None
    manufacturer: str | None = None
    device_model: str | None = None
    acquisition_date: _dt.date | None = None
    sop_class: str | None = None  # DICOM SOP Class name, when from DICOM
    series_uid: str | None = None
    was_color: bool = False
    bit_depth: int = 8
    downsampled_from: tuple[int, int] | None = None  # original (rows, cols) if shrunk for safety
    notes: tuple[str, ...] = ()  # reader remarks worth showing (e.g. "converted from colour")
    protocol: ScanProtocol = field(default_factory=ScanProtocol)  # as the file states it
    device_quality: DeviceQuality | None = None  # the device's own quality index per frame

    @property
    def display_name(self) -> str:
        if not self.source_paths:
            return "scan"
        first = self.source_paths[0]
        return (
            first.name
            if len(self.source_paths) == 1
            else f"{first.parent.name}/ ({len(self.source_paths)} files)"
        )


@dataclass
class Scan:
    """One or more 2-D grayscale frames (B-scans) plus metadata.

    ``frames`` is always ``(n_frames, rows, cols)``; ``uint8``, ``uint16`` or ``float32``.
    Intensities are display-ready: DICOM rescale, VOI LUT and MONOCHROME1 inversion have already
    been applied by the reader (so brighter = more reflective, as on an OCT screen).
    """

    frames: np.ndarray
    metadata: ScanMetadata
    identity: PatientIdentity = field(default_factory=PatientIdentity)
    localizer: Localizer | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim == 2:
            self.frames = self.frames[np.newaxis]
        if self.frames.ndim != 3:
            raise ValueError(f"frames must be (n, rows, cols), got shape {self.frames.shape}")

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of one frame."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def is_volume(self) -> bool:
        return self.n_frames > 1

    @property
    def is_oct(self) -> bool:
        return self.metadata.modality.is_oct

    def frame(self, index: int) -> np.ndarray:
        return self.frames[index]

    def frame_as_uint8(self, index: int) -> np.ndarray:
        """The frame scaled to 0..255 for display and reports (min-max for non-uint8 data)."""
        f = self.frames[index]
        if f.dtype == np.uint8:
            return f
        f = f.astype(np.float32)
        lo, hi = float(f.min()), float(f.max())
        if hi <= lo:
            return np.zeros(f.shape, np.uint8)
        return ((f - lo) * (255.0 / (hi - lo))).round().astype(np.uint8)
