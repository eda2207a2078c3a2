"""What a folder is: one scan, several independent scans, or a question for the user.

The same rules serve the window, the command line and ``octviewer.load``:

* one volume only when the files *are* one: a DICOM series, or numbered B-scans of one size
  whose names differ only in the frame number (nothing marks them as different eyes or
  patients);
* independent scans (vendor files, DICOM files of several series, images of mixed sizes or
  with unrelated names) open as that many scans;
* numbered B-scans plus exactly one image of another size (the SLO / fundus export) form a
  volume with that image as its localizer;
* when the pairing is not clear (numbered B-scans plus several other images) the user chooses.

:func:`plan_folder` says which; :func:`read_planned` opens one item of a plan (``load(folder,
series=key)``). A folder that is not one scan raises :class:`AmbiguousSeriesError` with the
items as choices; ``independent=True`` when they are separate scans to be opened one by one.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from octviewer.core.io import images
from octviewer.core.io import series as series_io
from octviewer.core.io.sniff import IMAGE_KINDS, FileKind, sniff
from octviewer.core.scan import Localizer, Scan
from octviewer.errors import AmbiguousSeriesError, NoImagesFoundError, ScanReadError

logger = logging.getLogger(__name__)

#: ``load(path, *, series=None) -> Scan``: how a single file of a folder is opened.
Loader = Callable[..., Scan]

VENDOR_KINDS = frozenset({FileKind.HEIDELBERG_VOL, FileKind.HEIDELBERG_E2E, FileKind.TOPCON_FDA})
IMAGES_KEY = series_io.IMAGES_KEY
DICOMDIR_KEY = "file:DICOMDIR"
Decision = Literal["one", "several", "ask"]
_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")


@dataclass(frozen=True)
class FolderItem:
    """One scan of a folder: ``key`` opens it with ``load(folder, series=key)``."""

    key: str
    description: str
    paths: tuple[Path, ...]
    localizer: Path | None = None  # an en-face image paired with an image stack


@dataclass(frozen=True)
class FolderPlan:
    folder: Path
    decision: Decision
    items: tuple[FolderItem, ...]
    reason: str
    #: files that are no scan (sidecars: text, CSV, XML, JSON, unreadable): never read, and
    #: said so on the scan opened from the folder (:func:`ignored_note`)
    ignored: tuple[Path, ...] = ()

    def item(self, key: str) -> FolderItem | None:
        return next((i for i in self.items if i.key == key), None)

    @property
    def choices(self) -> dict[str, str]:
        return {i.key: i.description for i in self.items}


def _template(name: str) -> tuple[str, str] | None:
    """(text before, text after) the last number of a file name, or None without a number."""
    stem, dot, suffix = name.rpartition(".")
    m = _LAST_NUMBER.match(stem if dot else name)
    return (m.group(1).lower(), (m.group(3) + dot + suffix).lower()) if m else None


def _is_numbered_stack(paths: list[Path]) -> bool:
    """Names that differ only in their last number: ``scan_001.png``, ``scan_002.png``..."""
    templates = {_template(p.name) for p in paths}
    return len(paths) > 1 and None not in templates and len(templates) == 1


def _files(folder: Path) -> list[Path]:
    from natsort import natsorted, ns

    entries = natsorted(
        (p for p in folder.iterdir() if not p.name.startswith(".")),
        key=lambda p: p.name,
        alg=ns.IGNORECASE,
    )
    files = [p for p in entries if p.is_file() and p.name.lower() not in series_io.IGNORED_NAMES]
    if not files:
        dicomdir = [p for p in entries if p.is_file() and p.name.lower() == "dicomdir"]
        if dicomdir:
            return dicomdir  # only an index: open it, it says what is missing
        subfolders = [p.name for p in entries if p.is_dir()]
        hint = (
            f" It only contains sub-folders ({', '.join(subfolders[:5])}); open the one that "
            "holds the scan."
            if subfolders
            else ""
        )
        raise NoImagesFoundError(
            f"The folder '{folder.name}' contains no files to open.{hint}", path=folder
        )
    return files


def plan_folder(folder: str | Path) -> FolderPlan:
    """Decide what the files of ``folder`` (not its sub-folders) are; see the module text."""
    folder = Path(folder)
    files = _files(folder)
    if len(files) == 1 and files[0].name.lower() == "dicomdir":
        item = FolderItem(DICOMDIR_KEY, "DICOMDIR (index of a DICOM export)", (files[0],))
        return FolderPlan(folder, "one", (item,), "a DICOMDIR only")
    kinds: dict[Path, FileKind] = {}
    for path in files:
        try:
            kinds[path] = sniff(path)
        except OSError as exc:
            logger.info("skipping unreadable file in folder: %s", exc)
    scan_kinds = {FileKind.DICOM, *VENDOR_KINDS, *IMAGE_KINDS}
    ignored = tuple(p for p in files if kinds.get(p) not in scan_kinds)
    items: list[FolderItem] = []
    dicom_groups = series_io.classify_dicoms(
        folder, [p for p, k in kinds.items() if k is FileKind.DICOM]
    )
    for key, group in dicom_groups.items():
        items.append(FolderItem(key, group.description, tuple(group.paths)))
    for path, kind in kinds.items():
        if kind in VENDOR_KINDS:
            items.append(FolderItem(f"file:{path.name}", f"{path.name} ({kind.value})", (path,)))
    image_items, ask_reason = _plan_images(
        folder, [p for p, k in kinds.items() if k in IMAGE_KINDS]
    )
    items += image_items
    if not items:
        raise NoImagesFoundError(
            f"None of the {len(files)} file(s) in the folder '{folder.name}' is an OCT image, a "
            "DICOM image or a vendor scan (PNG, JPEG, TIFF, BMP, DICOM, Heidelberg .vol/.E2E, "
            "Topcon .fda/.fds). Choose the folder that holds the scan.",
            path=folder,
        )
    if ask_reason:
        return FolderPlan(folder, "ask", tuple(items), ask_reason, ignored)
    if len(items) == 1:
        return FolderPlan(folder, "one", tuple(items), "the files form one scan", ignored)
    return FolderPlan(folder, "several", tuple(items), f"{len(items)} independent scans", ignored)


def ignored_note(ignored: tuple[Path, ...]) -> str | None:
    """The note a scan opened from a folder carries about the folder's other files (by count
    and type only: file names can hold a patient's name); None when there are none."""
    if not ignored:
        return None
    types = sorted({p.suffix.lower() or "no extension" for p in ignored})
    return (
        f"{len(ignored)} other file(s) in the folder were not read ({', '.join(types[:6])}): "
        "octviewer does not use sidecar files, so B-scan positions or other data they may "
        "hold are not shown"
    )


