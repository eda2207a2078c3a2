"""The PNG report of an analysis, rendered with Pillow (no Qt, no matplotlib).

A report shows, for one frame: the B-scan and the same B-scan with the attention heatmap side
by side (full resolution, small frames upscaled), the predicted class and every class
probability as bars, the warnings of the result in plain words, the source file name,
non-identifying scan metadata, the model's name/version/short SHA-256, the app version, the
date and time, and "Research use only — not for diagnosis". For a volume a per-frame
probability strip follows. The same facts are stored for machines in PNG text chunks
(``octviewer:version``, ``octviewer:model``, ``octviewer:model_sha256``,
``octviewer:result`` (JSON), ``octviewer:disclaimer``).

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
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from octviewer._version import __version__
from octviewer.core import overlay
from octviewer.core.filemode import apply_umask
from octviewer.core.fonts import font
from octviewer.core.report_charts import (
    INK,
    MUTED,
    draw_key_values,
    draw_probability_bars,
    draw_probability_strip,
    draw_wrapped,
    line_height,
    text,
    text_width,
    wrap,
)
from octviewer.core.results import RESEARCH_ONLY as DISCLAIMER
from octviewer.core.results import FrameResult, ScanResult
from octviewer.core.scan import Laterality, PatientIdentity, Scan, ScanMetadata
from octviewer.errors import ReportError

log = logging.getLogger(__name__)

HEATMAP_LEGEND = "Heatmap: where the model looked — not a lesion outline"
MIN_PANEL_WIDTH = 640  # frames narrower than this are upscaled for readability
MAX_UPSCALE = 4.0
WARN_FILL = (255, 243, 205)
WARN_EDGE = (204, 140, 0)
ALERT = (176, 0, 32)
REDACTED = "[redacted]"
NOT_ASSESSED_HEADLINE = "NOT ASSESSED"
UNRELIABLE_CAPTION = "Model output (unreliable, not assessed)"
WITHHELD = (
    "The model's probabilities and heatmap are left out because this frame is not assessed "
    "(export with 'Show model output anyway' / --show-unreliable to include them, marked "
    "unreliable)."
)


@dataclass(frozen=True)
class _Fonts:
    small: Any
    body: Any
    bold: Any
    h2: Any
    h1: Any


def _fonts(unit: float) -> _Fonts:
    def px(n: float) -> int:
        return max(10, round(n * unit))

    return _Fonts(
        font(px(15)), font(px(18)), font(px(18), True), font(px(22), True), font(px(30), True)
    )


# --- facts --------------------------------------------------------------------------------
def redact(s: str, identity: PatientIdentity) -> str:
    """``s`` with the patient's name parts and ID replaced by ``[redacted]`` (case-insensitive)."""
    tokens: list[str] = []
    if identity.patient_id:
        tokens.append(identity.patient_id.strip())
    if identity.name:
        tokens.extend(t for t in identity.name.replace("^", " ").replace(",", " ").split())
    out = s
    for tok in sorted({t for t in tokens if len(t) >= 3}, key=len, reverse=True):
        idx = out.lower().find(tok.lower())
        while idx >= 0:
            out = out[:idx] + REDACTED + out[idx + len(tok) :]
            idx = out.lower().find(tok.lower(), idx + len(REDACTED))
    return out


def source_label(scan: Scan, *, include_identity: bool = False) -> str:
    """The file name shown in reports and summaries (identity blanked unless asked for)."""
    name = scan.metadata.display_name
    return name if include_identity else redact(name, scan.identity)


def choose_frame(result: ScanResult, frame_index: int | None) -> FrameResult:
    """The frame a report shows: ``frame_index``, or the most suspicious analysed frame."""
    if not result.frames:
        raise ReportError("There is no analysis result to report. Analyse the scan first.")
    if frame_index is None:
        frame_index = result.most_suspicious_frame()
    try:
        return result.frame(frame_index)
    except KeyError:
        done = ", ".join(str(f.frame_index) for f in result.frames[:10])
        raise ReportError(
            f"Frame {frame_index} was not analysed (analysed frames: {done}"
            f"{', ...' if len(result.frames) > 10 else ''}). Analyse that frame first."
        ) from None


