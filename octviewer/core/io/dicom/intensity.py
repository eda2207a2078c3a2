"""The DICOM intensity chain: Modality LUT / rescale, VOI LUT / window, MONOCHROME1."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pydicom import Dataset


_VIEW_KEYWORDS = (
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
)


def pixel_view(ds: Dataset, index: int) -> Dataset:
    """The attributes the intensity chain needs for frame ``index``: top level, overridden by
    the shared, then the per-frame functional groups (Pixel Value Transformation, Frame VOI LUT)."""
    from pydicom import Dataset

    view = Dataset()
    if hasattr(ds, "file_meta"):
        view.file_meta = ds.file_meta
    for kw in _VIEW_KEYWORDS:
        if kw in ds:
            view[kw] = ds[kw]
    groups = []
    if ds.get("SharedFunctionalGroupsSequence"):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    for group in groups:
        for seq_kw in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
            seq = group.get(seq_kw)
            if seq:
                for elem in seq[0]:
                    view[elem.tag] = elem
    return view


def apply_intensity_chain(arr: np.ndarray, view: Dataset) -> tuple[np.ndarray, int]:
    """Modality LUT / rescale, then VOI LUT / window, then MONOCHROME1 inversion.

    Returns the display-ready frame (uint8, uint16 or float32) and its bit depth.
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if view.get("PhotometricInterpretation") == "MONOCHROME1":
            out = float(out.max() + out.min()) - out
        return out, 32
    bits = int(view.get("BitsStored") or view.get("BitsAllocated") or arr.dtype.itemsize * 8)
    signed = int(view.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    changed = False
    if view.get("ModalityLUTSequence"):
        arr = apply_modality_lut(arr, view)
        lo, hi = 0, 2 ** int(view.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
        changed = True
    elif "RescaleSlope" in view and "RescaleIntercept" in view:
        slope, intercept = float(view.RescaleSlope), float(view.RescaleIntercept)
        if (slope, intercept) != (1.0, 0.0):
            arr = apply_modality_lut(arr, view)
            lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
            changed = True
    voi_seq = view.get("VOILUTSequence")
    if voi_seq and voi_seq[0].get("LUTDescriptor") is not None:
        arr = apply_voi_lut(arr, view, prefer_lut=True)
        lo, hi = 0, 2 ** int(voi_seq[0].LUTDescriptor[2]) - 1
        changed = True
    elif view.get("WindowCenter") is not None and view.get("WindowWidth") is not None:
        arr = apply_voi_lut(arr, view, prefer_lut=False)  # output spans the same [lo, hi]
        changed = True
    if view.get("PhotometricInterpretation") == "MONOCHROME1":
        arr = (lo + hi) - arr.astype(np.float64 if changed or signed else np.int64)
        changed = changed or signed
    if not changed and lo >= 0 and hi <= 65535:
        dtype = np.uint8 if hi <= 255 else np.uint16
        return arr.astype(dtype, copy=False), 8 if hi <= 255 else 16
    out_bits = 8 if hi - lo <= 255 else 16
    top = 2**out_bits - 1
    scaled = (arr.astype(np.float64) - lo) * (top / max(hi - lo, 1e-12))
    return np.clip(scaled.round(), 0, top).astype(
        np.uint8 if out_bits == 8 else np.uint16
    ), out_bits
