"""The volume shortcut: the mirrored view only where it can change the answer.

A model with test-time augmentation (``hflip_tta``: every ensemble member also sees the mirrored
B-scan) costs two forwards per member and frame. For a volume, every frame first gets a
*cheap pass* without the mirrored view; a frame then gets the *full pass* (both views, exactly
what :meth:`Engine.analyze` gives without the shortcut) when any of these holds:

- it is one of the frames the caller names (the frame on screen);
- the cheap pass leaves it close: top-1 minus top-2 probability below ``margin``, or its top
  probability within ``confidence_margin`` of the model's confidence threshold (the
  LOW_CONFIDENCE flag could change);
- its cheap out-of-distribution score is above ``threshold - ood_margin`` (the
  OUT_OF_DISTRIBUTION decision could change; the statistics were fitted on both views), or the
  model has no threshold at all;
- it is among the ``suspicious`` frames with the lowest cheap probability of NORMAL (the frame
  a report shows).

Every frame keeps a score and flags: a frame refined by the full pass has the full pass's,
the others the cheap pass's. The rule and its measured agreement with the full computation are
stated in the model card (``scripts/write_model_card.py``) and ``docs/SPEED.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from octviewer.core.presentation import normal_index
from octviewer.core.results import FrameResult


@dataclass(frozen=True)
class VolumeShortcut:
    """When a frame of a volume needs the full pass (see the module docstring)."""

    margin: float = 0.3
    confidence_margin: float = 0.1
    ood_margin: float = 1.0
    suspicious: int = 3

    def needs_full(self, fr: FrameResult, confidence_threshold: float) -> bool:
        """True when the cheap-pass result ``fr`` could differ from the full pass."""
        p = np.sort(np.asarray(fr.probabilities, np.float64))[::-1]
        if not np.isfinite(p).all():
            return True
        second = p[1] if len(p) > 1 else 0.0
        if p[0] - second < self.margin:
            return True
        if abs(p[0] - float(confidence_threshold)) < self.confidence_margin:
            return True
        if fr.ood_score is None:
            return fr.ood_threshold is not None
        if fr.ood_threshold is None or not np.isfinite(fr.ood_score):
            return True
        return fr.ood_score > fr.ood_threshold - self.ood_margin

    def frames_to_refine(
        self,
        cheap: Iterable[FrameResult],
        confidence_threshold: float,
        keep: Iterable[int] = (),
    ) -> list[int]:
        """Frame indices (sorted) whose cheap results are replaced by the full pass."""
        cheap = list(cheap)
        chosen = {int(k) for k in keep}
        chosen |= {f.frame_index for f in cheap if self.needs_full(f, confidence_threshold)}
        i = normal_index(cheap[0].class_names) if cheap else None
        if i is not None and self.suspicious > 0:
            order = sorted(cheap, key=lambda f: float(f.probabilities[i]))
            chosen |= {f.frame_index for f in order[: self.suspicious]}
        known = {f.frame_index for f in cheap}
        return sorted(chosen & known)
