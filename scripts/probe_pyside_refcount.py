"""Probe: does this PySide6 build lose references to True/None on Signal.emit()/processEvents()?

Prints the version and the reference counts before and after 1000 emits. A leaking build
(PySide6 6.12.0 on CPython 3.11, seen here) aborts the interpreter with "bool_dealloc" before
it can print. See octviewer/ui/compat.py and the PySide6 pin in pyproject.toml.
"""

import sys

import PySide6
from PySide6.QtCore import QCoreApplication, QObject, Signal


class _Probe(QObject):
    ping = Signal()


def main() -> None:
    app = QCoreApplication([])
    probe = _Probe()
    before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(1000):
        probe.ping.emit()
    for _ in range(1000):
        app.processEvents()
    after = sys.getrefcount(True), sys.getrefcount(None)
    print(f"PySide6 {PySide6.__version__}: refcounts (True, None) before {before}, after {after}")


if __name__ == "__main__":
    main()
