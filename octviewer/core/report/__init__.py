"""The PNG report of an analysis, rendered with Pillow (no Qt, no matplotlib).

A report shows, for one frame: the B-scan and the same B-scan with the attention heatmap side
by side (full resolution, small frames upscaled), the predicted class and every class
probability as bars, the warnings of the result in plain words, the source file name,
non-identifying scan metadata, the model's name/version/short SHA-256, the app version, the
date and time, and "Research use only — not for diagnosis". For a volume a per-frame
probability strip follows, then the disease map on the localizer (``report.volume``; or why
there is none). The same facts are stored for machines in PNG text chunks
(``octviewer:version``, ``octviewer:model``, ``octviewer:model_sha256``,
``octviewer:result`` (JSON), ``octviewer:disclaimer``, and for volumes
``octviewer:disease_map`` (JSON)).

Patient name, ID, birth date and sex appear only with ``include_identity=True`` (then also in
the ``octviewer:patient`` chunk). Without it, identity strings are also blanked out of the
file name shown.

A frame that is *not assessed* (``FrameResult.assessable`` False: not an OCT B-scan, or unlike
the training data) gets the headline NOT ASSESSED and its reason, and no class anywhere: its
probabilities and heatmap are left out of the picture and of ``octviewer:result`` unless the
caller passes ``show_unreliable=True``, which draws them small under the caption "Model output
(unreliable, not assessed)". ``octviewer:assessable``, ``octviewer:reason`` and
``octviewer:flags`` (most serious first) state the decision; the JSON also carries
``ood_score``/``ood_threshold``. A non-OCT image is called an "image", its spacing "per pixel".

The rooms: :mod:`.facts` (what a report states, its PNG text chunks), :mod:`.panels` (the drawn
parts) and :mod:`.render` (the whole image, the PNG file). Their names are re-exported here, so
``octviewer.core.report.<name>`` keeps working.
"""

from __future__ import annotations

from octviewer.core.overlay import HEATMAP_LEGEND
from octviewer.core.report.facts import (
    REDACTED,
    choose_frame,
    identity_rows,
    metadata_rows,
    redact,
    result_record,
    source_label,
    text_chunks,
)
from octviewer.core.report.panels import (
    ALERT,
    MAX_UPSCALE,
    MIN_PANEL_WIDTH,
    NOT_ASSESSED_HEADLINE,
    UNRELIABLE_CAPTION,
    WARN_EDGE,
    WARN_FILL,
    WITHHELD,
    frame_panels,
)
from octviewer.core.report.render import render_report, save_report
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER

__all__ = [
    "ALERT",
    "DISCLAIMER",
    "HEATMAP_LEGEND",
    "MAX_UPSCALE",
    "MIN_PANEL_WIDTH",
    "NOT_ASSESSED_HEADLINE",
    "REDACTED",
    "UNRELIABLE_CAPTION",
    "WARN_EDGE",
    "WARN_FILL",
    "WITHHELD",
    "choose_frame",
    "frame_panels",
    "identity_rows",
    "metadata_rows",
    "redact",
    "render_report",
    "result_record",
    "save_report",
    "source_label",
    "text_chunks",
]
