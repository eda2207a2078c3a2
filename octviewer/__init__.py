"""octviewer: open retinal OCT scans, classify them with a MIRAGE model, see where it looked.

Research use only — not for diagnosis.

The public API is small and importing it is cheap (no Qt, no torch until a model is used)::

    import octviewer
    scan = octviewer.load("scan.dcm")          # -> octviewer.Scan
    model = octviewer.load_model()              # None = the bundled default model
    result = octviewer.analyze(scan, model, cam=True)  # -> octviewer.ScanResult
    octviewer.save_report(scan, result, "report.png")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from octviewer._version import __version__
from octviewer.core.results import (
    RESEARCH_ONLY,
    FrameResult,
    ModelIdentity,
    ResultFlag,
    ScanResult,
)
from octviewer.core.scan import (
    Laterality,
    Localizer,
    Modality,
    PatientIdentity,
    PixelSpacing,
    Scan,
    ScanMetadata,
)
from octviewer.errors import OCTViewerError

if TYPE_CHECKING:
    from pathlib import Path

    from octviewer.core.engine import Engine

__all__ = [
    "RESEARCH_ONLY",
    "FrameResult",
    "Laterality",
    "Localizer",
    "Modality",
    "ModelIdentity",
    "OCTViewerError",
    "PatientIdentity",
    "PixelSpacing",
    "ResultFlag",
    "Scan",
    "ScanMetadata",
    "ScanResult",
    "__version__",
    "analyze",
    "load",
    "load_model",
    "plan_folder",
    "save_report",
]


def load(path: str | Path, **kwargs: Any) -> Scan:
    """Open a B-scan image, DICOM file, DICOM series folder, image folder or vendor file."""
    from octviewer.core.io import load as load_scan

    return load_scan(path, **kwargs)


def plan_folder(path: str | Path) -> Any:
    """What ``load(folder)`` will do: ``FolderPlan(decision="one"|"several"|"ask", items)``;
    open an item with ``load(folder, series=item.key)``."""
    from octviewer.core.io import plan_folder as plan

    return plan(path)


def load_model(path: str | Path | None = None, **kwargs: Any) -> Engine:
    """Load a model bundle (None = the bundled default model) into a reusable engine.

    Keyword arguments go to :class:`octviewer.core.engine.Engine` (``device="auto"``,
    ``quantize=None``: int8 when validated for the bundle here, ``threads=None``,
    ``precision="auto"``).
    """
    from octviewer.core.engine import Engine

    return Engine(path, **kwargs)


def analyze(scan: Scan, model: Engine | None = None, **options: Any) -> ScanResult:
    """Analyse a scan with ``model`` (default: the bundled model). ``options``: the fields of
    :class:`~octviewer.core.inference.AnalysisRequest` (``frames=None``, ``cam=True``,
    ``cam_class=None``, ``batch_size=8``, ``shortcut=None``, ``full_frames=()``) and the
    callbacks ``progress(done, total)`` and ``cancel() -> bool``. See ``Engine.analyze``."""
    from octviewer.core.inference import AnalysisRequest

    progress, cancel = options.pop("progress", None), options.pop("cancel", None)
    request = AnalysisRequest(**options)
    engine = model if model is not None else load_model()
    return engine.analyze(scan, request, progress=progress, cancel=cancel)


def save_report(
    scan: Scan, result: ScanResult, path: str | Path, options: Any = None, **kwargs: Any
) -> Path:
    """Render the PNG report of ``result`` (the report page at 200 dpi) and write it to
    ``path``; ``options`` is a ``core.report.PrintOptions`` or its keywords (``frame_index``,
    ``include_identity``, ``show_unreliable``, ``colormap``, ``opacity``, ``contours``,
    ``created``, ``page``). See ``core.report``."""
    from octviewer.core.report import save_report as write_report

    return write_report(scan, result, path, options, **kwargs)
