"""Folders: a DICOM series (grouped by SeriesInstanceUID) or a stack of B-scan images."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from octviewer.core.io import dicom, images, safety
from octviewer.core.io.sniff import IMAGE_KINDS, FileKind, sniff
from octviewer.core.scan import Modality, PixelSpacing, Scan, ScanMetadata, ScanProtocol
from octviewer.errors import (
    AmbiguousSeriesError,
    NoImagesFoundError,
    ScanReadError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)

IMAGES_KEY = "images"
IGNORED_NAMES = {"dicomdir", "thumbs.db", "desktop.ini"}


@dataclass
class _Group:
    key: str
    description: str = ""
    paths: list[Path] = field(default_factory=list)
    headers: list[Dataset] = field(default_factory=list)


def read_folder(folder: Path, *, series: str | None = None) -> Scan:
    """Open a folder as one scan; several series in it raise :class:`AmbiguousSeriesError`
    unless ``series`` names one of them (a key of that error's ``series`` mapping)."""
    from natsort import natsorted, ns

    entries = natsorted(
        (p for p in folder.iterdir() if not p.name.startswith(".")),
        key=lambda p: p.name,
        alg=ns.IGNORECASE,
    )
    files = [p for p in entries if p.is_file() and p.name.lower() not in IGNORED_NAMES]
    if not files:
        subfolders = [p.name for p in entries if p.is_dir()]
        hint = (
            f" It only contains sub-folders ({', '.join(subfolders[:5])}); open the one that holds the scan."
            if subfolders
            else ""
        )
        raise NoImagesFoundError(
            f"The folder '{folder.name}' contains no files to open.{hint}", path=folder
        )

    groups = classify_dicoms(folder, files)
    if not groups:
        raise NoImagesFoundError(
            f"None of the {len(files)} file(s) in the folder '{folder.name}' is an OCT image or "
            "a DICOM image (PNG, JPEG, TIFF, BMP or DICOM). Choose the folder that holds the scan.",
            path=folder,
        )
    if series is None and len(groups) > 1:
        raise AmbiguousSeriesError(
            f"The folder '{folder.name}' holds {len(groups)} different series; octviewer will not "
            "mix them. Choose one: " + "; ".join(g.description for g in groups.values()),
            series={k: g.description for k, g in groups.items()},
            path=folder,
        )
    if series is not None and series not in groups:
        raise AmbiguousSeriesError(
            f"The folder '{folder.name}' has no series '{series}'. Choose one of: "
            + "; ".join(g.description for g in groups.values()),
            series={k: g.description for k, g in groups.items()},
            path=folder,
        )
    group = groups[series] if series is not None else next(iter(groups.values()))
    if group.key == IMAGES_KEY:
        return read_image_stack(folder, group.paths)
    return _read_dicom_series(folder, group)


def read_dicom_files(folder: Path, paths: list[Path]) -> Scan:
    """Open DICOM files named by an index (a DICOMDIR) as one series scan (one file: as is)."""
    if len(paths) == 1:
        return dicom.read_dicom(paths[0])
    headers = [dicom.read_header(p, stop_before_pixels=True) for p in paths]
    key = str(headers[0].get("SeriesInstanceUID") or "series")
    group = _Group(key, key, list(paths), headers)
    return _read_dicom_series(folder, group)


def classify_dicoms(folder: Path, files: list[Path]) -> dict[str, _Group]:
    image_paths: list[tuple[Path, FileKind]] = []
    dicom_files: list[tuple[Path, Dataset]] = []
    for path in files:
        try:
            kind = sniff(path)
        except OSError as exc:
            logger.info("skipping unreadable file in folder: %s", exc)
            continue
        if kind in IMAGE_KINDS:
            image_paths.append((path, kind))
        elif kind is FileKind.DICOM:
            try:
                header = dicom.read_header(path, stop_before_pixels=True)
            except (ScanReadError, OSError) as exc:
                logger.info("skipping a file that is not readable DICOM: %s", exc)
                continue
            if "Rows" in header:  # no Rows: no image (Raw Data, reports, presentation states)
                dicom_files.append((path, header))

    # Localizer photos referenced by an OCT series belong to it, not to the list of choices.
    referenced = set()
    for _path, header in dicom_files:
        ref_uid, _positions = dicom.frame_locations(header)
        if ref_uid:
            referenced.add(ref_uid)
    groups: dict[str, _Group] = {}
    for path, header in dicom_files:
        if str(header.get("SOPInstanceUID", "")) in referenced:
            continue
        key = str(header.get("SeriesInstanceUID") or f"no-series-uid:{path.name}")
        group = groups.setdefault(key, _Group(key))
        group.paths.append(path)
        group.headers.append(header)
    for group in groups.values():
        group.description = _describe_dicom_group(group)
    if image_paths:
        kinds = Counter(k.value for _, k in image_paths)
        groups[IMAGES_KEY] = _Group(
            IMAGES_KEY,
            f"{IMAGES_KEY}: {len(image_paths)} image file(s) ("
            + ", ".join(f"{n} {k}" for k, n in kinds.items())
            + ")",
            [p for p, _ in image_paths],
        )
    return groups


def _describe_dicom_group(group: _Group) -> str:
    h = group.headers[0]
    frames = sum(
        dicom.header_int(x, "NumberOfFrames", p, default=1, lo=1)
        for x, p in zip(group.headers, group.paths, strict=True)
    )
    what = dicom.modality_of(h, frames).value
    label = " ".join(
        str(v) for v in (h.get("SeriesNumber"), h.get("SeriesDescription")) if v not in (None, "")
    )
    label = f"series {label}" if label else "series"
    return f"{group.key}: {label} — {what}, {len(group.paths)} file(s), {frames} frame(s)"


def _order(group: _Group) -> list[tuple[Path, Dataset]]:
    pairs = list(zip(group.paths, group.headers, strict=True))
    numbers = [_instance_number(h, p) for p, h in pairs]
    if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
        by_number = dict(zip(group.paths, numbers, strict=True))
        return sorted(pairs, key=lambda ph: by_number[ph[0]])
    positions = [dicom.instance_position(h) for h in group.headers]
    orientation = dicom.instance_orientation(group.headers[0])
    if all(p is not None for p in positions) and orientation is not None:
        normal = np.cross(orientation[:3], orientation[3:])
        order = sorted(range(len(pairs)), key=lambda i: float(np.dot(normal, positions[i])))
        return [pairs[i] for i in order]
    return pairs  # natural file-name order


def _instance_number(header: Dataset, path: Path) -> int | None:
    """Instance Number, or None when absent or malformed (then positions or names order)."""
    try:
        return dicom.header_int(header, "InstanceNumber", path, lo=-(1 << 31))
    except ScanReadError:
        return None


def _read_dicom_series(folder: Path, group: _Group) -> Scan:
    ordered = _order(group)
    sizes = {
        (dicom.header_int(h, "Rows", p, lo=1), dicom.header_int(h, "Columns", p, lo=1))
        for p, h in ordered
    }
    if len(sizes) > 1:
        raise UnsupportedFormatError(
            f"The images of this series have different sizes ({', '.join(f'{c} x {r}' for r, c in sorted(sizes))}); "
            "they cannot form one volume. Open the files one by one.",
            path=folder,
        )
    rows, cols = sizes.pop()
    n_total = sum(dicom.header_int(h, "NumberOfFrames", p, default=1, lo=1) for p, h in ordered)
    bits_alloc = max(dicom.header_int(h, "BitsAllocated", p, default=8, lo=1) for p, h in ordered)
    safety.check_scan_bytes(n_total, rows, cols, 1 if bits_alloc <= 8 else 2, folder)

    parts, positions, was_color, bit_depth = [], [], False, 8
    ref_uid, notes = None, []
    for path, _ in ordered:
        ds = dicom.read_header(path)
        decoded = dicom.decode_frames(path, ds)
        parts.append(decoded.frames)
        notes.extend(f"{path.name}: {n}" for n in decoded.notes)
        was_color |= decoded.was_color
        bit_depth = max(bit_depth, decoded.bit_depth)
        uid, pos = dicom.frame_locations(ds)
        ref_uid = ref_uid or uid
        positions.append(pos)
    dtypes = {p.dtype for p in parts}
    target = np.result_type(*dtypes) if len(dtypes) > 1 else parts[0].dtype
    frames = np.concatenate([p.astype(target, copy=False) for p in parts])

    first = dicom.read_header(ordered[0][0], stop_before_pixels=True)
    spacing = dicom.spacing_of(first)
    if spacing is not None and spacing.frame is None and len(ordered) > 1:
        spacing = _with_instance_distance(spacing, [h for _, h in ordered])
    localizer = None
    if ref_uid and all(p is not None for p in positions):
        all_positions = np.concatenate(positions)
        localizer, note = dicom.find_localizer(folder, ref_uid, all_positions)
        if note:
            notes.append(note)
    decoded = dicom.DecodedDicom(frames, bit_depth, was_color)
    meta = dicom.build_metadata(
        first,
        tuple(p for p, _ in ordered),
        decoded,
        dicom.ReaderFacts(
            "DICOM series",
            spacing=spacing,
            notes=tuple(notes),
            protocol=_series_protocol(ordered, len(frames)),
        ),
    )
    return Scan(
        frames=frames, metadata=meta, identity=dicom.identity_of(first), localizer=localizer
    )


def _series_protocol(ordered: list[tuple[Path, Dataset]], n_total: int) -> ScanProtocol:
    """The first file's protocol when every file of the series states the same; else none.

    Each file is judged on its own frames, except that a one-file series is judged on all."""
    modality = dicom.modality_of(ordered[0][1], n_total)
    protocols = {
        dicom.protocol_of(
            h,
            n_total
            if len(ordered) == 1
            else dicom.header_int(h, "NumberOfFrames", p, default=1, lo=1),
            modality.is_oct,
        )
        for p, h in ordered
    }
    if len(protocols) == 1:
        return protocols.pop()
    return ScanProtocol(source="the files of this DICOM series state different protocols")


def _with_instance_distance(spacing: PixelSpacing, headers: list[Dataset]) -> PixelSpacing:
    positions = [dicom.instance_position(h) for h in headers]
    if not all(p is not None for p in positions):
        return spacing
    steps = np.linalg.norm(np.diff(np.asarray(positions, float), axis=0), axis=1)
    step = float(np.median(steps)) if steps.size else 0.0
    if step <= 0:
        return spacing
    return PixelSpacing(row=spacing.row, col=spacing.col, unit=spacing.unit, frame=step)


def read_image_stack(folder: Path, paths: list[Path]) -> Scan:
    kinds = [sniff(p) for p in paths]
    sizes = [images.image_size(p, k) for p, k in zip(paths, kinds, strict=True)]
    shapes = Counter((r, c) for _, r, c in sizes)
    if len(shapes) > 1:
        listing = ", ".join(f"{c} x {r} ({n} file(s))" for (r, c), n in shapes.most_common(4))
        raise UnsupportedFormatError(
            f"The images in the folder '{folder.name}' have different sizes ({listing}), so they "
            "are not the B-scans of one volume. Open the images one by one, or put one volume "
            "per folder.",
            path=folder,
        )
    rows, cols = next(iter(shapes))
    n_total = sum(n for n, _, _ in sizes)
    safety.check_frame_size(rows, cols, folder)
    safety.check_scan_bytes(n_total, rows, cols, 2, folder)

    decoded = [images.decode_image(p, k) for p, k in zip(paths, kinds, strict=True)]
    dtypes = {d.frames.dtype for d in decoded}
    target = np.result_type(*dtypes) if len(dtypes) > 1 else decoded[0].frames.dtype
    frames = np.concatenate([d.frames.astype(target, copy=False) for d in decoded])
    was_color = any(d.was_color for d in decoded)
    modalities = {d.modality for d in decoded}
    if all(m.is_oct for m in modalities):
        modality = Modality.OCT_VOLUME if len(frames) > 1 else Modality.OCT_BSCAN
    elif modalities == {Modality.FUNDUS}:
        modality = Modality.FUNDUS
    else:
        modality = Modality.UNKNOWN
    notes = sorted({n for d in decoded for n in d.notes})
    meta = ScanMetadata(
        source_paths=tuple(paths),
        format="image folder",
        modality=modality,
        was_color=was_color,
        bit_depth=max(d.bit_depth for d in decoded),
        downsampled_from=next((d.downsampled_from for d in decoded if d.downsampled_from), None),
        notes=tuple(notes),
    )
    return Scan(frames=frames, metadata=meta)
