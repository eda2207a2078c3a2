"""Per-frame probability plot of a volume: one line per class against frame; click -> frame.

Frames that are not assessed (``FrameResult.assessable`` False) are drawn as grey hatched bands
and the class lines break there: their probabilities are not shown as an answer.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from octviewer.core.presentation import NOT_ASSESSED_LABEL, frame_number
from octviewer.ui.layer import Layer
from octviewer.ui.style import class_color

NOT_ASSESSED_FILL = "#E5E7EB"
NOT_ASSESSED_HATCH = "#9CA3AF"


class ProbabilityStrip(QWidget):
    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(86)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(
            "Probability of each class for every frame. Click to show that frame.\n"
            "Hatched grey: frames that are not assessed (no class is given for them)."
        )
        self._probs: np.ndarray | None = None  # (n_frames, n_classes)
        self._frames: list[int] = []
        self._names: tuple[str, ...] = ()
        self._assessable: list[bool] = []
        self._current = 0
        self._n_frames = 0
        self._kept = Layer(self, self._paint_layer)  # the drawing under the marker

    def sizeHint(self) -> QSize:
        return QSize(400, 96)

    def set_data(
        self,
        probs: np.ndarray | None,
        frame_indices: list[int],
        class_names: tuple[str, ...],
        n_frames: int,
        assessable: list[bool] | None = None,
    ) -> None:
        """``assessable[k]`` says whether frame ``frame_indices[k]`` is assessed (default: all)."""
        self._probs = None if probs is None else np.asarray(probs, np.float32)
        self._assessable = (
            [True] * len(frame_indices) if assessable is None else [bool(a) for a in assessable]
        )
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
        """The plot comes from a layer drawn once per size and data (a 1,000-frame volume's
        lines took about 10 ms to stroke on every frame step); the current frame's marker and
        number are drawn on each paint."""
        p = QPainter(self)
        p.drawPixmap(0, 0, self._layer())
        if self._probs is not None and len(self._frames):
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setFont(self._small_font())
            r = self._plot_rect()
            x = self._x(self._current, r)
            p.setPen(QPen(QColor("#111827"), 1.2, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(x, r.top() - 4), QPointF(x, r.bottom() + 2))
            p.setPen(QColor("#6B7280"))
            label = f"frame {frame_number(self._current)} / {self._n_frames}"
            p.drawText(
                QRectF(r.left(), self.height() - 16, r.width(), 14),
                Qt.AlignmentFlag.AlignRight,
                label,
            )
        p.end()

    def _small_font(self) -> QFont:
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        return small

    def _layer(self) -> QPixmap:
        """Everything but the current frame's marker and number, redrawn when it changed."""
        return self._kept.pixmap(
            (self.font().key(), self._n_frames, self._names),
            (self._probs, self._frames, self._assessable),
        )

    def _paint_layer(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        r = self._plot_rect()
        p.setFont(self._small_font())
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
            return
        order = np.argsort(self._frames)
        xs = [self._x(self._frames[i], r) for i in order]
        self._paint_not_assessed(p, r, order)
        for c in range(self._probs.shape[1]):
            p.setPen(QPen(class_color(c, self._names), 1.8))
            for run in self._runs(order, xs, c, r):
                if len(run) == 1:  # a lone assessable frame stays visible
                    p.drawEllipse(run[0], 0.9, 0.9)
                else:  # segments, not one polyline: its outline of 1,000 joins took 300 ms
                    p.drawLines([QLineF(a, b) for a, b in pairwise(run)])
        # legend
        lx = r.left()
        for c, name in enumerate(self._names):
            p.setPen(QPen(class_color(c, self._names), 3))
            p.drawLine(QPointF(lx, self.height() - 8), QPointF(lx + 12, self.height() - 8))
            p.setPen(QColor("#374151"))
            w = p.fontMetrics().horizontalAdvance(name)
            p.drawText(QPointF(lx + 16, self.height() - 4), name)
            lx += 16 + w + 14
        if not all(self._assessable):
            self._paint_hatch(p, QRectF(lx, self.height() - 13, 12, 10))
            p.setPen(QColor("#374151"))
            p.drawText(QPointF(lx + 16, self.height() - 4), NOT_ASSESSED_LABEL)

    def _runs(self, order: np.ndarray, xs: list[float], c: int, r: QRectF) -> list[list[QPointF]]:
        """The points of class ``c`` in frame order, one run per stretch of assessable frames
        (the line breaks at a frame that is not assessed). Drawn as polylines: one path with a
        subpath per run took 400 ms to stroke for 1,000 frames on the GUI thread."""
        runs: list[list[QPointF]] = []
        current: list[QPointF] | None = None
        for k, i in enumerate(order):
            if not self._assessable[i]:
                current = None
                continue
            pt = QPointF(xs[k], r.bottom() - float(self._probs[i, c]) * r.height())
            if current is None:
                current = []
                runs.append(current)
            current.append(pt)
        return runs

    @staticmethod
    def _paint_hatch(p: QPainter, rect: QRectF) -> None:
        p.fillRect(rect, QColor(NOT_ASSESSED_FILL))
        p.fillRect(rect, QBrush(QColor(NOT_ASSESSED_HATCH), Qt.BrushStyle.BDiagPattern))

    def _paint_not_assessed(self, p: QPainter, r: QRectF, order: np.ndarray) -> None:
        """A grey hatched band over each stretch of frames that are not assessed (one band a
        stretch: a band a frame was hundreds of fills for a long volume)."""
        half = max(1.5, r.width() / max(self._n_frames - 1, 1) / 2)
        start: float | None = None
        end, last = 0.0, -2
        for i in order:
            f = self._frames[i]
            if start is not None and (self._assessable[i] or f != last + 1):  # stretch ends
                self._paint_hatch(p, QRectF(start, r.top(), end - start, r.height()) & r)
                start = None
            if not self._assessable[i]:
                x = self._x(f, r)
                start = x - half if start is None else start
                end, last = x + half, f
        if start is not None:
            self._paint_hatch(p, QRectF(start, r.top(), end - start, r.height()) & r)

    def not_assessed_frames(self) -> list[int]:
        """The frame indices drawn as not assessed."""
        return [f for f, a in zip(self._frames, self._assessable, strict=True) if not a]

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