def _spacing_text(meta: ScanMetadata) -> str | None:
    sp = meta.spacing
    if sp is None:
        return None
    if not meta.modality.is_oct:  # an en-face image has no axial direction, no B-scans
        if sp.unit == "mm":
            return f"{sp.col * 1000:.2f} × {sp.row * 1000:.2f} µm per pixel"
        return f"{sp.col:g} × {sp.row:g} {sp.unit} per pixel"
    if sp.unit == "mm":
        s = f"{sp.row * 1000:.2f} µm axial × {sp.col * 1000:.2f} µm lateral"
        if sp.frame:
            s += f", {sp.frame * 1000:.0f} µm between B-scans"
        return s
    s = f"{sp.row:g} × {sp.col:g} {sp.unit}"
    return s + (f", {sp.frame:g} {sp.unit} between B-scans" if sp.frame else "")


def metadata_rows(scan: Scan, frame_index: int) -> list[tuple[str, str]]:
    """Non-identifying scan facts as (label, value) rows."""
    m = scan.metadata
    eye = {Laterality.RIGHT: "OD (right eye)", Laterality.LEFT: "OS (left eye)"}.get(
        m.laterality, "not recorded"
    )
    device = " ".join(p for p in (m.manufacturer, m.device_model) if p) or "not recorded"
    rows = [
        ("Format", m.format + (f" ({m.sop_class})" if m.sop_class else "")),
        ("Modality", m.modality.value),
        ("Eye", eye),
        ("Device", device),
        ("Pixel spacing", _spacing_text(m) or "not recorded"),
        ("Acquired", m.acquisition_date.isoformat() if m.acquisition_date else "not recorded"),
        (
            "Frame",
            f"{frame_index + 1} of {scan.n_frames}"
            + (f" (index {frame_index})" if scan.is_volume else ""),
        ),
        ("Size", f"{scan.shape[1]} × {scan.shape[0]} px, {m.bit_depth}-bit"),
    ]
    if m.downsampled_from:
        rows.append(("Original size", f"{m.downsampled_from[1]} × {m.downsampled_from[0]} px"))
    if m.notes:
        rows.append(("Notes", "; ".join(m.notes)))
    return rows


def identity_rows(identity: PatientIdentity) -> list[tuple[str, str]]:
    return [
        ("Name", (identity.name or "not recorded").replace("^", " ").strip()),
        ("Patient ID", identity.patient_id or "not recorded"),
        ("Birth date", identity.birth_date or "not recorded"),
        ("Sex", identity.sex or "not recorded"),
    ]


def result_record(
    scan: Scan,
    result: ScanResult,
    fr: FrameResult,
    *,
    include_identity: bool = False,
    created: _dt.datetime | None = None,
    show_unreliable: bool = False,
) -> dict[str, Any]:
    """The machine-readable facts of a report (stored as JSON in ``octviewer:result``).

    For a frame that is not assessed ``class`` and ``confidence`` are None, and the
    probabilities and heatmap class are left out (None) unless ``show_unreliable``, as in the
    picture; ``unreliable_output_shown`` says which."""
    revealed = fr.assessable or show_unreliable
    return {
        "file": source_label(scan, include_identity=include_identity),
        "frame": fr.frame_index,
        "n_frames": scan.n_frames,
        "assessable": fr.assessable,
        "reason": fr.reason,
        "class": fr.presented_class,
        "confidence": round(fr.confidence, 6) if fr.assessable else None,
        "probabilities": {
            n: round(float(p), 6) for n, p in zip(fr.class_names, fr.probabilities, strict=True)
        }
        if revealed
        else None,
        "unreliable_output_shown": bool(show_unreliable and not fr.assessable),
        "flags": [f.name for f in fr.ordered_flags],
        "ood_score": fr.ood_score,
        "ood_threshold": fr.ood_threshold,
        "cam_class": fr.class_names[fr.cam_class]
        if revealed and fr.cam is not None and fr.cam_class is not None
        else None,
        "model": {
            "name": result.model.name,
            "version": result.model.version,
            "sha256": result.model.sha256,
        },
        "device": result.device,
        "octviewer_version": __version__,
        "created": (created or _dt.datetime.now().astimezone()).isoformat(timespec="seconds"),
    }


