"""PNG / JPEG / TIFF (8/16-bit, multi-page = volume) / BMP through Pillow (tifffile as fallback)."""

from __future__ import annotations

import logging
import math
import struct
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.io import safety
from octviewer.core.io.sniff import FileKind
from octviewer.core.io.tiffwalk import check_pages_hold_data, walk_tiff
from octviewer.core.scan import Modality, Scan, ScanMetadata
from octviewer.errors import CorruptFileError, ImageTooLargeError, ScanReadError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

#: What Pillow raises on damaged files besides its own errors (its TIFF plugin lets TypeError,
#: KeyError and SyntaxError out of damaged tag directories, the PNG one struct.error...).
_PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    AttributeError,
    ZeroDivisionError,
    OverflowError,
    struct.error,
)

#: Mean channel difference (0..255) above which an RGB image really is in colour, not grey.
CHROMA_THRESHOLD = 4.0


@dataclass(frozen=True)
class DecodedImage:
    """Frames of one image file, before they become a :class:`Scan`."""

    frames: np.ndarray  # (n, rows, cols)
    was_color: bool
    modality: Modality
    bit_depth: int
    downsampled_from: tuple[int, int] | None
    notes: tuple[str, ...]


def read_image(path: Path, kind: FileKind) -> Scan:
    """Open one image file as a Scan (a multi-page TIFF is a volume)."""
    img = decode_image(path, kind)
    meta = ScanMetadata(
        source_paths=(path,),
        format=kind.value,
        modality=img.modality,
        was_color=img.was_color,
        bit_depth=img.bit_depth,
        downsampled_from=img.downsampled_from,
        notes=img.notes,
    )
    return Scan(frames=img.frames, metadata=meta)


def image_size(path: Path, kind: FileKind) -> tuple[int, int, int]:
    """(n_frames, rows, cols) from the header only, for folder budgeting (a TIFF's page chain
    is walked with its own bounds, :mod:`octviewer.core.io.tiffwalk`)."""
    if kind is FileKind.TIFF:
        pages = walk_tiff(path)
        if pages[0].rows and pages[0].cols:
            return len(pages), pages[0].rows, pages[0].cols
    with _opened(path, kind) as im:
        n = getattr(im, "n_frames", 1) if kind is FileKind.TIFF else 1
        return int(n), im.size[1], im.size[0]


def decode_image(path: Path, kind: FileKind) -> DecodedImage:
    """Decode every frame; a TIFF's page chain is checked first (cycles, page count, pages
    whose pixel data is not in the file)."""
    if kind is FileKind.TIFF:
        note = check_pages_hold_data(walk_tiff(path), path)
        image = _decode(path, kind)
        return replace(image, notes=(*image.notes, *note)) if note else image
    return _decode(path, kind)


def _decode(path: Path, kind: FileKind) -> DecodedImage:
    from PIL import Image

    try:
        with _opened(path, kind) as im, warnings.catch_warnings():
            # Pillow warns about damaged metadata (e.g. "Corrupt EXIF data"); the pixels decide
            warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
            return _decode_opened(im, path, kind)
    except ScanReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb(path) from exc
    except _PILLOW_ERRORS as exc:
        if kind is FileKind.TIFF:
            logger.info("Pillow could not decode the TIFF (%s); trying tifffile", exc)
            return _decode_tiff_with_tifffile(path, exc)
        raise _corrupt(path, kind, exc) from exc


class _opened:
    """Image.open with Pillow errors translated to ours (the header is read, not the pixels)."""

    def __init__(self, path: Path, kind: FileKind) -> None:
        self.path, self.kind = path, kind

    def __enter__(self):  # type: ignore[no-untyped-def]
        from PIL import Image, UnidentifiedImageError

        fmt = {
            FileKind.JPEG: "JPEG",
            FileKind.PNG: "PNG",
            FileKind.TIFF: "TIFF",
            FileKind.BMP: "BMP",
        }
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
                self.im = Image.open(self.path, formats=[fmt[self.kind]])
        except Image.DecompressionBombError as exc:
            raise _bomb(self.path) from exc
        except (UnidentifiedImageError, *_PILLOW_ERRORS) as exc:
            if isinstance(exc, PermissionError):
                raise
            raise _corrupt(self.path, self.kind, exc) from exc
        return self.im

    def __exit__(self, *exc: object) -> None:
        self.im.close()


