"""The B-scan view: zoom around the cursor, drag to pan, fit / 1:1, window/level, heatmap.

Mouse: left-drag pans; right-drag adjusts brightness/contrast (horizontal = contrast / window
width, vertical = brightness / level); the wheel zooms around the cursor (on volumes the wheel
steps through frames and Ctrl+wheel zooms, as in clinical stack viewers).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPixmap,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

ZOOM_STEP = 1.15
MIN_ZOOM, MAX_ZOOM = 0.05, 40.0


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
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.wheel_steps_frames = False
        self._frame: np.ndarray | None = None
        self._cam: np.ndarray | None = None
        self._colormap = "inferno"
        self._opacity = 0.45
        self._overlay_visible = True
        self._window, self._level = 255.0, 127.5
        self._aspect = 1.0
        self._fit_mode = True
        self._wl_anchor: QPoint | None = None
        self._wl_start = (self._window, self._level)
        self.rendered: np.ndarray | None = None  # what is on screen (tests, screenshots)

    # --- content ------------------------------------------------------------------------------
    def set_frame(
        self, frame_u8: np.ndarray | None, aspect: float = 1.0, *, reset_view: bool = False
    ) -> None:
        self._frame = frame_u8
        new_aspect = float(aspect) if aspect and np.isfinite(aspect) and aspect > 0 else 1.0
        geometry_changed = (
            self._item.pixmap().isNull()
            or frame_u8 is None
            or self._item.pixmap().width() != frame_u8.shape[1]
            or self._item.pixmap().height() != frame_u8.shape[0]
            or new_aspect != self._aspect
        )
        self._aspect = new_aspect
        self._render()
        if reset_view or geometry_changed:
            self.fit()

    def set_overlay(
        self, cam: np.ndarray | None, colormap: str, opacity: float, visible: bool
    ) -> None:
        self._cam, self._colormap, self._opacity, self._overlay_visible = (
            cam,
            colormap,
            opacity,
            visible,
        )
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
        if self._cam is not None and self._overlay_visible and self._opacity > 0:
            from octviewer.core.overlay import blend

            shown = blend(shown, self._cam, self._colormap, self._opacity)
        self.rendered = shown
        self._item.setPixmap(QPixmap.fromImage(to_qimage(shown)))
        self._item.setTransform(QTransform.fromScale(1.0, self._aspect))
        self.scene().setSceneRect(self._item.sceneBoundingRect())

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
