"""How every face shows a class and a frame: the one home of class colours, class names and
frame numbers (the window, the disease map, the probability strip, the PNG report and the CLI).

- **Colours**: Okabe-Ito, distinguishable with the common colour-vision deficiencies. A class
  named NORMAL is always bluish green; the other classes take :data:`PALETTE` in class order.
  For the Kermany classes: CNV vermilion, DME blue, DRUSEN reddish purple, NORMAL green (of
  the Okabe-Ito sets, this one keeps the four apart best under simulated protanopia,
  deuteranopia and tritanopia and reads best on white: each at least 3:1 against it).
- **Names**: a class is shown by the name the model bundle gives it, unchanged, on every face;
  the class that means "no disease" is found by one rule (:func:`is_normal`, any case: its
  colour, the most suspicious frame, the volume shortcut); frames without a class read
  :data:`NOT_ASSESSED` (headline) or :data:`NOT_ASSESSED_LABEL` / :data:`PENDING_LABEL`
  (legends). A flag's words live in :meth:`octviewer.core.results.ResultFlag.sentence` only.
- **Frame numbers**: a person reads frames 1-based ("frame 3 of 21"), everywhere: window,
  report, CLI text, file names. Only machine fields named ``*_index`` (JSON, CSV) hold the
  0-based index.

Qt-free and import-free: the Qt faces turn these RGB triples into ``QColor``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

RGB = tuple[int, int, int]

#: The class that stands for "no disease": always :data:`NORMAL_RGB`, the reference class of
#: "most suspicious frame" (matched without regard to case).
NORMAL_CLASS = "NORMAL"
NORMAL_RGB: RGB = (0, 158, 115)  # Okabe-Ito bluish green
#: The other classes in class order (Okabe-Ito: vermilion, blue, reddish purple, orange, sky
#: blue, yellow; no grey, which the disease map keeps for frames not analysed yet).
PALETTE: tuple[RGB, ...] = (
    (213, 94, 0),
    (0, 114, 178),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (240, 228, 66),
)

#: The headline of a frame whose class is withheld, and its label in legends and lists.
NOT_ASSESSED = "Not assessed"
NOT_ASSESSED_LABEL = "not assessed"
#: The legend label of frames without a result yet.
PENDING_LABEL = "not analysed yet"
#: The headline of a NORMAL below the model's reassurance operating point (never plain green).
NOT_EXCLUDED = "Looks normal — disease not excluded"
#: Its colour, in the window and the report alike: a dark amber (5:1 on white), not a class's.
NOT_EXCLUDED_RGB: RGB = (154, 103, 0)
#: The disease map's legend of a NORMAL frame below the operating point (drawn amber).
NOT_EXCLUDED_LEGEND = "NORMAL, disease not excluded"


def is_normal(name: str) -> bool:
    """True for the class that means "no disease" (NORMAL, any case)."""
    return name.upper() == NORMAL_CLASS


def normal_index(class_names: Sequence[str]) -> int | None:
    """The index of the NORMAL class among ``class_names``; None when the model has none."""
    return next((i for i, n in enumerate(class_names) if is_normal(n)), None)


def class_rgb(index: int, class_names: Sequence[str] = ()) -> RGB:
    """The colour of class ``index``: NORMAL green, the others :data:`PALETTE` in order."""
    if 0 <= index < len(class_names) and is_normal(class_names[index]):
        return NORMAL_RGB
    return PALETTE[index % len(PALETTE)]


def class_hex(index: int, class_names: Sequence[str] = ()) -> str:
    """:func:`class_rgb` as ``"#RRGGBB"`` (for style sheets and ``QColor``)."""
    return "#{:02X}{:02X}{:02X}".format(*class_rgb(index, class_names))


def frame_number(index: int) -> int:
    """The 1-based number a person reads for the 0-based frame ``index``."""
    return index + 1


def frame_index(number: int) -> int:
    """The 0-based index of the frame a person calls ``number`` (1-based)."""
    return number - 1


def frame_text(index: int, n_frames: int | None = None, *, word: str = "frame") -> str:
    """``"frame 3"`` or ``"frame 3 of 21"`` for the 0-based ``index`` (``word="Frame"`` to
    start a sentence)."""
    total = f" of {n_frames}" if n_frames is not None else ""
    return f"{word} {frame_number(index)}{total}"


def frame_numbers(indices: Iterable[int]) -> str:
    """``"1, 4, 7"``: the 1-based numbers of the 0-based ``indices``, comma-separated."""
    return ", ".join(str(frame_number(i)) for i in indices)


def frame_file_part(index: int) -> str:
    """``"frame003"``: the frame's part of a file name (1-based, three digits)."""
    return f"frame{frame_number(index):03d}"
