"""Colours and the style sheet shared by the widgets (one place, so the app looks consistent)."""

from __future__ import annotations

from PySide6.QtGui import QColor

from octviewer.core.presentation import class_rgb

ACCENT = "#3B82C4"
WARNING_BG = "#FFF4CE"
WARNING_FG = "#5C4400"


def class_color(index: int, class_names: tuple[str, ...] = ()) -> QColor:
    """The class colour of :func:`octviewer.core.presentation.class_rgb` as a ``QColor``."""
    return QColor(*class_rgb(index, class_names))


STYLE_SHEET = """
QMainWindow { background: #F4F5F7; }
QLabel#banner {
    background: #7A1F1F; color: white; font-weight: 600; padding: 3px 10px;
}
QLabel#heading { font-size: 11pt; font-weight: 600; color: #30343B; }
QLabel#prediction { font-size: 20pt; font-weight: 700; color: #1F2328; }
QLabel#confidence { font-size: 10pt; color: #4B5563; }
QLabel#warning {
    background: #FFF4CE; color: #5C4400; border: 1px solid #E8C872; border-radius: 4px; padding: 6px;
}
QLabel#legend { color: #4B5563; font-size: 8.5pt; }
QLabel#muted { color: #6B7280; }
QFrame#panel { background: white; border: 1px solid #DDE1E6; border-radius: 6px; }
QListWidget { background: white; border: 1px solid #DDE1E6; border-radius: 6px; }
QListWidget::item { padding: 6px 4px; border-bottom: 1px solid #EEF0F2; }
QListWidget::item:selected { background: #DCEAF7; color: #111; }
QLabel#empty { color: #9AA6B2; font-size: 11pt; }
QLabel#emptyTitle { color: #E8EDF3; font-size: 18pt; font-weight: 600; }
"""
