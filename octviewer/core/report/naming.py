"""Safe, unique file names for reports: one home for the rules the viewer and the CLI use.

The two callers keep their own (different, long-standing) options: the CLI strips leading and
trailing dots/underscores and numbers clashes case-insensitively (``scan``, ``scan_2``); the
viewer truncates stems at 60 characters and marks a clash with an underscore before ``.png``.
"""

from __future__ import annotations

SAFE_CHARS = "-_."
FALLBACK = "scan"


def safe_stem(name: str, *, max_len: int | None = None, strip: bool = False) -> str:
    """``name`` with every character but letters, digits and ``-_.`` replaced by ``_``;
    ``strip`` removes leading/trailing ``.`` and ``_``, ``max_len`` truncates; ``"scan"``
    when nothing is left."""
    cleaned = "".join(c if c.isalnum() or c in SAFE_CHARS else "_" for c in name)
    if strip:
        cleaned = cleaned.strip("._")
    if max_len is not None:
        cleaned = cleaned[:max_len]
    return cleaned or FALLBACK


def unique_name(
    name: str, used: set[str], *, ignore_case: bool = False, numbered: bool = False
) -> str:
    """``name``, or the first variant of it not in ``used``; the result is added to ``used``
    (lower-cased with ``ignore_case``).

    ``numbered``: ``name_2``, ``name_3``, ... Otherwise an underscore goes before ``.png``
    (``x_report.png`` -> ``x_report_.png`` -> ``x_report__.png``), or at the end of a name
    without ``.png``."""

    def key(s: str) -> str:
        return s.lower() if ignore_case else s

    candidate, k = name, 2
    while key(candidate) in used:
        if numbered:
            candidate, k = f"{name}_{k}", k + 1
        elif ".png" in candidate:
            candidate = candidate.replace(".png", "_.png")
        else:
            candidate += "_"
    used.add(key(candidate))
    return candidate
