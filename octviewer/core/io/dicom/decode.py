"""Decoding the pixels of a DICOM file frame by frame, after the size guards (frame size,
scan bytes, compressed fragment sizes) and the decoder check."""

from __future__ import annotations

import itertools
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.io import safety
from octviewer.core.io.dicom.header import (
    bad_attr,
    bare_file_options,
    error_cause,
    header_int,
    require_pixels,
    transfer_syntax,
)
from octviewer.core.io.dicom.intensity import apply_intensity_chain, pixel_view
from octviewer.errors import (
    CorruptFileError,
    MissingDecoderError,
    ScanReadError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)


# Transfer syntax name fragment -> what to install when its decoder is missing
_DECODER_PACKAGES = (
    ("JPEG-LS", "pyjpegls  (pip install pyjpegls)"),
    ("JPEG 2000", "pylibjpeg-openjpeg  (pip install pylibjpeg pylibjpeg-openjpeg)"),
    ("High-Throughput JPEG 2000", "pylibjpeg-openjpeg  (pip install pylibjpeg pylibjpeg-openjpeg)"),
    ("RLE", "pylibjpeg-rle  (pip install pylibjpeg pylibjpeg-rle)"),
    (
        "JPEG",
        'pylibjpeg-libjpeg  (pip install "octviewer[jpeg]", i.e. pylibjpeg pylibjpeg-libjpeg)',
    ),
)


def decoder_package(transfer_syntax_name: str) -> str:
    """The package that decodes a transfer syntax, as named in MissingDecoderError messages."""
    for fragment, package in _DECODER_PACKAGES:
        if fragment in transfer_syntax_name:
            return package
    return (
        "a pydicom pixel data plugin (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg)"
    )


@dataclass(frozen=True)
class DecodedDicom:
    frames: np.ndarray  # (n, rows, cols), display-ready
    bit_depth: int
    was_color: bool
    notes: tuple[str, ...] = ()  # e.g. frames declared but not in the file


@dataclass(frozen=True)
class _Layout:
    """The header attributes that size the pixel buffer, parsed and bounded."""

    rows: int
    cols: int
    frames: int
    itemsize: int
    samples: int
    palette: bool


def decode_frames(path: Path, ds: Dataset) -> DecodedDicom:
    """Decode every frame of ``path`` one by one, applying the intensity chain to each.

    A file that holds fewer frames than its Number of Frames declares opens with the frames it
    holds, and says so in ``notes`` (never with uninitialised memory for the others)."""
    from pydicom.pixels import apply_color_lut, iter_pixels

    require_pixels(ds, path)
    lay = _layout(ds, path)
    safety.check_frame_size(lay.rows, lay.cols, path)
    safety.check_scan_bytes(lay.frames, lay.rows, lay.cols, lay.itemsize, path)
    _check_decoder(ds, path)
    _check_stream_sizes(ds, path, lay)
    held = _native_frames_held(ds, path, lay)  # never allocate for frames the file cannot hold
    colour = lay.samples > 1 or lay.palette
    out: np.ndarray | None = None
    bits, count = 8, 0
    try:
        frames = iter_pixels(path, **bare_file_options(ds))
        for i, raw in enumerate(itertools.islice(frames, held)):  # no frame it does not hold
            if lay.palette:
                frame, bits = _rgb_to_grey(apply_color_lut(raw, ds)), 8
            elif colour:
                frame, bits = _rgb_to_grey(raw), 8
            else:
                frame, bits = apply_intensity_chain(raw, pixel_view(ds, i))
            if out is None:
                out = np.empty((held, *frame.shape), dtype=frame.dtype)
            out[i] = frame
            count = i + 1
    except ScanReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # pydicom and its decoder plugins raise many types
        raise CorruptFileError(
            "The image data in this DICOM file is damaged or incomplete and cannot be decoded "
            f"({error_cause(exc)}). Export it again from the device.",
            path=path,
        ) from exc
    if out is None:
        raise CorruptFileError("The DICOM file declares an image but holds no frames.", path=path)
    notes: tuple[str, ...] = ()
    if count < lay.frames:
        logger.warning("%s declares %d frames but holds %d", path.name, lay.frames, count)
        out = out[:count].copy()
        notes = (f"the file declares {lay.frames} frames but holds only {count}: those are shown",)
    from octviewer.core.io.images import finite_frames

    out, note = finite_frames(out, path)
    return DecodedDicom(out, bits, colour, notes + note)


def _pixel_bytes(ds: Dataset, path: Path) -> tuple[int, int | None]:
    """(bytes of uncompressed pixel data the file holds, the length its element states, None
    when unknown), measured without reading the value: a value left on disk is never read
    just to be measured, and a stated length beyond the file allocates nothing."""
    keyword = next(k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds)
    elem = ds.get_item(keyword, keep_deferred=True)
    value = getattr(elem, "value", None)
    stated = getattr(elem, "length", None)  # a raw element (not yet converted) has one
    stated = None if stated == 0xFFFFFFFF else stated
    if isinstance(value, bytes):  # read in the parse, which never reads beyond the file
        return len(value), stated
    after = getattr(elem, "value_tell", None)
    held = path.stat().st_size - (after or 0)
    return (held if stated is None else min(held, stated)), stated


