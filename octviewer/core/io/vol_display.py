"""The display transform of Heidelberg ``.vol`` reflectivity: one home for it.

A ``.vol`` file stores each B-scan as 32-bit float reflectivity, linear in the detected
signal, nominally in [0, 1], with ``FLT_MAX`` marking A-scans that hold no data. HEYEX shows
(and exports) them after a fourth-root compression; the same rule is the one published with
the HSF-OCT file description and used by the reference readers (``openVol.m``:
``BScan .^ 0.25``)::

    display = round(255 * clip(reflectivity, 0, 1) ** 0.25)

Kermany's B-scans are HEYEX exports, so the fourth root is what makes a raw ``.vol`` B-scan
look like the images the model learned from. eyepy's ``from_vol_intensity`` maps the same
values through a logarithm instead (``(log(x + 2.44e-4) + 8.3) / 8.285``), which lifts the
vitreous and flattens the layers; the bundled model scored every development ``.vol`` line
scan as foreign under it (out-of-distribution score 3.7-7.4 against a threshold of 2.9) and
in distribution under the fourth root (0.6-2.6). docs/TRAINING.md has the figures.

Training uses :func:`to_reflectivity` and :data:`DISPLAY_EXPONENT` to simulate raw scans shown
through neighbouring mappings (``training/data/augment.py``).
"""

from __future__ import annotations

import numpy as np

#: HEYEX's display compression: ``display = reflectivity ** DISPLAY_EXPONENT``.
DISPLAY_EXPONENT = 0.25

#: Reflectivity at or above this marks an A-scan the device did not record (``FLT_MAX``).
NO_DATA = float(np.finfo(np.float32).max) * 0.5


def vol_display(reflectivity: np.ndarray) -> np.ndarray:
    """8-bit display values of float ``.vol`` reflectivity, as HEYEX shows them.

    Values outside [0, 1] are clipped; ``FLT_MAX`` (no data), NaN and negative values show
    black."""
    r = np.asarray(reflectivity, dtype=np.float32)
    valid = np.isfinite(r) & (r < NO_DATA)
    r = np.clip(np.where(valid, r, 0.0), 0.0, 1.0)
    return np.rint(255.0 * np.power(r, DISPLAY_EXPONENT)).astype(np.uint8)


def to_reflectivity(display: np.ndarray) -> np.ndarray:
    """The inverse of the display transform: display values in [0, 1] back to reflectivity."""
    d = np.clip(np.asarray(display, dtype=np.float32), 0.0, 1.0)
    return np.power(d, 1.0 / DISPLAY_EXPONENT)
