"""``python -m octviewer.cli``: the command line, as when ``octviewer/cli.py`` was one module."""

import sys

from octviewer.cli import main

sys.exit(main())