def _sizes(paths: list[Path]) -> dict[Path, tuple[int, int, int]]:
    out = {}
    for p in paths:
        try:
            out[p] = images.image_size(p, sniff(p))
        except (ScanReadError, OSError) as exc:  # a bad image is its own item: it says why
            logger.info("could not read the size of an image in a folder: %s", exc)
            out[p] = (1, -1, -1)
    return out


def _plan_images(folder: Path, paths: list[Path]) -> tuple[list[FolderItem], str]:
    """Items for the images of a folder, and a reason to ask the user ("" when clear)."""
    if not paths:
        return [], ""
    if len(paths) == 1:
        return [FolderItem(IMAGES_KEY, f"{IMAGES_KEY}: {paths[0].name}", (paths[0],))], ""
    sizes = _sizes(paths)
    singles = [p for p in paths if sizes[p][0] == 1]
    by_size = Counter((sizes[p][1], sizes[p][2]) for p in singles)
    main_size, n_main = by_size.most_common(1)[0] if by_size else ((0, 0), 0)
    stack = [p for p in singles if (sizes[p][1], sizes[p][2]) == main_size]
    others = [p for p in paths if p not in stack]
    if n_main > 1 and _is_numbered_stack(stack):
        what = f"{IMAGES_KEY}: {len(stack)} numbered B-scans ({main_size[1]} x {main_size[0]})"
        if not others:
            return [FolderItem(IMAGES_KEY, what, tuple(stack))], ""
        single_frame_other = len(others) == 1 and sizes[others[0]][0] == 1
        if single_frame_other:
            desc = f"{what} with {others[0].name} as localizer"
            return [FolderItem(IMAGES_KEY, desc, tuple(stack), localizer=others[0])], ""
        items = [FolderItem(IMAGES_KEY, f"{what}, without a localizer", tuple(stack))]
        items += [_single(p) for p in others]
        return items, (
            f"the folder holds {len(stack)} numbered B-scans and {len(others)} other images; "
            "octviewer cannot tell which (if any) is their localizer"
        )
    return [_single(p) for p in paths], ""


def _single(path: Path) -> FolderItem:
    return FolderItem(f"file:{path.name}", path.name, (path,))


def read_planned(folder: Path, load: Loader, *, series: str | None = None) -> Scan:
    """Open a folder by its plan: the one scan it is, or the item ``series`` names; a single
    file of it (or its DICOMDIR) through ``load`` (:func:`octviewer.core.io.load`, passed in:
    the loader calls this module, so this module does not import it)."""
    plan = plan_folder(folder)
    if plan.items[0].key == DICOMDIR_KEY:  # an export folder: its index lists the series
        return load(plan.items[0].paths[0], series=series)
    if series is None and plan.decision == "one":
        return _with_note(_open_item(folder, plan.items[0], load), ignored_note(plan.ignored))
    if series is None:
        independent = plan.decision == "several"
        intro = (
            f"The folder '{folder.name}' holds {len(plan.items)} independent scans, which "
            "octviewer opens one by one, not as one volume"
            if independent
            else f"octviewer cannot tell how to open the folder '{folder.name}': {plan.reason}"
        )
        raise AmbiguousSeriesError(
            f"{intro}. Choose one: " + "; ".join(plan.choices.values()),
            series=plan.choices,
            path=folder,
            independent=independent,
        )
    item = plan.item(series)
    if item is None:
        raise AmbiguousSeriesError(
            f"The folder '{folder.name}' has no series '{series}'. Choose one of: "
            + "; ".join(plan.choices.values()),
            series=plan.choices,
            path=folder,
            independent=plan.decision == "several",
        )
    scan = _open_item(folder, item, load)
    return scan if len(item.paths) == 1 else _with_note(scan, ignored_note(plan.ignored))


def _with_note(scan: Scan, note: str | None) -> Scan:
    if note is not None:
        logger.info("folder: %s", note)
        scan.metadata = replace(scan.metadata, notes=(*scan.metadata.notes, note))
    return scan


def _open_item(folder: Path, item: FolderItem, load: Loader) -> Scan:
    if item.key.startswith("file:") or (len(item.paths) == 1 and item.key != IMAGES_KEY):
        return load(item.paths[0])
    if item.key != IMAGES_KEY:  # a DICOM series
        return series_io.read_folder(folder, series=item.key)
    scan = series_io.read_image_stack(folder, list(item.paths))
    if item.localizer is not None:
        enface = images.decode_image(item.localizer, sniff(item.localizer))
        scan.localizer = Localizer(image=enface.frames[0])
        logger.debug("image stack with an en-face localizer (%d B-scans)", scan.n_frames)
    return scan
