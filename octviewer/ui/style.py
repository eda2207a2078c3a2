"""Colours and the style sheet shared by the widgets (one place, so the app looks consistent)."""

from __future__ import annotations

from PySide6.QtGui import QColor

# Class colours: distinguishable for common colour-vision deficiencies (Okabe-Ito).
CLASS_COLORS = (
    "#E69F00",
    "#56B4E9",
    "#CC79A7",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#999999",
)
ACCENT = "#3B82C4"
WARNING_BG = "#FFF4CE"
WARNING_FG = "#5C4400"


def class_color(index: int, class_names: tuple[str, ...] = ()) -> QColor:
    """NORMAL is always green; other classes take the palette in order."""
    if class_names and 0 <= index < len(class_names) and class_names[index].upper() == "NORMAL":
        return QColor("#009E73")
    palette = [c for c in CLASS_COLORS if c != "#009E73"]
    return QColor(palette[index % len(palette)])


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
