"""The checks on one scan: load it, analyse it with the CAM, render its report and check each."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer._version import __version__
from octviewer.core.presentation import frame_text
from octviewer.errors import OCTViewerError
from octviewer.selftest.outcome import CaseOutcome

if TYPE_CHECKING:
    from octviewer.core.engine import Engine
    from octviewer.core.scan import Scan

log = logging.getLogger("octviewer.selftest")  # one logger name for the whole self-test

REPORT_CHUNKS = (
    "octviewer:version",
    "octviewer:model",
    "octviewer:model_sha256",
    "octviewer:result",
    "octviewer:disclaimer",
)


def torch_info() -> dict[str, Any]:
    """Which torch the app carries and whether it sees a GPU (for the JSON report)."""
    import torch

    info: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        info["cudnn"] = torch.backends.cudnn.version() if torch.version.cuda else None
    except Exception as exc:  # a GPU build whose cuDNN did not load: worth seeing, not fatal
        info["cudnn"] = f"error: {exc}"
    if info["cuda_available"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _check_result(scan: Scan, result: Any, engine: Engine, case: CaseOutcome) -> None:
    from octviewer.core.results import ResultFlag

    n_classes = engine.config.num_classes
    if len(result.frames) != scan.n_frames:
        case.fail(f"{len(result.frames)} frame results for {scan.n_frames} frames")
    for fr in result.frames:
        p = np.asarray(fr.probabilities, dtype=np.float64)
        if p.shape != (n_classes,) or not np.all(np.isfinite(p)):
            case.fail(
                f"{frame_text(fr.frame_index)}: probabilities {p!r} are not {n_classes} finite numbers"
            )
        elif abs(p.sum() - 1.0) > 1e-3 or p.min() < 0 or p.max() > 1:
            case.fail(f"{frame_text(fr.frame_index)}: probabilities sum to {p.sum():.6f}, not 1")
        flagged = ResultFlag.NOT_OCT in fr.flags
        case.not_oct_flagged |= flagged and not scan.is_oct
        if flagged != (not scan.is_oct):
            case.fail(
                f"{frame_text(fr.frame_index)}: NOT_OCT flag is {flagged} but the scan's modality is "
                f"{scan.metadata.modality.value}"
            )
        if flagged and (fr.assessable or fr.presented_class is not None):
            case.fail(f"{frame_text(fr.frame_index)}: flagged NOT_OCT but presented as a class")
        if engine.ood is not None and not (fr.ood_score is not None and np.isfinite(fr.ood_score)):
            case.fail(
                f"{frame_text(fr.frame_index)}: no out-of-distribution score ({fr.ood_score!r})"
            )


def _check_cam(cam: Any, scan: Scan, case: CaseOutcome, frame: int) -> None:
    if cam is None:
        case.fail(f"{frame_text(frame)}: no CAM although one was requested")
        return
    cam = np.asarray(cam)
    if cam.shape != scan.shape:
        case.fail(f"{frame_text(frame)}: CAM shape {cam.shape} is not the frame grid {scan.shape}")
    elif not np.issubdtype(cam.dtype, np.floating) or not np.all(np.isfinite(cam)):
        case.fail(f"{frame_text(frame)}: CAM is not finite floating point ({cam.dtype})")
    elif cam.min() < 0 or cam.max() > 1 + 1e-6:
        case.fail(f"{frame_text(frame)}: CAM outside [0, 1] ({cam.min():.3g}..{cam.max():.3g})")


def _check_report(path: Path, engine: Engine, case: CaseOutcome) -> None:
    from PIL import Image

    if not path.is_file() or path.stat().st_size == 0:
        case.fail(f"report {path.name} was not written")
        return
    with Image.open(path) as im:
        im.load()
        chunks = dict(getattr(im, "text", {}) or {})
        if im.format != "PNG":
            case.fail(f"report {path.name} is {im.format}, not PNG")
    missing = [k for k in REPORT_CHUNKS if not chunks.get(k)]
    if missing:
        case.fail(f"report {path.name} lacks text chunks {missing}")
        return
    if chunks["octviewer:model_sha256"] != engine.identity.sha256:
        case.fail(f"report {path.name} names model sha256 {chunks['octviewer:model_sha256'][:12]}")
    if chunks["octviewer:version"] != __version__:
        case.fail(f"report {path.name} names version {chunks['octviewer:version']}")
    try:
        record = json.loads(chunks["octviewer:result"])
    except ValueError:
        case.fail(f"report {path.name}: octviewer:result is not JSON")
        return
    if "NOT_OCT" in record.get("flags", ()) and (
        record.get("assessable") is not False or record.get("class") is not None
    ):
        case.fail(f"report {path.name}: a non-OCT frame is reported with a class")


def analyse_case(
    path: Path, engine: Engine, out_dir: Path, case: CaseOutcome, expect: dict[str, Any]
) -> Scan | None:
    """Load, analyse (with CAM), check and report one scan. Returns the scan when it loaded."""
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.io import load
    from octviewer.core.report import save_report

    want_error = expect.get("error")
    try:
        scan = load(path)
    except OCTViewerError as exc:
        names = {c.__name__ for c in type(exc).__mro__}
        if want_error and want_error in names:
            case.notes.append(f"failed as expected: {type(exc).__name__}: {exc}")
            log.info("self-test: %s failed as expected (%s)", case.name, type(exc).__name__)
        else:
            case.fail(f"could not be opened: {type(exc).__name__}: {exc}")
        return None
    except Exception as exc:  # a reader bug: record it, go on with the other samples
        log.exception("self-test: unexpected error opening %s", case.name)
        case.fail(f"unexpected error while opening: {type(exc).__name__}: {exc}")
        return None
    case.loaded = True
    if want_error:
        case.fail(f"opened although {want_error} was expected")
    if expect.get("not_oct") and scan.is_oct:
        case.fail("is a non-OCT sample but was read as an OCT")
    try:
        if scan.is_volume:  # the viewer's way: predictions for all, the CAM for the shown frame
            result = engine.analyze(scan, AnalysisRequest(cam=False))
            k = result.most_suspicious_frame()
            fr = result.frame(k)
            cam = engine.cam(scan, k, fr.predicted_index)
            result = result.with_cam(k, cam, fr.predicted_index)
        else:
            result = engine.analyze(scan, AnalysisRequest(cam=True))
            k = result.frames[0].frame_index
        case.analysed = True
        _check_result(scan, result, engine, case)
        _check_cam(result.frame(k).cam, scan, case, k)
        report = out_dir / f"{len(list(out_dir.glob('*.png'))):02d}_{path.stem}.png"
        save_report(scan, result, report, frame_index=k)
        case.report = report
        _check_report(report, engine, case)
        top = result.frame(k)
        answer = f"{top.predicted_class} {top.confidence:.2f}" if top.assessable else "not assessed"
        case.notes.append(f"{frame_text(k)}: {answer}")
    except OCTViewerError as exc:
        case.fail(f"analysis or report failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # an engine/report bug: record it, go on with the other samples
        log.exception("self-test: unexpected error analysing %s", case.name)
        case.fail(f"unexpected error in analysis or report: {type(exc).__name__}: {exc}")
    return scan


def check_int8(model: Path, engine: Engine, scan: Scan | None, run: Any) -> None:
    """The int8 path (torch.ao graphs, the fbgemm/oneDNN kernels) works in this installation:
    for a bundle calibrated for it, ``quantize=True`` builds static int8 backbones and gives the
    float engine's class, with a heatmap, on a real B-scan. Skipped for other bundles and off
    the CPU (int8 is a CPU option)."""
    from octviewer.core.engine import Engine
    from octviewer.core.inference import AnalysisRequest

    if not engine.config.int8 or not engine.device.startswith("cpu") or scan is None:
        log.info("self-test: int8 check not run (bundle not calibrated for it, or not a CPU)")
        return
    try:
        int8 = Engine(model, device="cpu", quantize=True, int8_cache="off")  # build it here
        got = int8.analyze(scan, AnalysisRequest(frames=[0], cam=True)).frames[0]
    except Exception as exc:  # a packaging gap shows here: record it, go on
        log.exception("self-test: int8 engine failed")
        run.fail(f"int8: {type(exc).__name__}: {exc}")
        return
    if engine.quantized:  # the default arithmetic is int8 for a model validated in it
        engine = Engine(model, device="cpu", quantize=False)
    want = engine.analyze(scan, AnalysisRequest(frames=[0], cam=False)).frames[0]
    if int8.int8_kind != "static":
        run.fail(f"int8: the calibrated bundle fell back to the {int8.int8_kind!r} path")
    elif got.predicted_index != want.predicted_index or got.cam is None:
        run.fail(
            f"int8: class {got.predicted_class} vs {want.predicted_class} in float, "
            f"heatmap {'missing' if got.cam is None else 'present'}"
        )
    else:
        diff = float(np.abs(got.probabilities - want.probabilities).max())
        run.int8 = f"static int8, same class, max probability change {diff:.3f}"
        log.info("self-test: %s", run.int8)


def check_protocol_gate(engine: Engine, run: Any) -> None:
    """The examination works in this installation: the bundled peripapillary circle scan is
    not assessed for its protocol by a model that states it reads macular scans (the reader,
    the scope and the flag together), and its frame carries a quality verdict."""
    from octviewer.core.inference import AnalysisRequest
    from octviewer.core.io import load
    from octviewer.core.results import ResultFlag
    from octviewer.selftest_readers import selftest_dir

    if not engine.scope.is_stated:
        log.info("self-test: protocol check not run (the bundle states no scope)")
        return
    try:
        frame = engine.analyze(
            load(selftest_dir() / "circular-valid.vol"), AnalysisRequest(cam=False)
        ).frames[0]
    except Exception as exc:  # a reader or check missing from the bundle shows here
        log.exception("self-test: the protocol check failed")
        run.fail(f"protocol check: {type(exc).__name__}: {exc}")
        return
    if frame.withholding_flag is not ResultFlag.OUT_OF_SCOPE or frame.quality is None:
        run.fail(
            f"protocol check: the circle scan was {frame.headline} "
            f"({frame.withholding_flag}), expected not assessed for its protocol"
        )
    else:
        log.info("self-test: circle scan not assessed: %s", frame.reason)
