"""The B-scan view: zoom around the cursor, drag to pan, fit / 1:1, window/level, heatmap,
and a scale bar in µm (lateral and axial) when the pixel spacing is known.

B-scans are drawn on the device's pixel grid by default (as device software shows them); in
physical proportions each row is stretched by the pixel aspect (axial / lateral spacing).

Mouse: left-drag pans; right-drag adjusts brightness/contrast (horizontal = contrast / window
width, vertical = brightness / level); the wheel zooms around the cursor (on volumes the wheel
steps through frames and Ctrl+wheel zooms, as in clinical stack viewers).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPen,
    QPixmap,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from octviewer.core.heatmap import Heatmap
from octviewer.core.overlay import DEFAULT_COLORMAP, DEFAULT_OPACITY

ZOOM_STEP = 1.15
MIN_ZOOM, MAX_ZOOM = 0.05, 40.0
SCALE_STEPS_UM = (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000)


def scale_bar_um(um_per_screen_px: float, max_px: float = 140.0) -> tuple[int, float] | None:
    """The longest round length (µm) whose bar fits in ``max_px`` screen pixels, and its length
    in screen pixels; None when even the shortest does not fit or the scale is unknown."""
    if not (um_per_screen_px > 0 and np.isfinite(um_per_screen_px)):
        return None
    fitting = [u for u in SCALE_STEPS_UM if u / um_per_screen_px <= max_px]
    if not fitting or fitting[-1] / um_per_screen_px < 12:
        return None
    return fitting[-1], fitting[-1] / um_per_screen_px


def apply_window_level(frame_u8: np.ndarray, window: float, level: float) -> np.ndarray:
    """Linear window/level on an 8-bit frame: ``level`` is the centre, ``window`` the width."""
    if window >= 255.0 and abs(level - 127.5) < 1e-6:
        return frame_u8
    lut = np.arange(256, dtype=np.float32)
    lo = level - window / 2.0
    lut = np.clip((lut - lo) * (255.0 / max(window, 1.0)), 0, 255).astype(np.uint8)
    return lut[frame_u8]


def to_qimage(arr: np.ndarray) -> QImage:
    """A QImage that owns a copy of ``arr`` ((H, W) gray or (H, W, 3) RGB, uint8)."""
    a = np.ascontiguousarray(arr)
    h, w = a.shape[:2]
    if a.ndim == 2:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8)
    else:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888)
    return img.copy()  # detach from the NumPy buffer


class ImageView(QGraphicsView):
    frame_step = Signal(int)  # +1 / -1 from the wheel on volumes
    view_changed = Signal(str)  # "zoom 120 % · W 255 L 128" for the status bar

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        self.setBackgroundBrush(QColor(12, 14, 18))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setRenderHints(
            QPainter.RenderHint.SmoothPixmapTransform | QPainter.RenderHint.Antialiasing
        )
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        # the scale bar sits still in the viewport: repaint it whole rather than scroll pixels
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.wheel_steps_frames = False
        self._frame: np.ndarray | None = None
        self._cam: Heatmap | np.ndarray | None = None
        self._cam_drawn: tuple[object, np.ndarray] | None = None  # (map, on the frame grid)
        self._colormap = DEFAULT_COLORMAP
        self._opacity = DEFAULT_OPACITY
        self._overlay_visible = True
        self._contours: tuple[float, ...] = ()
        self._window, self._level = 255.0, 127.5
        self._aspect = 1.0
        self._spacing_um: tuple[float, float] | None = None  # (axial, lateral) µm per pixel
        self._fit_mode = True
        self._fit_pending = False  # a new frame's geometry: fit when it is drawn
        self._wl_anchor: QPoint | None = None
        self._wl_start = (self._window, self._level)
        self.rendered: np.ndarray | None = None  # what is on screen (tests, screenshots)

    # --- content ------------------------------------------------------------------------------
    def set_frame(
        self,
        frame_u8: np.ndarray | None,
        aspect: float = 1.0,
        *,
        reset_view: bool = False,
        spacing_um: tuple[float, float] | None = None,
        render: bool = True,
    ) -> None:
        """Show a frame. ``aspect`` stretches rows (1 = the device's pixel grid);
        ``spacing_um`` (axial, lateral µm per pixel) draws the scale bar; None: no bar. A new
        frame drops the heatmap of the previous one (``set_overlay`` gives its own);
        ``render=False``: drawn by the ``set_overlay`` that follows (one blend, not two)."""
        if frame_u8 is not self._frame:
            self._cam = self._cam_drawn = None
        self._frame = frame_u8
        self._spacing_um = spacing_um if spacing_um and all(v > 0 for v in spacing_um) else None
        new_aspect = float(aspect) if aspect and np.isfinite(aspect) and aspect > 0 else 1.0
        geometry_changed = (
            self._item.pixmap().isNull()
            or frame_u8 is None
            or self._item.pixmap().width() != frame_u8.shape[1]
            or self._item.pixmap().height() != frame_u8.shape[0]
            or new_aspect != self._aspect
        )
        self._aspect = new_aspect
        self._fit_pending = self._fit_pending or reset_view or geometry_changed
        if render:
            self._render()

    def set_overlay(
        self,
        cam: Heatmap | np.ndarray | None,
        colormap: str,
        opacity: float,
        visible: bool,
        contours: tuple[float, ...] = (),
    ) -> None:
        """The heatmap: attention-weighted colour (see ``core.overlay.blend``), ``opacity`` at
        the highest attention, iso-lines at ``contours`` (attention levels in (0, 1]). A
        :class:`~octviewer.core.heatmap.Heatmap` is upsampled once for the frame on screen."""
        self._cam, self._colormap, self._opacity, self._overlay_visible = (
            cam,
            colormap,
            opacity,
            visible,
        )
        self._contours = tuple(contours)
        self._render()

    def set_window_level(self, window: float, level: float) -> None:
        self._window = float(np.clip(window, 1.0, 255.0))
        self._level = float(np.clip(level, 0.0, 255.0))
        self._render()
        self._emit_info()

    def reset_window_level(self) -> None:
        self.set_window_level(255.0, 127.5)

    @property
    def window_level(self) -> tuple[float, float]:
        return self._window, self._level

    @property
    def overlay_shown(self) -> bool:
        return self._cam is not None and self._overlay_visible

    def _render(self) -> None:
        if self._frame is None:
            self._item.setPixmap(QPixmap())
            self.rendered = None
            return
        shown = apply_window_level(self._frame, self._window, self._level)
        if (
            self._cam is not None
            and self._overlay_visible
            and (self._opacity > 0 or self._contours)
        ):
            from octviewer.core.overlay import blend

            shown = blend(
                shown, self._cam_on(shown.shape), self._colormap, self._opacity, self._contours
            )
        self.rendered = shown
        self._item.setPixmap(QPixmap.fromImage(to_qimage(shown)))
        self._item.setTransform(QTransform.fromScale(1.0, self._aspect))
        self.scene().setSceneRect(self._item.sceneBoundingRect())
        self.viewport().update()
        if self._fit_pending:
            self._fit_pending = False
            self.fit()

    def _cam_on(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """The heatmap on the frame grid; one upsampled copy is kept for the map on screen (a
        window/level drag redraws it many times)."""
        cam = self._cam
        if not isinstance(cam, Heatmap):
            self._cam_drawn = None
            return cam
        if self._cam_drawn is None or self._cam_drawn[0] is not cam:
            self._cam_drawn = None  # the previous map's copy goes first
            self._cam_drawn = (cam, cam.resized(shape[:2]))
        return self._cam_drawn[1]

    # --- scale bar --------------------------------------------------------------------------------
    def scale_bars(self) -> tuple[tuple[int, float], tuple[int, float]] | None:
        """((µm, screen px) lateral, (µm, screen px) axial) at the current zoom, or None."""
        if self._spacing_um is None or self._frame is None:
            return None
        z = self.zoom_factor()
        if z <= 0:
            return None
        axial, lateral = self._spacing_um
        h = scale_bar_um(lateral / z)
        v = scale_bar_um(axial / (z * self._aspect))
        return (h, v) if h and v else None

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        bars = self.scale_bars()
        if bars is None:
            return
        (hu, hpx), (vu, vpx) = bars
        painter.save()
        painter.resetTransform()  # viewport coordinates
        vp = self.viewport().rect()
        img = self.mapFromScene(self._item.sceneBoundingRect()).boundingRect()
        # inside the image's lower-left corner when it is on screen, else the viewport's
        x0 = float(max(18, min(img.left() + 16, vp.width() - hpx - 18)))
        y0 = float(min(vp.height() - 22, max(img.bottom() - 30, vpx + 12)))
        f = QFont(painter.font())
        f.setPointSizeF(9.0)
        painter.setFont(f)
        # a dark plate keeps the bar legible on bright tissue and on white padding
        fm = painter.fontMetrics()
        wide = max(hpx, fm.horizontalAdvance(f"{hu} µm") + 4, fm.horizontalAdvance(f"{vu} µm") + 6)
        plate = QRectF(x0 - 8, y0 - vpx - 6, wide + 16, vpx + 26)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 120))
        painter.drawRoundedRect(plate, 4, 4)
        for color, width in ((QColor(0, 0, 0, 170), 5.0), (QColor(255, 255, 255), 2.0)):
            pen = QPen(color, width)
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)
            painter.setPen(pen)
            painter.drawLine(QPointF(x0, y0), QPointF(x0 + hpx, y0))
            painter.drawLine(QPointF(x0, y0), QPointF(x0, y0 - vpx))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(QPointF(x0 + 4, y0 + 15), f"{hu} µm")
        painter.drawText(QPointF(x0 + 6, y0 - vpx + 10), f"{vu} µm")
        painter.restore()

    # --- zoom -------------------------------------------------------------------------------------
    def zoom_factor(self) -> float:
        return float(self.transform().m11())

    def fit(self) -> None:
        self._fit_mode = True
        if self._item.pixmap().isNull():
            return
        self.resetTransform()
        rect: QRectF = self._item.sceneBoundingRect()
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self._emit_info()

    def actual_size(self) -> None:
        """1:1 — one image pixel per screen pixel (device-independent)."""
        self._fit_mode = False
        self.resetTransform()
        self._emit_info()

    def zoom(self, factor: float) -> None:
        current = self.zoom_factor()
        factor = float(np.clip(current * factor, MIN_ZOOM, MAX_ZOOM)) / max(current, 1e-9)
        self._fit_mode = False
        self.scale(factor, factor)
        self.viewport().update()
        self._emit_info()

    def _emit_info(self) -> None:
        self.view_changed.emit(
            f"Zoom {self.zoom_factor() * 100:.0f} %  ·  Window {self._window:.0f}  Level {self._level:.0f}"
        )

    # --- events -------------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if delta == 0:
            return
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if self.wheel_steps_frames and not ctrl:
            self.frame_step.emit(-1 if delta > 0 else 1)
        else:
            self.zoom(ZOOM_STEP ** (delta / 120.0))
        event.accept()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            self._wl_anchor = event.position().toPoint()
            self._wl_start = (self._window, self._level)
            self.viewport().setCursor(Qt.CursorShape.SizeAllCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._wl_anchor is not None:
            d = event.position().toPoint() - self._wl_anchor
            w0, l0 = self._wl_start
            self.set_window_level(w0 + d.x() * 0.8, l0 - d.y() * 0.5)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.RightButton and self._wl_anchor is not None:
            self._wl_anchor = None
            self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def contextMenuEvent(self, event) -> None:  # right button is window/level
        event.accept()