def text_chunks(
    scan: Scan,
    result: ScanResult,
    fr: FrameResult,
    *,
    include_identity: bool = False,
    created: _dt.datetime | None = None,
    show_unreliable: bool = False,
) -> dict[str, str]:
    record = result_record(
        scan,
        result,
        fr,
        include_identity=include_identity,
        created=created,
        show_unreliable=show_unreliable,
    )
    chunks = {
        "Software": f"octviewer {__version__}",
        "octviewer:version": __version__,
        "octviewer:model": f"{result.model.name} {result.model.version}",
        "octviewer:model_sha256": result.model.sha256,
        "octviewer:result": json.dumps(record, ensure_ascii=False, sort_keys=True),
        "octviewer:disclaimer": DISCLAIMER,
        "octviewer:assessable": "yes" if fr.assessable else "no",
        "octviewer:flags": ",".join(f.name for f in fr.ordered_flags),
    }
    if fr.reason:
        chunks["octviewer:reason"] = fr.reason
    if include_identity:
        chunks["octviewer:patient"] = json.dumps(
            dict(identity_rows(scan.identity)), ensure_ascii=False
        )
    return chunks


# --- rendering ----------------------------------------------------------------------------
def _panels(
    scan: Scan, fr: FrameResult, colormap: str, opacity: float
) -> tuple[Image.Image, Image.Image | None]:
    frame = scan.frame_as_uint8(fr.frame_index)
    rows, cols = frame.shape
    scale = min(MAX_UPSCALE, max(1.0, MIN_PANEL_WIDTH / cols))
    size = (round(cols * scale), round(rows * scale))
    left = Image.fromarray(frame, "L").convert("RGB")
    right = None
    if fr.cam is not None:
        right = Image.fromarray(overlay.blend(frame, fr.cam, colormap, opacity), "RGB")
    if scale > 1.0:
        left = left.resize(size, Image.Resampling.BICUBIC)
        right = right.resize(size, Image.Resampling.BICUBIC) if right is not None else None
    return left, right


def _colorbar(colormap: str, width: int, height: int) -> Image.Image:
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    return Image.fromarray(overlay.colorize(ramp, colormap)[..., :3], "RGB")


def _draw_answer(
    d: ImageDraw.ImageDraw,
    x: float,
    y: float,
    width: float,
    fr: FrameResult,
    f: _Fonts,
    show_unreliable: bool,
) -> int:
    """The headline and the probabilities; returns the height used.

    Assessable: the class and its probability in large type, bars. Not assessed: NOT ASSESSED
    and the reason, then the probabilities only small and captioned unreliable when asked."""
    lh = line_height(f.body)
    h = 0
    text(d, (x, y), "Model output", f.h2)
    h += line_height(f.h2)
    if fr.assessable:
        headline = f"{fr.predicted_class}  {100 * fr.confidence:.1f} %"
        if fr.is_flagged:
            text(d, (x, y + h), "UNCERTAIN — " + headline, f.h1, WARN_EDGE)
        else:
            text(d, (x, y + h), headline, f.h1, INK)
        h += line_height(f.h1) + 4
        h += draw_probability_bars(
            d, x, y + h, width, fr.class_names, fr.probabilities, fr.predicted_index, f.body, f.bold
        )
        if fr.ood_text:
            h += draw_wrapped(d, x, y + h, fr.ood_text.capitalize() + ".", f.small, width, MUTED)
        return h + round(lh * 0.5)
    text(d, (x, y + h), NOT_ASSESSED_HEADLINE, f.h1, ALERT)
    h += line_height(f.h1) + 4
    h += draw_wrapped(d, x, y + h, fr.reason_text or "", f.body, width) + round(lh * 0.4)
    if fr.ood_text:
        h += draw_wrapped(d, x, y + h, fr.ood_text.capitalize() + ".", f.small, width, MUTED)
    if show_unreliable:
        text(d, (x, y + h), UNRELIABLE_CAPTION, f.small, ALERT)
        h += line_height(f.small)
        h += draw_probability_bars(
            d,
            x,
            y + h,
            width * 0.7,
            fr.class_names,
            fr.probabilities,
            fr.predicted_index,
            f.small,
            f.small,
        )
    else:
        h += draw_wrapped(d, x, y + h, WITHHELD, f.small, width, MUTED)
    return h + round(lh * 0.5)