def _native_frames_held(ds: Dataset, path: Path, lay: _Layout) -> int:
    """Frames to allocate and decode: the declared number, or for uncompressed pixel data the
    whole frames the file holds of it (its element's length, cut at the end of the file),
    whichever is fewer; a frame cut short is a file cut short. Less than one frame is refused:
    there is nothing to show; so is a stated length beyond the file when every declared frame
    is there (the length field itself is damaged)."""
    if transfer_syntax(ds).is_encapsulated:
        return lay.frames
    length, stated = _pixel_bytes(ds, path)
    bits = header_int(ds, "BitsAllocated", path, default=8, lo=1, hi=64)
    frame_bytes = -(-lay.rows * lay.cols * lay.samples * bits // 8)
    held = length // frame_bytes
    if held == 0:
        raise CorruptFileError(
            f"The DICOM file holds {length:,} bytes of image data, less than one frame of "
            f"{lay.cols} x {lay.rows} pixels ({frame_bytes:,} bytes) as its header declares: "
            "the file was cut short or its header is damaged. Export it again from the device.",
            path=path,
        )
    if held < lay.frames and length - held * frame_bytes > 1:  # beyond a 1-byte pad: cut
        raise CorruptFileError(
            f"The DICOM file ends inside frame {held + 1} of its image data ({held} of the "
            f"{lay.frames} frames it declares are complete): it was cut short while copying or "
            "exporting. Copy or export it again from the device.",
            path=path,
        )
    if held >= lay.frames and stated is not None and stated > length + 1:  # beyond a 1-byte pad
        raise CorruptFileError(
            f"The DICOM file ends before the end of its image data: the image data's length "
            f"field states {stated:,} bytes, but the file holds {length:,} bytes of it (the "
            f"{lay.frames} frame(s) of {lay.cols} x {lay.rows} pixels its header declares need "
            f"{lay.frames * frame_bytes:,}). Its header is damaged or the file was cut short. "
            "Export it again from the device.",
            path=path,
        )
    return min(held, lay.frames)


def _layout(ds: Dataset, path: Path) -> _Layout:
    rows = header_int(ds, "Rows", path, lo=1, hi=65535)
    cols = header_int(ds, "Columns", path, lo=1, hi=65535)
    frames = header_int(ds, "NumberOfFrames", path, default=1, lo=1)
    bits = header_int(ds, "BitsAllocated", path, default=8, lo=1, hi=64)
    samples = header_int(ds, "SamplesPerPixel", path, default=1, lo=1, hi=4)
    try:
        palette = str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR"
    except Exception as exc:  # a bad VR, converted lazily
        raise bad_attr("PhotometricInterpretation", "cannot be read", path) from exc
    return _Layout(rows, cols, frames, 1 if bits <= 8 else 2, samples, palette)


def fragment_heads(data: bytes, head: int = 65536) -> Iterator[bytes]:
    """The first ``head`` bytes of each fragment of encapsulated pixel data (the basic offset
    table first), every item length checked against the bytes left *before* anything is read:
    a damaged length claiming gigabytes is a damaged file, never an allocation."""
    view, at = memoryview(data), 0
    while at + 8 <= len(view):
        group, element, length = struct.unpack_from("<HHL", view, at)
        at += 8
        if (group, element) == (0xFFFE, 0xE0DD):  # sequence delimiter
            return
        if (group, element) != (0xFFFE, 0xE000):
            raise ValueError(f"unexpected tag ({group:04X},{element:04X}) at byte {at - 8}")
        if length > len(view) - at:
            raise ValueError(
                f"a fragment at byte {at - 8} claims {length} bytes, only {len(view) - at} follow"
            )
        yield bytes(view[at : at + min(length, head)])
        at += length


def _check_stream_sizes(ds: Dataset, path: Path, lay: _Layout) -> None:
    """For compressed pixel data: the size each fragment's own header declares, before the
    decoder allocates for it (:func:`octviewer.core.io.safety.stream_size`)."""
    if not transfer_syntax(ds).is_encapsulated:
        return
    try:
        data = ds.PixelData
        for fragment in fragment_heads(data):
            size = safety.stream_size(fragment)
            if size is not None:
                safety.check_stream_size(size, lay.rows, lay.cols, lay.samples, path)
    except ScanReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # the encapsulation itself (item tags, lengths) is damaged
        raise CorruptFileError(
            "The compressed image data in this DICOM file is damaged (its fragments cannot be "
            f"read: {error_cause(exc)}). Export it again from the device.",
            path=path,
        ) from exc


def _check_decoder(ds: Dataset, path: Path) -> None:
    from pydicom.pixels import get_decoder

    ts = transfer_syntax(ds)
    if not ts.is_transfer_syntax:
        raise UnsupportedFormatError(
            f"The DICOM file declares the transfer syntax '{str(ts)[:64]}', which is not a DICOM "
            "transfer syntax octviewer knows, so its pixels cannot be interpreted. Export it "
            "again (uncompressed, or JPEG / JPEG 2000 / RLE).",
            path=path,
        )
    if not ts.is_compressed:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise UnsupportedFormatError(
            f"The image is compressed with '{ts.name}', which octviewer cannot decode. Export "
            "it again uncompressed or with JPEG / JPEG 2000 / RLE compression.",
            path=path,
        ) from exc
    if not decoder.is_available:
        raise _missing_decoder(ds, path)


def _missing_decoder(ds: Dataset, path: Path) -> MissingDecoderError:
    ts = transfer_syntax(ds)
    return MissingDecoderError(
        f"This DICOM image is compressed with '{ts.name}' and the decoder for it is not "
        f"installed. Install {decoder_package(ts.name)} and open the file again.",
        path=path,
    )


def _rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    grey = rgb[..., :3].astype(np.float32) @ weights
    if rgb.dtype != np.uint8:
        top = 65535.0 if rgb.dtype == np.uint16 else float(rgb.max() or 1)
        grey *= 255.0 / top
    return np.clip(grey.round(), 0, 255).astype(np.uint8)
