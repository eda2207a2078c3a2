"""Entry point of the packaged (PyInstaller) octviewer executable.

``octviewer [FILES...] [--model B]``   the viewer (``octviewer.ui.app.main``)
``octviewer analyze|model-info ...``    the command line (``octviewer.cli``)
``octviewer --self-test [...]``         headless check of the packaged app (``octviewer.selftest``)

The same dispatch as ``python -m octviewer``, except that ``--self-test`` goes straight to the
self-test so that it never imports Qt and accepts all its own options (``--samples``, ``--json``).
"""

from __future__ import annotations

import sys


def _run(argv: list[str]) -> int:
    if "--self-test" in argv:
        from octviewer.selftest import main as selftest

        return selftest(argv)
    from octviewer.__main__ import main

    return int(main(argv) or 0)


if __name__ == "__main__":
    sys.exit(_run(sys.argv[1:]))