def render_report(
    scan: Scan,
    result: ScanResult,
    *,
    frame_index: int | None = None,
    include_identity: bool = False,
    colormap: str = overlay.DEFAULT_COLORMAP,
    opacity: float = overlay.DEFAULT_OPACITY,
    created: _dt.datetime | None = None,
    show_unreliable: bool = False,
) -> Image.Image:
    """Render the report of one frame (default: the most suspicious analysed frame).

    ``show_unreliable``: for a frame that is not assessed, draw its probabilities and heatmap
    anyway (marked unreliable); by default they are left out.
    Returns an RGB image whose ``info`` holds the text chunks :func:`save_report` writes.
    """
    fr = choose_frame(result, frame_index)
    if not 0 <= fr.frame_index < scan.n_frames:
        raise ReportError(
            f"The result refers to frame {fr.frame_index}, but the scan has {scan.n_frames} frame(s)."
        )
    created = created or _dt.datetime.now().astimezone()
    revealed = fr.assessable or show_unreliable
    left, right = _panels(scan, fr if revealed else replace(fr, cam=None), colormap, opacity)
    pw, ph = left.size
    width = max(1280, 2 * pw + 3 * 32)
    u = width / 1600
    f = _fonts(max(0.85, u))
    margin = round(32 * u) if u > 1 else 32
    gap = width - 2 * margin - 2 * pw
    inner = width - 2 * margin
    height_bound = ph + round(1600 * max(1.0, u)) + (380 if len(result.frames) > 1 else 0)
    img = Image.new("RGB", (width, height_bound), "white")
    d = ImageDraw.Draw(img)
    lh = line_height(f.body)

    # header: title left, disclaimer banner right
    y = margin
    text(d, (margin, y), "OCT analysis report" if scan.is_oct else "Image analysis report", f.h1)
    banner = DISCLAIMER.upper()
    bw = text_width(banner, f.h2) + 2 * f.h2.size
    bh = line_height(f.h2) + f.h2.size * 0.4
    d.rounded_rectangle(
        (width - margin - bw, y - 4, width - margin, y - 4 + bh), radius=6, fill=ALERT
    )
    text(
        d, (width - margin - bw + f.h2.size, y - 4 + f.h2.size * 0.3), banner, f.h2, (255, 255, 255)
    )
    y += max(line_height(f.h1), bh) + 4
    label = source_label(scan, include_identity=include_identity)
    sub = f"File: {label}" + (
        f"   ·   Frame {fr.frame_index + 1} of {scan.n_frames}" if scan.is_volume else ""
    )
    y += draw_wrapped(d, margin, y, sub, f.body, inner, MUTED) + round(lh * 0.4)

    # images
    cam_name = fr.class_names[fr.cam_class] if fr.cam_class is not None else fr.predicted_class
    text(d, (margin, y), "B-scan" if scan.is_oct else "Image", f.bold)
    if right is not None and not fr.assessable:
        text(d, (margin + pw + gap, y), f"Heatmap for {cam_name} — UNRELIABLE", f.bold, ALERT)
    else:
        text(
            d,
            (margin + pw + gap, y),
            f"Heatmap for class {cam_name}" if right else "Heatmap",
            f.bold,
        )
    y += lh
    img.paste(left, (margin, y))
    d.rectangle((margin - 1, y - 1, margin + pw, y + ph), outline=(190, 190, 190))
    if right is not None:
        img.paste(right, (margin + pw + gap, y))
        d.rectangle(
            (margin + pw + gap - 1, y - 1, margin + 2 * pw + gap, y + ph), outline=(190, 190, 190)
        )
    else:
        d.rectangle((margin + pw + gap, y, margin + 2 * pw + gap, y + ph), fill=(238, 238, 238))
        msg = (
            "No heatmap was computed for this frame."
            if revealed
            else "No heatmap: this frame is not assessed."
        )
        text(
            d,
            (margin + pw + gap + (pw - text_width(msg, f.body)) / 2, y + ph / 2 - lh / 2),
            msg,
            f.body,
            MUTED,
        )
    y += ph + round(lh * 0.35)
    if right is not None:
        cb_x = margin + pw + gap
        cb_w, cb_h = min(pw, round(260 * u) if u > 1 else 260), max(10, round(lh * 0.55))
        text(d, (cb_x, y), "low", f.small, MUTED)
        bar_x = cb_x + text_width("low ", f.small) + 4
        img.paste(_colorbar(colormap, cb_w, cb_h), (round(bar_x), round(y + lh * 0.12)))
        text(d, (bar_x + cb_w + 6, y), "high attention", f.small, MUTED)
        y += lh
        y += draw_wrapped(d, cb_x, y, HEATMAP_LEGEND, f.body, pw)
    y += round(lh * 0.8)

    # two columns: result (left), scan facts (right)
    col_w = (inner - gap) / 2
    x_left, x_right = margin, margin + col_w + gap
    y_left = y_right = y
    y_left += _draw_answer(d, x_left, y_left, col_w, fr, f, show_unreliable)
    for flag in fr.cautions:
        lines_h = len(
            wrap(flag.warning, f.body, col_w - 2 * f.body.size - text_width("Warning: ", f.bold))
        )
        box_h = lines_h * lh + f.body.size
        d.rectangle(
            (x_left, y_left, x_left + col_w, y_left + box_h),
            fill=WARN_FILL,
            outline=WARN_EDGE,
            width=2,
        )
        text(d, (x_left + f.body.size, y_left + f.body.size / 2), "Warning:", f.bold, WARN_EDGE)
        off = f.body.size + text_width("Warning: ", f.bold)
        draw_wrapped(
            d,
            x_left + off,
            y_left + f.body.size / 2,
            flag.warning,
            f.body,
            col_w - off - f.body.size,
        )
        y_left += box_h + round(lh * 0.4)

    text(d, (x_right, y_right), "Scan", f.h2)
    y_right += line_height(f.h2)
    y_right += draw_key_values(
        d, x_right, y_right, metadata_rows(scan, fr.frame_index), f.body, f.bold, col_w
    )
    if include_identity:
        y_right += round(lh * 0.5)
        text(d, (x_right, y_right), "Patient (included on request)", f.h2)
        y_right += line_height(f.h2)
        y_right += draw_key_values(
            d, x_right, y_right, identity_rows(scan.identity), f.body, f.bold, col_w
        )
    y = max(y_left, y_right) + round(lh * 0.6)

    # volume: per-frame probability strip
    if len(result.frames) > 1:
        text(d, (margin, y), "Class probability per frame", f.h2)
        y += line_height(f.h2)
        strip_h = round(300 * max(1.0, u))
        draw_probability_strip(
            d,
            (margin, y, width - margin, y + strip_h),
            [fr_.frame_index for fr_ in result.frames],
            scan.n_frames,
            fr.class_names,
            result.probability_matrix(),
            fr.frame_index,
            f.small,
            assessable=[fr_.assessable for fr_ in result.frames],
        )
        y += strip_h + round(lh * 0.5)

    # footer
    d.line((margin, y, width - margin, y), fill=(200, 200, 200), width=1)
    y += round(lh * 0.4)
    model = result.model
    footer = [
        f"Model: {model.name} {model.version}  ·  {model.architecture}  ·  SHA-256 {model.short_sha}"
        + (f"  ·  licence: {model.licence}" if model.licence else ""),
        f"octviewer {__version__}  ·  analysed on {result.device}  ·  report created "
        f"{created.strftime('%Y-%m-%d %H:%M')} ({created.strftime('%Z') or 'local time'})",
    ]
    for line in footer:
        y += draw_wrapped(d, margin, y, line, f.small, inner, MUTED)
    text(d, (margin, y + 4), DISCLAIMER, f.bold, ALERT)
    y += line_height(f.bold) + margin

    out = img.crop((0, 0, width, min(y, height_bound)))
    out.info.update(
        text_chunks(
            scan,
            result,
            fr,
            include_identity=include_identity,
            created=created,
            show_unreliable=show_unreliable,
        )
    )
    return out


