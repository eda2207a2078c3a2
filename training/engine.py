"""Old name of :mod:`training.loop` (the training loop), kept importable.

``training.engine`` is the very same module object as ``training.loop``, so attribute access
and monkeypatching through either name behave alike. New code imports ``training.loop``: the
app's inference service is ``octviewer.core.engine``.
"""

import sys

from training import loop as _loop

sys.modules[__name__] = _loop
