"""Work-arounds for defects of the Qt binding that would crash a long session.

PySide6 6.12.0 on CPython 3.11 (measured here): every ``Signal.emit()`` from Python drops one
reference to ``True`` and every ``processEvents()`` one to ``None``. From 3.12 on these objects
are immortal and nothing happens; on 3.11 the interpreter aborts ("bool_dealloc: deallocating
True or False") after some ten thousand signals — minutes of use. :func:`guard_refcounts`
measures the leak once at start-up and, only if it is there, gives ``True``, ``False`` and
``None`` a huge reference count, which is what 3.12's immortal objects do.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_PIN = 1 << 40
_applied = False


def _refs() -> tuple[int, int, int]:
    return sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)


def binding_leaks_singletons(rounds: int = 16) -> bool:
    """True when emitting a signal or processing events loses references to True/False/None."""
    from PySide6.QtCore import QCoreApplication, QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = _refs()
    for _ in range(rounds):
        probe.ping.emit()
    if QCoreApplication.instance() is not None:
        for _ in range(rounds):
            QCoreApplication.processEvents()
    after = _refs()
    return any(a < b - rounds // 2 for a, b in zip(after, before, strict=True))


def guard_refcounts() -> bool:
    """Pin True/False/None when the binding leaks them (CPython < 3.12). Returns True if pinned."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if not binding_leaks_singletons():
        return False
    for obj in (True, False, None):
        ctypes.c_ssize_t.from_address(id(obj)).value += _PIN
    _applied = True
    log.warning(
        "this PySide6 build loses references to True/False/None on every signal; "
        "pinned them so long sessions do not crash (upgrade PySide6 or use Python >= 3.12)"
    )
    return True
