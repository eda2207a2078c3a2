"""The report of an analysis: one fixed page (A4 portrait, or US Letter), drawn once as a
vector PDF (:mod:`.pdf`, fpdf2) and rasterised by PDFium for the PNG report (:mod:`.render`,
200 dpi: 1654 × 2339 px on A4). No Qt, no matplotlib.

The page shows, for one frame: the B-scan and the same B-scan with the attention heatmap side
by side (scaled into their panels, never stretching the page; small frames upscaled first),
the predicted class and every class probability as bars, the warnings of the result in plain
words, the source file name, non-identifying scan metadata, the model's name/version/short
SHA-256, the app version, the date and time, and "Research use only — not for diagnosis". A
single B-scan with a localizer shows it with the scan line; a volume gets a per-frame
probability strip and the disease map on the localizer (``report.volume``; or why there is
none). The PNG stores the same facts for machines in text chunks (``octviewer:version``,
``octviewer:model``, ``octviewer:model_sha256``, ``octviewer:result`` (JSON),
``octviewer:disclaimer``, ``octviewer:page``, and for volumes ``octviewer:disease_map``
(JSON)).

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

The rooms: :mod:`.facts` (what a report states, its PNG text chunks), :mod:`.pdf` with
:mod:`.pdf_page` and :mod:`.pdf_draw` (the page), :mod:`.render` (the PNG). Their names are
re-exported here, so ``octviewer.core.report.<name>`` keeps working.
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
)
from octviewer.core.report.pdf import PrintOptions
from octviewer.core.report.render import (
    PNG_DPI,
    render_report,
    save_report,
    save_report_and_pdf,
)
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER

__all__ = [
    "ALERT",
    "DISCLAIMER",
    "HEATMAP_LEGEND",
    "MAX_UPSCALE",
    "MIN_PANEL_WIDTH",
    "NOT_ASSESSED_HEADLINE",
    "PNG_DPI",
    "REDACTED",
    "UNRELIABLE_CAPTION",
    "WARN_EDGE",
    "WARN_FILL",
    "WITHHELD",
    "PrintOptions",
    "choose_frame",
    "identity_rows",
    "metadata_rows",
    "redact",
    "render_report",
    "result_record",
    "save_report",
    "save_report_and_pdf",
    "source_label",
    "text_chunks",
]
