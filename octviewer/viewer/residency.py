"""Which opened scans keep their frames in memory, without Qt.

A reading centre opens a thousand B-scans in one window: their frames (256 KB a 512 x 496
B-scan, 250 MB a 1,000-frame volume) cannot all stay. The rule (:class:`Residency`):

- kept: the scan on screen, the scan being analysed, and the most recently *touched* others
  (opened or shown), newest first, at most :data:`KEEP_RECENT` of them and
  :data:`KEEP_BYTES` of frames in all;
- released: every other scan that was read from a file. Its entry keeps a :class:`ScanHeader`
  (metadata, frame count and size, a checksum of the frames), its result and its compact
  heatmaps: all the side list and the result need. Showing it again reads the file again on
  the I/O pool; a scan whose checksum changed since it was analysed is analysed again; a file
  that can no longer be read says so. An analysis or a report of a released scan reads it
  on its worker and lets it go again.
- never released: scans handed over in memory (``Controller.add_scan``): there is no file to
  read them back from.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from octviewer.core.scan import Scan, ScanMetadata

log = logging.getLogger(__name__)

#: Recently touched scans that keep their frames besides the one on screen and the running one.
KEEP_RECENT = 4
#: ... and at most this many bytes of frames among them.
KEEP_BYTES = 512 * 2**20


def frames_checksum(frames: np.ndarray) -> int:
    """CRC-32 of the frames' bytes (a worker computes it: 0.1 s for 250 MB)."""
    a = np.ascontiguousarray(frames)
    return zlib.crc32(a.reshape(-1).view(np.uint8))


@dataclass(frozen=True)
class ScanHeader:
    """What an entry keeps of its scan when the frames are released."""

    metadata: ScanMetadata
    n_frames: int
    shape: tuple[int, int]
    nbytes: int  # frames and localizer image
    checksum: int  # of the frames as read (see :func:`frames_checksum`)

    @property
    def is_volume(self) -> bool:
        return self.n_frames > 1

    @classmethod
    def of(cls, scan: Scan) -> ScanHeader:
        return cls(
            scan.metadata,
            scan.n_frames,
            scan.shape,
            scan_nbytes(scan),
            frames_checksum(scan.frames),
        )


def scan_nbytes(scan: Scan | None) -> int:
    """Bytes of pixel data a scan holds: its frames and its localizer image."""
    if scan is None:
        return 0
    loc = scan.localizer
    return int(scan.frames.nbytes) + (int(np.asarray(loc.image).nbytes) if loc else 0)


def read_scan(path: Path, series: str | None) -> tuple[Scan, ScanHeader]:
    """Read a scan and its header (an I/O job: the checksum is computed off the GUI thread)."""
    from octviewer.core.io import load

    scan = load(path, series=series)
    return scan, ScanHeader.of(scan)


@dataclass
class Residency:
    """The rule of the module docstring; ``recent`` holds entry uids, most recent first."""

    keep: int = KEEP_RECENT
    max_bytes: int = KEEP_BYTES
    recent: list[int] = field(default_factory=list)

    def touch(self, uid: int) -> None:
        """``uid`` was opened, analysed or shown just now."""
        if uid in self.recent:
            self.recent.remove(uid)
        self.recent.insert(0, uid)
        del self.recent[4 * self.keep + 8 :]  # older ones are released anyway

    def forget(self, uid: int) -> None:
        if uid in self.recent:
            self.recent.remove(uid)

    def to_release(self, entries: Mapping[int, Any], pinned: Iterable[int | None]) -> list[int]:
        """The uids of ``entries`` (ScanEntry-like: ``scan``, ``header``) whose frames go now;
        ``pinned`` (the scan on screen, the running analysis) always stay."""
        kept = {u for u in pinned if u is not None}
        count = held = 0
        for uid in self.recent:
            e = entries.get(uid)
            if uid in kept or e is None or e.scan is None:
                continue
            size = scan_nbytes(e.scan)
            if count < self.keep and held + size <= self.max_bytes:
                kept.add(uid)
                count, held = count + 1, held + size
        return [
            uid
            for uid, e in entries.items()
            if e.scan is not None and e.header is not None and uid not in kept
        ]


class FrameKeeper:
    """The controller's side of the rule: touches, releases, and reads frames back.

    Qt-free: it uses the controller's public face (``entries()``, ``entry()``, ``session``
    (its queue, ``changed``), ``io_jobs.submit``, ``analyse()``) and ``report_error(title,
    exc, traceback) -> message``, so it can be driven by a stand-in."""

    def __init__(self, controller: Any, report_error: Callable[[str, BaseException, str], str]):
        self.rule = Residency()
        self._c = controller
        self._report_error = report_error

    def touch(self, uid: int) -> None:
        """``uid`` was opened or shown just now (then the rule is applied)."""
        self.rule.touch(uid)
        self.release()

    def loaded(self, entry: Any, scan: Scan, header: ScanHeader) -> None:
        """``entry``'s scan was read: it keeps its frames for now."""
        entry.scan, entry.header = scan, header
        self.touch(entry.uid)

    def release(self) -> None:
        """Give back the frames of the scans outside the rule."""
        entries = {e.uid: e for e in self._c.entries()}
        queue = self._c.session.queue
        pinned = (queue.priority, queue.running)
        for uid in self.rule.to_release(entries, pinned):
            entries[uid].release()
            log.debug("released the frames of scan %d", uid)

    def show(self, uid: int | None) -> None:
        """``uid`` is on screen: touched, and its frames read again when they were released."""
        entry = self._c.entry(uid) if uid is not None else None
        if entry is None:
            return
        if entry.released:
            path, series = entry.path, entry.series
            entry.reread_error = None
            self._c.io_jobs.submit(
                f"load:{uid}",
                lambda ctx: read_scan(path, series),
                on_result=lambda got: self._on_reread(uid, *got),
                on_error=lambda exc, tb: self._on_reread_error(uid, exc, tb),
            )
        self.touch(uid)

    def _on_reread(self, uid: int, scan: Scan, header: ScanHeader) -> None:
        entry = self._c.entry(uid)
        if entry is None or not entry.released:
            return
        changed = entry.header is not None and header.checksum != entry.header.checksum
        entry.scan, entry.header = scan, header
        if changed:  # its result no longer describes what is shown: analyse it again
            log.warning("%s changed since it was analysed; analysing it again", entry.path)
            self._c.analyse(uid)
        else:
            self._c.session.changed(entry)
        self.touch(uid)

    def _on_reread_error(self, uid: int, exc: BaseException, tb: str) -> None:
        entry = self._c.entry(uid)
        if entry is None or not entry.released:
            return
        entry.reread_error = self._report_error(f"Could not read {entry.name} again", exc, tb)
        self._c.session.changed(entry)
