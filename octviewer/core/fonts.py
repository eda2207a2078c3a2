"""Moved to :mod:`octviewer.core.report.fonts`; this name keeps old imports working."""

import sys

from octviewer.core.report import fonts as _moved

sys.modules[__name__] = _moved
