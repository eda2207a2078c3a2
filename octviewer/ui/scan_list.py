"""The side list of opened scans, each with its status or result.

A scan whose shown frame is *not assessed* says so (``presenters.entry_summary``: "not
assessed: ...", never a class) and gets a grey ring instead of a coloured dot. Entries wrap to
the list's width (a long file name breaks anywhere); the tooltip holds the entry's whole text
and its path; the list never scrolls sideways.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QListWidget,
    QListWidgetItem,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from octviewer.viewer.entry import EntryStatus, ScanEntry
from octviewer.viewer.presenters import entry_summary

_STATUS_COLORS = {
    EntryStatus.OPENING: "#9CA3AF",
    EntryStatus.WAITING: "#9CA3AF",
    EntryStatus.QUEUED: "#9CA3AF",
    EntryStatus.ANALYSING: "#3B82C4",
    EntryStatus.DONE: "#16A34A",
    EntryStatus.CANCELLED: "#D97706",
    EntryStatus.FAILED: "#DC2626",
    EntryStatus.ANALYSIS_FAILED: "#DC2626",
}


NOT_ASSESSED_RING = "#6B7280"
#: The item's horizontal padding in the style sheet (``QListWidget::item``, both sides).
ITEM_PADDING_X = 8


class _FitDelegate(QStyledItemDelegate):
    """Items as wide as the list: the text wraps inside the style sheet's padding. Qt wraps
    at the viewport's width and then adds the padding, which made every item wider than the
    list (clipped text and a horizontal scrollbar).

    The fitted size is computed once per text and list width and stored in the item
    (``SizeHintRole``, which Qt's own ``sizeHint`` returns without calling Python): Qt asks
    every item's size at each layout, and a Python ``sizeHint`` made adding the thousandth
    scan cost 20 ms."""

    def fitted_size(self, view: QListView, index: QModelIndex) -> QSize:
        """The item's size when wrapped to ``view``'s width (its own size hint ignored)."""
        width = view.viewport().width()
        opt = QStyleOptionViewItem()
        view.initViewItemOption(opt)
        # a valid rectangle: the style wraps the text to its width (an empty one: no wrap)
        opt.rect = QRect(0, 0, max(40, width - ITEM_PADDING_X), max(1, view.viewport().height()))
        size = super().sizeHint(opt, index)
        return QSize(min(size.width(), width), size.height())


def _dot(color: str, flagged: bool = False, not_assessed: bool = False) -> QIcon:
    pm = QPixmap(32, 32)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    if not_assessed:
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(NOT_ASSESSED_RING), 5))
        p.drawEllipse(8, 8, 16, 16)
        p.end()
        return QIcon(pm)
    p.setBrush(QColor("#D97706" if flagged else color))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(6, 6, 20, 20)
    p.end()
    return QIcon(pm)


class ScanList(QListWidget):
    current_uid_changed = Signal(int)
    remove_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setIconSize(QSize(12, 12))
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self._delegate = _FitDelegate(self)  # kept: PySide drops an unreferenced subclass
        self.setItemDelegate(self._delegate)
        self.setResizeMode(QListView.ResizeMode.Adjust)  # wrap again when the list is resized
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setMinimumWidth(200)
        self.setAcceptDrops(False)
        self.currentItemChanged.connect(self._on_current)
        self._items: dict[int, QListWidgetItem] = {}
        self._fitted_width = -1

    def _item(self, uid: int) -> QListWidgetItem | None:
        """The item of ``uid`` (a lookup: a search of 1,000 items took a millisecond, and
        every status change of every scan asks)."""
        return self._items.get(uid)

    def render(self, entry: ScanEntry) -> None:
        """Draw one entry, added or changed (the list is drawn an entry at a time: redrawing a
        thousand items on every event would be slow)."""
        it = self._item(entry.uid)
        if it is None:
            it = QListWidgetItem()
            it.setData(Qt.ItemDataRole.UserRole, entry.uid)
            self.addItem(it)
            self._items[entry.uid] = it
        text = f"{entry.name}\n{entry_summary(entry)}"
        if text != it.text():
            it.setText(text)
            self._fit(it)
        done = entry.status is EntryStatus.DONE and entry.result is not None
        shown = None
        if done:
            res = entry.result
            shown = res.frame(res.most_suspicious_frame()) if len(res.frames) > 1 else res.frames[0]
        it.setIcon(
            _dot(
                _STATUS_COLORS[entry.status],
                flagged=shown is not None and shown.is_flagged,
                not_assessed=shown is not None and not shown.assessable,
            )
        )
        tip = f"{it.text()}\n{entry.path}"  # what the entry says, whole, and where it is
        if entry.error:
            tip += "\n\n" + entry.error
        it.setToolTip(tip)

    def _fit(self, it: QListWidgetItem) -> None:
        it.setData(Qt.ItemDataRole.SizeHintRole, None)  # the natural size, not the stored one
        it.setSizeHint(self._delegate.fitted_size(self, self.indexFromItem(it)))

    def _fit_all(self) -> None:
        if self.viewport().width() == self._fitted_width:
            return
        self._fitted_width = self.viewport().width()
        for it in self._items.values():
            self._fit(it)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fitted_width = -1  # the text's size changed: fit every item again
            self._fit_all()

    def viewportEvent(self, event: QEvent) -> bool:
        """The viewport's width changes with the list's and when the scrollbar comes or goes:
        every item is fitted again (as often as Qt asked a Python size hint for every item
        before, at each layout)."""
        if event.type() == QEvent.Type.Resize:
            self._fit_all()
        return super().viewportEvent(event)

    def remove(self, uid: int) -> None:
        it = self._items.pop(uid, None)
        if it is not None:
            self.takeItem(self.row(it))

    def select(self, uid: int) -> None:
        it = self._item(uid)
        if it is not None:
            self.setCurrentItem(it)

    def current_uid(self) -> int | None:
        it = self.currentItem()
        return None if it is None else int(it.data(Qt.ItemDataRole.UserRole))

    def uids(self) -> list[int]:
        return [int(self.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.count())]

    def _on_current(self, cur: QListWidgetItem | None, _prev: QListWidgetItem | None) -> None:
        if cur is not None:
            self.current_uid_changed.emit(int(cur.data(Qt.ItemDataRole.UserRole)))

    def keyPressEvent(self, event) -> None:
        if (
            event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)
            and self.current_uid() is not None
        ):
            self.remove_requested.emit(self.current_uid())
            return
        super().keyPressEvent(event)
