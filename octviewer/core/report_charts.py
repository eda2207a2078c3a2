"""Moved to :mod:`octviewer.core.report.charts`; this name keeps old imports working."""

import sys

from octviewer.core.report import charts as _moved

sys.modules[__name__] = _moved
