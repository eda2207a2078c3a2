"""Moved to :mod:`octviewer.core.report.volume`; this name keeps old imports working."""

import sys

from octviewer.core.report import volume as _moved

sys.modules[__name__] = _moved
