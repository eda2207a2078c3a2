"""The acquisition protocol a DICOM header states (never guessed from the pixels).

Region, first from coded anatomy, then from protocol and description texts:

* coded: Anatomic Region Sequence (0008,2218) with its modifiers (0008,2220), Primary Anatomic
  Structure Sequence (0008,2228), the Frame Anatomy Sequence (0020,9071) of the functional
  groups, and the concept codes of the Acquisition Context Sequence (0040,0555). Code values
  from DICOM PS3.16 CID 4209 / 4211 (Ophthalmic [OCT] Anatomic Structure Imaged) as listed in
  pydicom 3's concept dictionary (SCT) and in oct-converter's DICOM writer (legacy SRT), and
  CID 4207 (Ophthalmic Image Position, DCM); other codes by their Code Meaning.
* texts: Performed Protocol Code Sequence (0040,0260) meanings, Protocol Name (0018,1030),
  Series Description (0008,103E), Performed Procedure Step Description (0040,0254), Study
  Description (0008,1030); keywords only ("macula", "ONH", "RNFL", "circle", "raster", ...).

Pattern (OCT objects only): the same texts, else a multi-frame object whose per-frame Plane
Positions lie on distinct parallel planes of one orientation (a raster volume).

Device quality: DICOM defines no image-quality attribute for Ophthalmic Tomography B-scans
(there are quality ratings for thickness maps (0022,1470), wide-field photographs (0022,1525)
and OCT en-face images (0022,1628) only), so DICOM files carry none here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.core.io.dicom.geometry import instance_orientation, plane_positions
from octviewer.core.io.dicom.header import tolerant
from octviewer.core.scan import ScanPattern, ScanProtocol, ScanRegion

if TYPE_CHECKING:
    from pydicom import Dataset

_DISC, _MACULA, _OTHER = ScanRegion.OPTIC_DISC, ScanRegion.MACULA, ScanRegion.OTHER
#: Code Value -> region (the scheme is not checked: some exports swap value and scheme)
REGION_CODES: dict[str, ScanRegion] = {
    "81016008": _DISC,  # SCT Optic nerve head (CID 4209, 4211)
    "T-AA630": _DISC,  # SRT Optic nerve head (legacy CID 4209)
    "111901": _DISC,  # DCM Disc centered (CID 4207)
    "67046006": _MACULA,  # SCT Fovea centralis (CID 4209)
    "T-AA621": _MACULA,  # SRT Fovea centralis (legacy CID 4209)
    "111900": _MACULA,  # DCM Macula centered (CID 4207)
    # anterior segment (CID 4209 / 4211): cornea, anterior chamber, iris, lens, ciliary body,
    # conjunctiva, sclera; SCT then legacy SRT
    **dict.fromkeys(
        ("28726007", "31636006", "41296002", "78076003", "29534007", "29445007", "18619003"),
        _OTHER,
    ),
    **dict.fromkeys(
        ("T-AA200", "T-AA050", "T-AA500", "T-AA700", "T-AA400", "T-AA860", "T-AA110"), _OTHER
    ),
}
#: stated as both (DCM 111903 Disc-macula centered): no single region
_BOTH_CODES = {"111903"}

_REGION_WORDS = (
    (
        _DISC,
        re.compile(
            r"\boptic (disc|disk|nerve)|\bdis[ck]\b|\bpapill|\bperipapill|\bonh\b|\brnfl\b", re.I
        ),
    ),
    (_MACULA, re.compile(r"\bmacula|\bfovea", re.I)),
    (_OTHER, re.compile(r"\bcornea|\banterior (segment|chamber)", re.I)),
)
#: coded meanings may also name single anterior structures
_ANTERIOR_MEANING = re.compile(r"\b(iris|lens|ciliary|conjunctiva|sclera)\b", re.I)
_PATTERN_WORDS = (
    (ScanPattern.CIRCLE, re.compile(r"\bcirc(le|ular)\b|\bring\b", re.I)),
    (ScanPattern.RADIAL, re.compile(r"\bradial\b|\bstar\b", re.I)),
    (ScanPattern.VOLUME, re.compile(r"\braster\b|\bcube\b|\bvolume\b|\b3-?d\b", re.I)),
    (ScanPattern.LINE, re.compile(r"\bline\b", re.I)),
)
_TEXTS = (
    ("ProtocolName", "Protocol Name (0018,1030)"),
    ("SeriesDescription", "Series Description (0008,103E)"),
    ("PerformedProcedureStepDescription", "Performed Procedure Step Description (0040,0254)"),
    ("StudyDescription", "Study Description (0008,1030)"),
)


def _items(ds: Any, keyword: str) -> list[Any]:
    """The items of a sequence; none when absent, empty or not a sequence (a wrong VR)."""
    try:
        value = ds.get(keyword)
        if value is None or isinstance(value, (str, bytes)):
            return []
        return [item for item in value if hasattr(item, "get")][:64]
    except Exception:  # a hostile element may fail in any way while pydicom reads it
        return []


def _text(item: Any, keyword: str) -> str:
    """One text value, stripped; "" when absent, multi-valued, a sequence or unreadable."""
    try:
        value = item.get(keyword)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if value is None or (not isinstance(value, str) and hasattr(value, "__iter__")):
            return ""
        text = str(value).strip()[:256]
    except Exception:  # as in _items
        return ""
    return "" if any(ord(c) < 32 or c == "\x7f" for c in text) else text  # garbled bytes


def _code_items(ds: Dataset) -> list[tuple[Any, str]]:
    """Every coded anatomy item with the attribute it came from."""
    out: list[tuple[Any, str]] = []
    for item in _items(ds, "AnatomicRegionSequence"):
        out.append((item, "Anatomic Region Sequence (0008,2218)"))
        out += [
            (m, "Anatomic Region Modifier Sequence (0008,2220)")
            for m in _items(item, "AnatomicRegionModifierSequence")
        ]
    out += [
        (i, "Primary Anatomic Structure Sequence (0008,2228)")
        for i in _items(ds, "PrimaryAnatomicStructureSequence")
    ]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for frame in _items(ds, group)[:1]:
            for anatomy in _items(frame, "FrameAnatomySequence"):
                out += [
                    (i, "Frame Anatomy Sequence (0020,9071) Anatomic Region Sequence")
                    for i in _items(anatomy, "AnatomicRegionSequence")
                ]
    for context in _items(ds, "AcquisitionContextSequence"):
        out += [
            (i, "Acquisition Context Sequence (0040,0555)")
            for i in _items(context, "ConceptCodeSequence")
        ]
    return out


def _coded_region(ds: Dataset) -> tuple[ScanRegion, str]:
    found: dict[ScanRegion, str] = {}
    both = False
    for item, where in _code_items(ds):
        value, meaning = _text(item, "CodeValue"), _text(item, "CodeMeaning")
        scheme = _text(item, "CodingSchemeDesignator")
        region = REGION_CODES.get(value) or REGION_CODES.get(scheme)
        if value in _BOTH_CODES:
            both = True
            continue
        label = f"{where}: {scheme} {value} '{meaning}'".replace("  ", " ")
        if region is not None:
            found.setdefault(region, label)
            continue
        regions = _regions_in(meaning)
        if not regions and _ANTERIOR_MEANING.search(meaning):
            regions = {_OTHER}
        for r in regions:
            found.setdefault(r, label)
    if both or len(found) != 1:
        return ScanRegion.UNKNOWN, ""
    return next(iter(found.items()))


def _regions_in(text: str) -> set[ScanRegion]:
    return {region for region, words in _REGION_WORDS if words.search(text)}


def _patterns_in(text: str) -> set[ScanPattern]:
    found = {pattern for pattern, words in _PATTERN_WORDS if words.search(text)}
    if ScanPattern.VOLUME in found:  # "5 Line Raster": parallel lines, a raster
        found.discard(ScanPattern.LINE)
    return found


def _stated_texts(ds: Dataset) -> list[tuple[str, str]]:
    texts = [
        (_text(i, "CodeMeaning"), "Performed Protocol Code Sequence (0040,0260)")
        for i in _items(ds, "PerformedProtocolCodeSequence")
    ]
    texts += [(_text(ds, kw), label) for kw, label in _TEXTS]
    return [(t, label) for t, label in texts if t]


def _first_single(texts: list[tuple[str, str]], find: Any) -> tuple[Any, str]:
    """The first text that states exactly one value; the source names the attribute and the
    matched word only (descriptions can hold free text that is not for reports)."""
    for text, label in texts:
        values = find(text)
        if len(values) == 1:
            return next(iter(values)), label
        if len(values) > 1:
            return None, ""  # one attribute stating two things: nothing stated
    return None, ""


@tolerant(ScanProtocol())
def protocol_of(ds: Dataset, n_frames: int, is_oct: bool) -> ScanProtocol:
    """What the header states about pattern and region (see the module docstring)."""
    region, region_source = _coded_region(ds)
    texts = _stated_texts(ds)
    if region is ScanRegion.UNKNOWN:
        found, label = _first_single(texts, _regions_in)
        if found is not None:
            region, region_source = found, f"{label}: '{found.value}'"
    pattern, pattern_source = ScanPattern.UNKNOWN, ""
    if is_oct:
        found, label = _first_single(texts, _patterns_in)
        if found is not None:
            pattern, pattern_source = found, f"{label}: '{found.value}'"
        elif n_frames > 1 and _parallel_planes(ds, n_frames):
            pattern = ScanPattern.VOLUME
            pattern_source = f"Plane Position / Orientation of {n_frames} frames (parallel planes)"
    name = _text(ds, "ProtocolName") or next(
        (t for t, label in texts if label.startswith("Performed Protocol")), None
    )
    sources = [f"DICOM {s}" for s in (pattern_source, region_source) if s]
    return ScanProtocol(
        pattern=pattern,
        region=region,
        name=name[:64] if name else None,
        source="; ".join(dict.fromkeys(sources)),
    )


def _parallel_planes(ds: Dataset, n_frames: int) -> bool:
    """Per-frame positions on distinct parallel planes of the one shared orientation."""
    positions = plane_positions(ds)
    orientation = instance_orientation(ds)
    if positions is None or orientation is None or len(positions) != n_frames:
        return False
    for frame in _items(ds, "PerFrameFunctionalGroupsSequence"):
        if _items(frame, "PlaneOrientationSequence"):
            return False  # orientation per frame: not one stack of parallel planes
    normal = np.cross(orientation[:3], orientation[3:])
    if not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-6:
        return False
    depth = positions @ (normal / np.linalg.norm(normal))
    steps = np.diff(depth)
    return bool(np.all(steps > 1e-6) or np.all(steps < -1e-6))
