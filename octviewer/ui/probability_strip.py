"""Per-frame probability plot of a volume: one line per class against frame; click -> frame."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from octviewer.ui.style import class_color


class ProbabilityStrip(QWidget):
    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(86)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Probability of each class for every frame. Click to show that frame.")
        self._probs: np.ndarray | None = None  # (n_frames, n_classes)
        self._frames: list[int] = []
        self._names: tuple[str, ...] = ()
        self._current = 0
        self._n_frames = 0

    def sizeHint(self) -> QSize:
        return QSize(400, 96)

    def set_data(
        self,
        probs: np.ndarray | None,
        frame_indices: list[int],
        class_names: tuple[str, ...],
        n_frames: int,
    ) -> None:
        self._probs = None if probs is None else np.asarray(probs, np.float32)
        self._frames, self._names, self._n_frames = (
            list(frame_indices),
            tuple(class_names),
            n_frames,
        )
        self.update()

    def set_current(self, frame: int) -> None:
        self._current = frame
        self.update()

    def _plot_rect(self) -> QRectF:
        return QRectF(34, 8, max(10, self.width() - 44), max(10, self.height() - 26))

    def _x(self, frame: float, r: QRectF) -> float:
        n = max(self._n_frames - 1, 1)
        return r.left() + r.width() * frame / n

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        r = self._plot_rect()
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        p.setFont(small)
        p.setPen(QPen(QColor("#E5E7EB"), 1))
        for v in (0.0, 0.5, 1.0):
            y = r.bottom() - v * r.height()
            p.drawLine(QPointF(r.left(), y), QPointF(r.right(), y))
        p.setPen(QColor("#6B7280"))
        p.drawText(
            QRectF(0, r.top() - 6, 30, 12),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            "1",
        )
        p.drawText(
            QRectF(0, r.bottom() - 6, 30, 12),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            "0",
        )
        if self._probs is None or not len(self._frames):
            p.drawText(
                r,
                Qt.AlignmentFlag.AlignCenter,
                "Per-frame probabilities appear here after analysis",
            )
            p.end()
            return
        order = np.argsort(self._frames)
        xs = [self._x(self._frames[i], r) for i in order]
        for c in range(self._probs.shape[1]):
            path = QPainterPath()
            for k, i in enumerate(order):
                pt = QPointF(xs[k], r.bottom() - float(self._probs[i, c]) * r.height())
                if k == 0:
                    path.moveTo(pt)
                else:
                    path.lineTo(pt)
            p.setPen(QPen(class_color(c, self._names), 1.8))
            p.drawPath(path)
        # current frame marker
        x = self._x(self._current, r)
        p.setPen(QPen(QColor("#111827"), 1.2, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(x, r.top() - 4), QPointF(x, r.bottom() + 2))
        # legend + axis label
        lx = r.left()
        for c, name in enumerate(self._names):
            p.setPen(QPen(class_color(c, self._names), 3))
            p.drawLine(QPointF(lx, self.height() - 8), QPointF(lx + 12, self.height() - 8))
            p.setPen(QColor("#374151"))
            w = p.fontMetrics().horizontalAdvance(name)
            p.drawText(QPointF(lx + 16, self.height() - 4), name)
            lx += 16 + w + 14
        p.setPen(QColor("#6B7280"))
        label = f"frame {self._current + 1} / {self._n_frames}"
        p.drawText(
            QRectF(r.left(), self.height() - 16, r.width(), 14), Qt.AlignmentFlag.AlignRight, label
        )
        p.end()

    def frame_at(self, x: float) -> int:
        r = self._plot_rect()
        n = max(self._n_frames - 1, 1)
        return int(
            np.clip(round((x - r.left()) / max(r.width(), 1.0) * n), 0, max(self._n_frames - 1, 0))
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._n_frames and event.button() == Qt.MouseButton.LeftButton:
            self.frame_clicked.emit(self.frame_at(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._n_frames and event.buttons() & Qt.MouseButton.LeftButton:
            self.frame_clicked.emit(self.frame_at(event.position().x()))