def _bomb(path: Path) -> ImageTooLargeError:
    return ImageTooLargeError(
        "The image declares a huge number of pixels (a so-called decompression bomb, or an "
        "extremely large export); octviewer refused to decode it to protect the computer's memory.",
        path=path,
    )


def _corrupt(path: Path, kind: FileKind, cause: BaseException | None = None) -> CorruptFileError:
    detail = str(cause).strip().splitlines()[0][:120] if cause is not None and str(cause) else ""
    detail = f" (the decoder says: {detail})" if detail else ""
    return CorruptFileError(
        f"The {kind.value} file is damaged or incomplete (perhaps cut short while copying) and "
        f"cannot be decoded{detail}. Copy or export it again from the device.",
        path=path,
    )


def _decode_opened(im: Image.Image, path: Path, kind: FileKind) -> DecodedImage:
    from PIL import ImageSequence

    cols, rows = im.size
    factor = safety.check_frame_size(rows, cols, path, can_reduce=kind is FileKind.JPEG)
    original = (rows, cols)
    n_pages = int(getattr(im, "n_frames", 1)) if kind is FileKind.TIFF else 1
    safety.check_scan_bytes(n_pages, rows, cols, 2 if im.mode.startswith("I") else 1, path)
    if factor > 1:
        im.draft(im.mode if im.mode in ("L", "RGB") else None, (cols // factor, rows // factor))
        logger.info("decoding a %dx%d JPEG at 1/%d scale", cols, rows, factor)

    frames: list[np.ndarray] = []
    colour_flags: list[tuple[bool, bool]] = []
    skipped = 0
    first_size = None
    pages = ImageSequence.Iterator(im) if n_pages > 1 else [im]
    for page in pages:
        if first_size is None:
            first_size = page.size
        elif page.size != first_size:
            skipped += 1  # e.g. a thumbnail page stored after the B-scans
            continue
        arr, was_color, warm = _page_to_array(page)
        arr = _shrink(arr)
        frames.append(arr)
        colour_flags.append((was_color, warm))

    stack = np.stack(frames) if len(frames) > 1 else frames[0][np.newaxis]
    downsampled = original if stack.shape[1:] != original else None
    was_color = any(c for c, _ in colour_flags)
    notes: list[str] = []
    if was_color:
        notes.append("converted from colour to greyscale")
        modality = Modality.FUNDUS if all(w for _, w in colour_flags) else Modality.UNKNOWN
    else:
        modality = Modality.OCT_VOLUME if stack.shape[0] > 1 else Modality.OCT_BSCAN
    if downsampled:
        notes.append(f"shrunk from {original[1]} x {original[0]} pixels to fit in memory")
    if skipped:
        notes.append(f"{skipped} page(s) of a different size were left out")
    bit_depth = 16 if stack.dtype == np.uint16 else (32 if stack.dtype == np.float32 else 8)
    stack, note = finite_frames(stack, path)
    notes.extend(note)
    return DecodedImage(stack, was_color, modality, bit_depth, downsampled, tuple(notes))


def finite_frames(frames: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Float frames with NaN/Inf pixels: those pixels take the frame's lowest finite value (the
    rule of :func:`octviewer.core.preprocess.to_float01`), said in a note; a frame with no
    finite pixel at all is damaged."""
    from octviewer.core.preprocess import replace_nonfinite

    if frames.dtype.kind != "f":
        return frames, ()
    bad = int(np.count_nonzero(~np.isfinite(frames)))
    if not bad:
        return frames, ()
    frames = frames.copy()
    for i, frame in enumerate(frames):
        if replace_nonfinite(frame) is None:
            raise CorruptFileError(
                f"Frame {i + 1} of this image holds no valid pixel (all are NaN or infinite): "
                "the export is damaged. Export the scan again from the device.",
                path=path,
            )
    logger.info("%d non-finite pixel(s) replaced by the frame minimum", bad)
    return frames, (
        f"{bad} pixel(s) were not numbers (NaN or infinite) and are shown as background",
    )


def _page_to_array(page: Image.Image) -> tuple[np.ndarray, bool, bool]:
    """One Pillow page -> (2-D array, was_color, looks like a warm fundus photo)."""
    mode = page.mode
    if mode == "L":
        return np.asarray(page), False, False
    if mode.startswith("I;16"):
        return np.asarray(page).astype(np.uint16, copy=False), False, False
    if mode in ("1", "LA", "La"):
        return np.asarray(page.convert("L")), False, False
    if mode == "I":
        arr = np.asarray(page)
        if arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16), False, False
        return arr.astype(np.float32), False, False
    if mode == "F":
        return np.asarray(page, dtype=np.float32), False, False
    # every other mode (RGB, RGBA, P, CMYK, YCbCr...) is colour or palette: look at the chroma
    rgb = page.convert("RGB")
    small = np.asarray(rgb)[::4, ::4].astype(np.int16)
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    chroma = float((np.abs(r - g).mean() + np.abs(g - b).mean()) / 2) if small.size else 0.0
    grey = np.asarray(rgb.convert("L"))
    if chroma < CHROMA_THRESHOLD:
        return grey, False, False  # grey pixels stored as RGB: not a colour photo
    warm = bool(r.mean() > g.mean() > b.mean())
    return grey, True, warm


def _shrink(arr: np.ndarray) -> np.ndarray:
    rows, cols = arr.shape
    keep = safety.keep_size(rows, cols)
    if keep == (rows, cols):
        return arr
    factor = math.ceil(max(rows / keep[0], cols / keep[1]))
    r, c = (rows // factor) * factor, (cols // factor) * factor
    blocks = arr[:r, :c].reshape(r // factor, factor, c // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float32).astype(arr.dtype)


def _decode_tiff_with_tifffile(path: Path, pillow_error: Exception) -> DecodedImage:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = series.shape
            if len(shape) < 2:
                raise ValueError(f"unexpected TIFF shape {shape}")
            rows, cols = (shape[-3], shape[-2]) if series.samplesperpixel > 1 else shape[-2:]
            safety.check_frame_size(int(rows), int(cols), path)
            n = int(np.prod(shape)) // (rows * cols * max(series.samplesperpixel, 1))
            safety.check_scan_bytes(n, int(rows), int(cols), series.dtype.itemsize, path)
            data = series.asarray()
    except (ImageTooLargeError, MemoryError):
        raise
    except Exception as exc:  # tifffile raises many types on damaged files
        logger.info("tifffile could not decode it either: %s (Pillow: %s)", exc, pillow_error)
        raise _corrupt(path, FileKind.TIFF, pillow_error) from exc
    was_color = series.samplesperpixel > 1
    if was_color:
        data = data[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    data = data.reshape(-1, data.shape[-2], data.shape[-1])
    if data.dtype not in (np.uint8, np.uint16):
        data = data.astype(np.float32)
    modality = (
        Modality.UNKNOWN
        if was_color
        else (Modality.OCT_VOLUME if len(data) > 1 else Modality.OCT_BSCAN)
    )
    notes = ("converted from colour to greyscale",) if was_color else ()
    bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(data.dtype, 32)
    data, note = finite_frames(data, path)
    return DecodedImage(data, was_color, modality, bit_depth, None, notes + note)


def read_png(path: Path) -> Scan:
    return read_image(path, FileKind.PNG)


def read_jpeg(path: Path) -> Scan:
    return read_image(path, FileKind.JPEG)


def read_tiff(path: Path) -> Scan:
    return read_image(path, FileKind.TIFF)


def read_bmp(path: Path) -> Scan:
    return read_image(path, FileKind.BMP)
