"""One opened scan, without Qt: :class:`ScanEntry` is an opened file or folder and what the
app knows about it (its scan or, once released, its header; its result and heatmaps);
:class:`EntryStatus` names where it stands."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from octviewer.viewer.residency import ScanHeader, scan_nbytes

if TYPE_CHECKING:
    from octviewer.core.heatmap import Heatmap
    from octviewer.core.results import ScanResult
    from octviewer.core.scan import Scan


class EntryStatus(str, enum.Enum):
    OPENING = "Opening…"
    WAITING = "Waiting for the model"
    QUEUED = "Queued"
    ANALYSING = "Analysing…"
    DONE = "Done"
    CANCELLED = "Cancelled"
    FAILED = "Could not open"
    ANALYSIS_FAILED = "Analysis failed"


@dataclass
class ScanEntry:
    """One opened file or folder and what the app knows about it."""

    uid: int
    path: Path
    series: str | None = None
    status: EntryStatus = EntryStatus.OPENING
    scan: Scan | None = None  # None before it is read, when it failed, or when released
    #: what is kept of a scan read from a file when its frames are released (viewer/residency.py)
    header: ScanHeader | None = None
    #: why the released frames could not be read again (shown instead of the scan)
    reread_error: str | None = None
    result: ScanResult | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    progress: tuple[int, int] = (0, 0)
    #: heatmaps asked for, by (frame, class), at the model's resolution (a few hundred bytes)
    cams: dict[tuple[int, int], Heatmap] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.perf_counter)

    @property
    def name(self) -> str:
        if self.scan is not None:
            return self.scan.metadata.display_name
        if self.header is not None:
            return self.header.metadata.display_name
        return self.path.name or str(self.path)

    @property
    def released(self) -> bool:
        """Read once, frames given back to free memory: reading the file again shows it."""
        return self.scan is None and self.header is not None

    @property
    def opened(self) -> bool:
        """The scan was read (its frames may be released since)."""
        return self.scan is not None or self.header is not None

    @property
    def is_volume(self) -> bool:
        return self.n_frames > 1

    @property
    def n_frames(self) -> int:
        """Frames of the scan (0 before it is read)."""
        known = self.scan if self.scan is not None else self.header
        return 0 if known is None else known.n_frames

    def release(self) -> None:
        """Give the frames (and localizer) back; the header, result and heatmaps stay."""
        if self.header is not None:
            self.scan = None

    def held_bytes(self) -> int:
        """Bytes of array data this entry holds: frames and localizer while resident, the
        result's per-frame arrays and the kept heatmaps (what grows with the entries)."""
        n = scan_nbytes(self.scan)
        if self.result is not None:
            for fr in self.result.frames:
                n += fr.probabilities.nbytes + fr.logits.nbytes
                n += fr.heatmap.nbytes if fr.heatmap is not None else 0
        seen = {id(fr.heatmap) for fr in self.result.frames} if self.result is not None else set()
        return n + sum(h.nbytes for h in self.cams.values() if id(h) not in seen)

    def take_result(self, result: ScanResult, elapsed_s: float) -> None:
        """The analysis is done: keep ``result`` and cache the heatmaps it carries."""
        self.result, self.status, self.elapsed_s = result, EntryStatus.DONE, elapsed_s
        for fr in result.frames:
            if fr.heatmap is not None and fr.cam_class is not None:
                self.cams[(fr.frame_index, fr.cam_class)] = fr.heatmap

    def needs_analysis(self, model_sha256: str) -> bool:
        """Opened, and without a result of that model (results of another model no longer
        describe what is shown)."""
        return (
            self.opened
            and self.status is not EntryStatus.FAILED
            and (self.result is None or self.result.model.sha256 != model_sha256)
        )
