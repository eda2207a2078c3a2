"""The en-face localizer (SLO / fundus) with the B-scan lines; click a line to show that B-scan."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from octviewer.core.scan import outline_of
from octviewer.ui.image_view import to_qimage


class LocalizerView(QWidget):
    frame_picked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self._pixmap: QPixmap | None = None
        self._positions: np.ndarray | None = None
        self._pattern = "line"
        self._current = 0
        self.setToolTip(
            "Localizer: the line shows where the current B-scan was taken. Click a line to show it."
        )

    def sizeHint(self) -> QSize:
        return QSize(280, 280)

    def set_localizer(
        self, image: np.ndarray | None, positions: np.ndarray | None, pattern: str = "line"
    ) -> None:
        """``pattern`` as :class:`octviewer.core.scan.Localizer` ("line", "radial", "circle")."""
        self._pattern = pattern
        if image is None:
            self._pixmap, self._positions = None, None
        else:
            img = np.asarray(image)
            if img.dtype != np.uint8:
                f = img.astype(np.float32)
                lo, hi = float(f.min()), float(f.max())
                img = ((f - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(f)).astype(
                    np.uint8
                )
            if img.ndim == 3 and img.shape[2] == 4:
                img = img[:, :, :3]
            self._pixmap = QPixmap.fromImage(to_qimage(img))
            self._positions = (
                None if positions is None else np.asarray(positions, np.float64).reshape(-1, 4)
            )
        self.setCursor(
            Qt.CursorShape.PointingHandCursor if self.has_positions else Qt.CursorShape.ArrowCursor
        )
        self.update()

    @property
    def has_positions(self) -> bool:
        return self._positions is not None and len(self._positions) > 0

    def set_current(self, frame: int) -> None:
        self._current = frame
        self.update()

    def _target(self) -> tuple[QRectF, float]:
        assert self._pixmap is not None
        pw, ph = self._pixmap.width(), self._pixmap.height()
        s = min(self.width() / pw, self.height() / ph)
        w, h = pw * s, ph * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h), s

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(12, 14, 18))
        if self._pixmap is None:
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        target, s = self._target()
        p.drawPixmap(target, self._pixmap, QRectF(self._pixmap.rect()))
        if self.has_positions:
            assert self._positions is not None
            ox, oy = target.left(), target.top()
            p.setPen(QPen(QColor(120, 200, 255, 70), 1))
            for row in self._positions:
                p.drawPolyline(self._path(row, ox, oy, s))
            if 0 <= self._current < len(self._positions):
                p.setPen(QPen(QColor("#39FF88"), 2.2))
                p.drawPolyline(self._path(self._positions[self._current], ox, oy, s))
        p.end()

    def _path(self, row: np.ndarray, ox: float, oy: float, s: float) -> QPolygonF:
        """One B-scan's line (or circle) on the widget."""
        return QPolygonF(
            [QPointF(ox + x * s, oy + y * s) for x, y in outline_of(row, self._pattern)]
        )

    def frame_at(self, x: float, y: float) -> int | None:
        """The frame whose line passes closest to the widget point (x, y)."""
        if self._pixmap is None or not self.has_positions:
            return None
        assert self._positions is not None
        target, s = self._target()
        px, py = (x - target.left()) / s, (y - target.top()) / s
        a, b = self._positions[:, :2], self._positions[:, 2:]
        if self._pattern == "circle":  # rows are (start point, centre): distance to the circle
            r = np.hypot(*(a - b).T)
            return int(np.argmin(np.abs(np.hypot(px - b[:, 0], py - b[:, 1]) - r)))
        ab = b - a
        t = np.clip(
            ((px - a[:, 0]) * ab[:, 0] + (py - a[:, 1]) * ab[:, 1])
            / np.maximum((ab**2).sum(1), 1e-9),
            0,
            1,
        )
        closest = a + ab * t[:, None]
        d = np.hypot(closest[:, 0] - px, closest[:, 1] - py)
        return int(np.argmin(d))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            f = self.frame_at(event.position().x(), event.position().y())
            if f is not None:
                self.frame_picked.emit(f)
