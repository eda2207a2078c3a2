"""Dataset discovery and image reading for training.

Layouts understood by :func:`discover`:

* a folder with one sub-folder per class (ImageFolder), files anywhere below it;
* Kermany's layout: ``root/train/<CLASS>/...`` (plus ``root/val``, merged into the training
  pool, and ``root/test``, used as the test set unless ``--test`` says otherwise);
* a CSV file with a header ``path,label[,patient][,source]`` (paths relative to the CSV's
  folder). ``source`` names where an image comes from (a dataset, a device): cross-validation
  folds are dealt per source (:func:`training.data.split.patient_fold`), so adding a source leaves
  the folds of the others as they were.

Outlier exposure: images whose label is ``outlier_label`` (findings outside the classes) get the
label :data:`OUTLIER` (-1); they are trained toward a uniform output and never validated on.

The patient of an image comes from the CSV column, else from a Kermany-style name
``CLASS-PATIENT-N`` (the ``patient_regex``), else from a sub-folder between the class folder and
the file (``CLASS/PATIENT/img.png``); failing all three each image is its own "patient" and a
warning says the split cannot be patient-disjoint.

Pixels go through :mod:`octviewer.core.preprocess` exactly as in the viewer: ``to_float01`` then
``resize`` here; augmentation and ``normalize`` come later, on batches.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from octviewer.core.model.config import PreprocessConfig
from octviewer.errors import OCTViewerError, TrainingError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_PATIENT_REGEX = r"^(?P<label>[A-Za-z]+)-(?P<patient>[^-]+)-(?P<n>\d+)$"
PLAIN_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
SKIP_SUFFIXES = {".txt", ".csv", ".tsv", ".json", ".md", ".xml", ".html", ".pdf", ".zip", ".py"}


#: The label of an outlier-exposure image (a finding outside the classes).
OUTLIER = -1


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # class index, or OUTLIER
    patient: str
    frame: int | None = None  # frame of a multi-frame file; None = the middle frame
    source: str = ""  # where the image comes from (CSV column); folds are dealt per source


@dataclass(frozen=True)
class DatasetSource:
    samples: tuple[Sample, ...]
    class_names: tuple[str, ...]
    layout: str  # "imagefolder", "kermany", "csv"
    root: Path
    test_root: Path | None = None  # Kermany's test/ folder, when present
    patients_from: str = "name"  # "csv", "name", "folder", "image" (no patient information)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples)
        return {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}


def _is_candidate(path: Path) -> bool:
    return (
        path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() not in SKIP_SUFFIXES
        and path.name != "DICOMDIR"
    )


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_classes(counts: dict[str, int], where: Path) -> None:
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise TrainingError(
            f"The class folder(s) {', '.join(empty)} in {where} hold no images. Add images "
            "or remove the folder (or leave the class out with --classes).",
            path=where,
        )
    if len(counts) < 2:
        raise TrainingError(
            f"{where} holds only one class ({', '.join(counts) or 'none'}); a classifier needs "
            "at least two classes, each in its own folder (or CSV label).",
            path=where,
        )


def _patient_of(path: Path, class_dir: Path, pattern: re.Pattern[str]) -> tuple[str, str]:
    m = pattern.match(path.stem)
    if m and m.groupdict().get("patient"):
        return m.group("patient"), "name"
    rel = path.relative_to(class_dir)
    if len(rel.parts) >= 2:
        return rel.parts[0], "folder"
    return path.stem, "image"


def _scan_imagefolder(
    roots: list[Path], class_names: tuple[str, ...] | None, pattern: re.Pattern[str]
) -> tuple[list[Sample], tuple[str, ...], set[str]]:
    found: dict[str, list[Path]] = {}
    class_dir_of: dict[Path, Path] = {}
    for root in roots:
        for d in _class_dirs(root):
            files = sorted(p for p in d.rglob("*") if _is_candidate(p))
            found.setdefault(d.name, []).extend(files)
            for f in files:
                class_dir_of[f] = d
    names = tuple(class_names) if class_names else tuple(sorted(found))
    unknown = [c for c in names if c not in found]
    if unknown:
        raise TrainingError(
            f"No folder for class(es) {', '.join(unknown)} in {roots[0]}; the folders there are: "
            f"{', '.join(sorted(found)) or 'none'}.",
            path=roots[0],
        )
    _check_classes({c: len(found[c]) for c in names}, roots[0])
    samples: list[Sample] = []
    sources: set[str] = set()
    for label, name in enumerate(names):
        for f in found[name]:
            patient, how = _patient_of(f, class_dir_of[f], pattern)
            sources.add(how)
            samples.append(Sample(path=f, label=label, patient=patient))
    return samples, names, sources


def _scan_csv(
    path: Path, class_names: tuple[str, ...] | None, outlier_label: str | None = None
) -> tuple[list[Sample], tuple[str, ...], bool]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise TrainingError(f"The CSV file {path.name} is empty.", path=path)
    header = [h.strip().lower() for h in rows[0]]
    if "path" in header and "label" in header:
        ip, il = header.index("path"), header.index("label")
        ipat = header.index("patient") if "patient" in header else None
        isrc = header.index("source") if "source" in header else None
        body = rows[1:]
    else:
        ip, il, ipat, isrc = 0, 1, (2 if len(rows[0]) >= 3 else None), None
        body = rows
    entries: list[tuple[Path, str, str | None]] = []
    source_of: dict[Path, str] = {}
    for n, row in enumerate(body, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) <= max(ip, il):
            raise TrainingError(f"Line {n} of {path.name} has no path or label: {row!r}", path=path)
        p = Path(row[ip].strip())
        p = p if p.is_absolute() else path.parent / p
        patient = (
            row[ipat].strip()
            if ipat is not None and len(row) > ipat and row[ipat].strip()
            else None
        )
        entries.append((p, row[il].strip(), patient))
        if isrc is not None and len(row) > isrc:
            source_of[p] = row[isrc].strip()
    labels_found = Counter(lbl for _, lbl, _ in entries if lbl != outlier_label)
    names = tuple(class_names) if class_names else tuple(sorted(labels_found))
    _check_classes({c: labels_found.get(c, 0) for c in names}, path)
    index = {c: i for i, c in enumerate(names)}
    if outlier_label is not None:
        index[outlier_label] = OUTLIER
    has_patients = all(pat is not None for _, _, pat in entries)
    samples = [
        Sample(
            path=p,
            label=index[lbl],
            patient=pat if pat is not None else p.stem,
            source=source_of.get(p, ""),
        )
        for p, lbl, pat in entries
        if lbl in index
    ]
    return samples, names, has_patients


def discover(
    source: str | Path,
    *,
    class_names: tuple[str, ...] | None = None,
    patient_regex: str = DEFAULT_PATIENT_REGEX,
    outlier_label: str | None = None,
) -> DatasetSource:
    """Find the labelled images of ``source`` (folder or CSV). Refuses unusable datasets.
    ``outlier_label``: the CSV label of outlier-exposure images (see the module docstring)."""
    root = Path(source).expanduser()
    if not root.exists():
        raise TrainingError(f"The dataset {root} does not exist.", path=root)
    pattern = re.compile(patient_regex)
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise TrainingError(
                f"{root.name} is a file but not a CSV; give a folder with one sub-folder per "
                "class, or a CSV with the columns path,label[,patient].",
                path=root,
            )
        samples, names, has_patients = _scan_csv(root, class_names, outlier_label)
        ds = DatasetSource(
            tuple(samples), names, "csv", root, None, "csv" if has_patients else "image"
        )
    else:
        train_dir = root / "train"
        if train_dir.is_dir() and _class_dirs(train_dir):
            roots = [train_dir] + ([root / "val"] if (root / "val").is_dir() else [])
            samples, names, sources = _scan_imagefolder(roots, class_names, pattern)
            test_root = root / "test" if (root / "test").is_dir() else None
            layout = "kermany"
        else:
            if not _class_dirs(root):
                raise TrainingError(
                    f"{root} has no class sub-folders. Put the images of each class in its own "
                    "folder (e.g. CNV/, DME/, DRUSEN/, NORMAL/) or give a CSV file.",
                    path=root,
                )
            samples, names, sources = _scan_imagefolder([root], class_names, pattern)
            test_root, layout = None, "imagefolder"
        how = "image" if "image" in sources else ("folder" if "folder" in sources else "name")
        ds = DatasetSource(tuple(samples), names, layout, root, test_root, how)
    if ds.patients_from == "image":
        log.warning(
            "No patient ids found for some images (no patient column, names not like "
            "CLASS-PATIENT-N, no patient folders): the split is by image and validation scores "
            "may be optimistic if a patient has several images."
        )
    log.info(
        "Dataset %s (%s): %d images, %d patients, classes %s",
        root,
        ds.layout,
        len(ds.samples),
        len({s.patient for s in ds.samples}),
        ds.class_counts(),
    )
    return ds


def discover_test(
    source: str | Path, class_names: tuple[str, ...], patient_regex: str = DEFAULT_PATIENT_REGEX
) -> tuple[Sample, ...]:
    """Samples of a test folder/CSV, labelled with the training classes (others skipped)."""
    root = Path(source).expanduser()
    pattern = re.compile(patient_regex)
    if root.is_file():
        samples, _, _ = _scan_csv(root, class_names)
        return tuple(samples)
    if not root.is_dir():
        raise TrainingError(f"The test set {root} does not exist.", path=root)
    index = {c: i for i, c in enumerate(class_names)}
    samples: list[Sample] = []
    for d in _class_dirs(root):
        if d.name not in index:
            log.warning("Test folder %s is not a training class: skipped", d.name)
            continue
        for f in sorted(p for p in d.rglob("*") if _is_candidate(p)):
            samples.append(
                Sample(path=f, label=index[d.name], patient=_patient_of(f, d, pattern)[0])
            )
    if not samples:
        raise TrainingError(
            f"The test set {root} holds no images of the training classes.", path=root
        )
    return tuple(samples)


# --- reading pixels ------------------------------------------------------------------------
def read_frame(sample: Sample) -> np.ndarray:
    """The raw 2-D frame of a sample (uint8/uint16/float32). Raises OCTViewerError if unreadable.

    Plain 8/16-bit grayscale JPEG/PNG/BMP are read straight with Pillow; everything else goes
    through ``octviewer.load`` (the viewer's readers), taking the middle frame of a volume
    unless ``sample.frame`` says otherwise.
    """
    path = sample.path
    if path.suffix.lower() in PLAIN_IMAGE_SUFFIXES:
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.mode in ("L", "I;16"):
                    arr = np.asarray(im)
                    if arr.ndim == 2 and arr.size:
                        return arr
        except (OSError, ValueError, SyntaxError) as exc:
            raise TrainingError(f"Cannot read {path}: {exc}", path=path) from exc
    from octviewer import load

    scan = load(path)
    index = sample.frame if sample.frame is not None else scan.n_frames // 2
    return np.asarray(scan.frame(index))


def load_resized(sample: Sample, cfg: PreprocessConfig) -> np.ndarray:
    """Read a sample and bring it to the model size: float32 (H, W) in [0, 1], not normalised."""
    from octviewer.core import preprocess

    return preprocess.resize(preprocess.to_float01(read_frame(sample)), cfg).astype(
        np.float32, copy=False
    )


class FrameDataset:
    """A torch map-style dataset of resized (not yet augmented/normalised) frames.

    With ``cache`` (an array (N, H, W), float16) items come from memory; otherwise each item is
    decoded on access (in DataLoader workers). An unreadable image yields zeros with
    ``ok=False`` so the loop can drop it and report it.
    """

    def __init__(
        self, samples: tuple[Sample, ...], cfg: PreprocessConfig, cache: np.ndarray | None = None
    ) -> None:
        self.samples = samples
        self.cfg = cfg
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, bool]:
        import torch

        s = self.samples[i]
        if self.cache is not None:
            return torch.from_numpy(self.cache[i].astype(np.float32))[None], s.label, i, True
        try:
            x = load_resized(s, self.cfg)
            ok = True
        except (OCTViewerError, OSError, ValueError) as exc:
            log.warning("Unreadable image skipped: %s (%s)", s.path, exc)
            x = np.zeros(self.cfg.size, dtype=np.float32)
            ok = False
        return torch.from_numpy(np.ascontiguousarray(x))[None], s.label, i, ok


def cache_bytes(n: int, cfg: PreprocessConfig) -> int:
    return n * cfg.size[0] * cfg.size[1] * 2  # float16


def build_cache(
    samples: tuple[Sample, ...], cfg: PreprocessConfig, *, workers: int = 0, desc: str = "decode"
) -> tuple[np.ndarray, list[int]]:
    """Decode + resize every sample once. Returns (cache (N, H, W) float16, unreadable indices)."""
    import torch
    from tqdm.auto import tqdm

    ds = FrameDataset(samples, cfg)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=workers, shuffle=False)
    cache = np.zeros((len(samples), *cfg.size), dtype=np.float16)
    bad: list[int] = []
    for x, _, idx, ok in tqdm(loader, desc=desc, unit="batch", leave=False):
        cache[idx.numpy()] = x[:, 0].numpy().astype(np.float16)
        bad.extend(int(i) for i, good in zip(idx, ok, strict=True) if not good)
    return cache, bad


def describe(
    samples: tuple[Sample, ...] | list[Sample], class_names: tuple[str, ...]
) -> dict[str, Any]:
    counts = Counter(s.label for s in samples)
    out = {
        "images": len(samples),
        "patients": len({s.patient for s in samples}),
        "per_class": {c: counts.get(i, 0) for i, c in enumerate(class_names)},
    }
    if counts.get(OUTLIER):
        out["outliers"] = counts[OUTLIER]
    return out
