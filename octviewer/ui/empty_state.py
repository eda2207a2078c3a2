"""The window's first screen, before a scan is opened: an invitation to drop one."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class EmptyState(QWidget):
    """What the window shows before a scan is opened: an invitation to drop one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(
            "QWidget#emptyState { background: #0C0E12; } QLabel { background: transparent; }"
        )
        lay = QVBoxLayout(self)
        lay.addStretch(2)
        icon = QLabel()
        from octviewer.resources import icon_path

        pm = QIcon(str(icon_path())).pixmap(QSize(96, 96))
        icon.setPixmap(pm)
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("Drop OCT scans here")
        title.setObjectName("emptyTitle")
        text = QLabel(
            "or use File > Open files… (Ctrl+O), File > Open folder… (Ctrl+Shift+O)\n"
            "or try one of the sample scans: File > Open sample\n\n"
            "DICOM B-scans, volumes and series folders · PNG · JPEG · TIFF · BMP\n"
            "Heidelberg .vol (with its SLO)"
        )
        text.setObjectName("empty")
        text.setWordWrap(True)
        for w in (icon, title, text):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lay.addWidget(w)
        lay.addStretch(3)
