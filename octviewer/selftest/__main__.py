"""``python -m octviewer.selftest``: the self-test, as when ``octviewer/selftest.py`` was one module."""

import sys

from octviewer.selftest import main

sys.exit(main())
