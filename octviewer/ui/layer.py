"""A widget's static drawing kept as a pixmap: drawn again only when what it shows changed.

The localizer's lines and the probability strip's plot of a 1,000-frame volume take 10-25 ms to
stroke; a frame step changes only the current frame's marker, so each paint draws the kept
layer and the marker on top.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import QWidget


class Layer:
    """The pixmap ``paint`` drew for ``widget``, kept while the widget's size and pixel ratio,
    the ``key`` values (compared by equality) and the ``drawn`` objects (compared by
    identity: arrays and results are replaced, never changed in place) stay the same."""

    def __init__(self, widget: QWidget, paint: Callable[[QPainter], None]) -> None:
        self._widget = widget
        self._paint = paint
        self._pixmap: QPixmap | None = None
        self._key: tuple = ()
        self._drawn: tuple = ()

    def pixmap(self, key: Sequence[Hashable], drawn: Sequence[object]) -> QPixmap:
        w = self._widget
        dpr = w.devicePixelRatioF()
        full_key = (w.size(), dpr, *key)
        if (
            self._pixmap is not None
            and self._key == full_key
            and len(self._drawn) == len(drawn)
            and all(a is b for a, b in zip(self._drawn, drawn, strict=True))
        ):
            return self._pixmap
        layer = QPixmap(round(w.width() * dpr), round(w.height() * dpr))
        layer.setDevicePixelRatio(dpr)
        p = QPainter(layer)
        self._paint(p)
        p.end()
        self._pixmap, self._key, self._drawn = layer, full_key, tuple(drawn)
        return layer