def save_report(
    scan: Scan,
    result: ScanResult,
    path: str | Path,
    *,
    frame_index: int | None = None,
    include_identity: bool = False,
    colormap: str = overlay.DEFAULT_COLORMAP,
    opacity: float = overlay.DEFAULT_OPACITY,
    created: _dt.datetime | None = None,
    show_unreliable: bool = False,
) -> Path:
    """Render the report and write it as PNG (with its text chunks) to ``path``; returns it.

    The file is written to a temporary name first and renamed, so a failed write never leaves
    a half-written report behind.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    img = render_report(
        scan,
        result,
        frame_index=frame_index,
        include_identity=include_identity,
        colormap=colormap,
        opacity=opacity,
        created=created,
        show_unreliable=show_unreliable,
    )
    info = PngInfo()
    for k, v in img.info.items():
        if isinstance(v, str):
            info.add_text(k, v)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".octviewer-", suffix=".png", dir=path.parent)
        try:
            apply_umask(fd)  # mkstemp makes it 0600; a report gets the user's normal mode
            with os.fdopen(fd, "wb") as fh:
                img.save(fh, format="PNG", pnginfo=info, compress_level=3)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ReportError(
            f"The report could not be written to {path}: {e.strerror or e}. "
            "Check that the folder exists, is writable and has free space."
        ) from e
    log.info("Report written: %s", path.name)
    return path
