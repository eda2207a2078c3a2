"""The en-face localizer (SLO / fundus) with the B-scan lines and the disease map.

Click anywhere on the image to show the B-scan whose line passes nearest. The current B-scan's
line is outlined in black and white, keeping its own colour. With the disease map on (volumes with positions), each line takes the
colour of its frame's presented class, with the confidence as opacity; frames that are not
assessed are dashed white, frames not analysed yet thin grey; optionally the attention of each
frame's heatmap along its line. All lines go through :func:`draw_scan_lines`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from octviewer.core import disease_map as dm
from octviewer.core.heatmap import Heatmap
from octviewer.core.overlay import DEFAULT_COLORMAP, attention_alpha, lut
from octviewer.core.scan import outline_of
from octviewer.ui.image_view import to_qimage
from octviewer.ui.layer import Layer

BASE_PEN = QColor(120, 200, 255, 70)
CURRENT = QColor(120, 200, 255)  # the current line without a map: the base colour, opaque


def draw_scan_lines(
    p: QPainter,
    positions: np.ndarray,
    to_widget: Callable[[float, float], QPointF],
    pen_for: Callable[[int], QPen | None],
    pattern: str = "line",
) -> None:
    """Draw each B-scan's path (its ``positions`` row in localizer pixels: a line, or a circle
    for ``pattern="circle"``, see :func:`octviewer.core.scan.outline_of`) with ``pen_for(i)``
    (None: not drawn). The one place scan paths are drawn, for the plain view and the map."""
    for i, row in enumerate(positions):
        pen = pen_for(i)
        if pen is not None:
            p.setPen(pen)
            p.drawPolyline(QPolygonF([to_widget(x, y) for x, y in outline_of(row, pattern)]))


class LocalizerView(QWidget):
    frame_picked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._pixmap: QPixmap | None = None
        self._positions: np.ndarray | None = None
        self._pattern = "line"
        self._current = 0
        self._shown: object = None  # the Localizer object on screen
        self.map: dm.DiseaseMap | None = None
        self.map_visible = True
        self.attention_visible = False
        self.colormap = DEFAULT_COLORMAP
        self._kept = Layer(self, self._paint_layer)  # the drawing under the marker
        self.setToolTip(
            "Localizer: the line outlined in black and white is the current B-scan. "
            "Click to show the nearest B-scan."
        )

    def sizeHint(self) -> QSize:
        return QSize(360, 360)

    def show_localizer(self, localizer) -> None:
        """Show a scan's :class:`~octviewer.core.scan.Localizer` (or None); a no-op when it is
        already on screen, so callers may pass it on every refresh."""
        if localizer is self._shown:
            return
        self._shown = localizer
        if localizer is None:
            self.set_localizer(None, None)
        else:
            self.set_localizer(localizer.image, localizer.positions, localizer.pattern)

    def set_localizer(
        self, image: np.ndarray | None, positions: np.ndarray | None, pattern: str = "line"
    ) -> None:
        """``pattern`` as :class:`octviewer.core.scan.Localizer` ("line", "radial", "circle")."""
        self._pattern = pattern
        self.map = None
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

    def show_map(
        self, scan, result, cams: Mapping[int, np.ndarray | Heatmap] | None = None
    ) -> None:
        """Build the disease map of ``scan`` from ``result`` (None: lines only). ``cams``: frame
        -> heatmap of its predicted class, projected along the line when attention is shown."""
        self.map = dm.build_disease_map(scan, result, cams if self.attention_visible else None)
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

    # --- painting -------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        """The image, the lines, the attention and the legend come from a layer drawn once per
        size and map (a 1,000-line volume's lines take 20-30 ms to stroke: a stall on every
        frame step otherwise); only the current B-scan's marker is drawn on each paint."""
        p = QPainter(self)
        if self._pixmap is None:
            p.fillRect(self.rect(), QColor(12, 14, 18))
            p.end()
            return
        p.drawPixmap(0, 0, self._layer())
        if self.has_positions and 0 <= self._current < len(self._positions):
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            target, s = self._target()
            shown = self.map if self.map_visible else None
            width = max(1.5, shown.line_width * s) if shown is not None else 2.2
            self._draw_marker(p, self._to_widget(target, s), width, shown is not None)
        p.end()

    @staticmethod
    def _to_widget(target: QRectF, s: float) -> Callable[[float, float], QPointF]:
        ox, oy = target.left(), target.top()
        return lambda x, y: QPointF(ox + x * s, oy + y * s)

    def _layer(self) -> QPixmap:
        """Everything but the marker, redrawn when what it shows changed."""
        return self._kept.pixmap(
            (self.map_visible, self.attention_visible, self.colormap, self._pattern),
            (self._pixmap, self._positions, self.map),
        )

    def _paint_layer(self, p: QPainter) -> None:
        assert self._pixmap is not None
        p.fillRect(self.rect(), QColor(12, 14, 18))
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        target, s = self._target()
        p.drawPixmap(target, self._pixmap, QRectF(self._pixmap.rect()))
        if not self.has_positions:
            return
        assert self._positions is not None
        to_widget = self._to_widget(target, s)
        shown = self.map if self.map_visible else None
        if shown is None:
            draw_scan_lines(
                p, self._positions, to_widget, lambda i: QPen(BASE_PEN, 1), self._pattern
            )
            return
        width = max(1.5, shown.line_width * s)
        draw_scan_lines(
            p, self._positions, to_widget, lambda i: self._map_pen(i, width), self._pattern
        )
        if self.attention_visible:
            self._draw_attention(p, to_widget, width)
        if any(ln.status != "pending" for ln in shown.lines):
            # no legend before the first result: its first text costs ~15 ms of
            # glyph loading, which would add to the stall of opening the scan
            self._draw_legend(p, shown)

    def _draw_marker(self, p: QPainter, to_widget, width: float, on_map: bool) -> None:
        """The current B-scan: its line outlined (:func:`~octviewer.core.disease_map.marker_rims`)
        and drawn again on top at full strength, so it keeps its class colour on the map."""
        cur = self._current
        pens = [QPen(QColor(*rgb), w) for rgb, w in dm.marker_rims(width)]
        pens.append(self._map_pen(cur, width, full=True) if on_map else QPen(CURRENT, width))
        assert self._positions is not None
        row = self._positions[cur : cur + 1]
        for pen in pens:
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)
            draw_scan_lines(p, row, to_widget, lambda _i, pn=pen: pn, self._pattern)

    def _map_pen(self, i: int, width: float, *, full: bool = False) -> QPen:
        """The pen of frame ``i``'s map line; ``full``: at full strength (the current frame)."""
        assert self.map is not None
        line = self.map.lines[i]
        if line.status == "assessed":
            strength = 1.0 if full else line.strength
            c = QColor(*line.color, round(255 * (0.25 + 0.75 * strength)))
            pen = QPen(c, width)
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)
            return pen
        if line.status == "not assessed":
            pen = QPen(QColor(*line.color, 230), max(1.5, width * 0.6))
            pen.setStyle(Qt.PenStyle.DashLine)
            return pen
        return QPen(QColor(*line.color, 150), 1.0)

    def _draw_attention(self, p: QPainter, to_widget, width: float) -> None:
        assert self.map is not None
        table = lut(self.colormap)
        for line in self.map.lines:
            if line.attention is None:
                continue
            att = line.attention
            alpha = attention_alpha(att[None, :], 1.0)[0]
            (x0, y0), (x1, y1) = line.start, line.end
            ts = np.linspace(0.0, 1.0, len(att) + 1)
            for k in range(len(att)):
                if alpha[k] <= 0.02:
                    continue
                r, g, b = (int(v) for v in table[min(255, round(float(att[k]) * 255))])
                p.setPen(QPen(QColor(r, g, b, round(255 * alpha[k])), width * 1.6))
                a, c = ts[k], ts[k + 1]
                p.drawLine(
                    to_widget(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a),
                    to_widget(x0 + (x1 - x0) * c, y0 + (y1 - y0) * c),
                )

    def _draw_legend(self, p: QPainter, m: dm.DiseaseMap) -> None:
        fm = p.fontMetrics()
        lh = fm.height()
        w = max(fm.horizontalAdvance(e.label) for e in m.legend) + 34 if m.legend else 0
        box = QRectF(6, 6, w, lh * len(m.legend) + 8)
        p.fillRect(box, QColor(0, 0, 0, 160))
        for k, e in enumerate(m.legend):
            y = box.top() + 4 + k * lh + lh / 2
            pen = QPen(QColor(*e.color), 4 if not e.dashed else 2)
            if e.dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(box.left() + 6, y), QPointF(box.left() + 24, y))
            p.setPen(QColor(240, 240, 240))
            p.drawText(QPointF(box.left() + 30, y + fm.ascent() / 2 - 1), e.label)

    # --- picking ----------------------------------------------------------------------------------
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
