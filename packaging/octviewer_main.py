"""Entry point of the packaged (PyInstaller) octviewer executable: the same dispatcher as the
installed ``octviewer`` launcher and ``python -m octviewer`` (:mod:`octviewer.__main__`)."""

from __future__ import annotations

import sys

from octviewer.__main__ import help_text, main

__all__ = ["help_text", "main"]

if __name__ == "__main__":
    sys.exit(main())
