"""``octviewer-train sources``: one training CSV from several labelled sources.

Each source is a folder with a ``MANIFEST.tsv`` (as in ``../shared/data``: Kermany's
``class, filename, patient_id`` or OCTDL's ``path, class, original_label, patient_id``). The CSV
has the columns ``path,label,patient,source``; patients are namespaced by their source
(``kermany/1016042``), so two datasets' numbering never merges two people, and the order of a
source's patients stays that of the source alone (its folds do not change, see
:func:`training.data.split.patient_fold`). Rows without a class (OCTDL's ``other-findings``) get the
label ``OTHER`` for outlier exposure (``--outlier-label OTHER``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections import Counter
from pathlib import Path

from octviewer.errors import OCTViewerError, TrainingError

log = logging.getLogger(__name__)

#: The CSV label of images with findings outside the classes.
OTHER = "OTHER"


def manifest_rows(root: Path, name: str) -> list[tuple[str, str, str, str]]:
    """``(path, label, patient, source)`` of every image listed in ``root/MANIFEST.tsv``."""
    manifest = root / "MANIFEST.tsv"
    try:
        with manifest.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except OSError as exc:
        raise TrainingError(f"Cannot read {manifest}: {exc}", path=manifest) from exc
    out = []
    for row in rows:
        rel = row.get("path") or f"{row.get('class', '')}/{row.get('filename', '')}"
        label = (row.get("class") or "").strip() or OTHER
        patient = (row.get("patient_id") or "").strip()
        path = root / rel
        if not patient or not path.is_file():
            raise TrainingError(
                f"{manifest.name} of {name}: row {rel!r} has no patient or its file is missing.",
                path=manifest,
            )
        out.append((str(path.resolve()), label, f"{name}/{patient}", name))
    return out


def write_sources_csv(sources: list[tuple[str, Path]], output: Path) -> Counter[tuple[str, str]]:
    """Write the CSV; returns the image count per (source, label)."""
    rows = [r for name, root in sources for r in manifest_rows(root, name)]
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["path", "label", "patient", "source"])
        w.writerows(rows)
    return Counter((src, label) for _, label, _, src in rows)


def _source(text: str) -> tuple[str, Path]:
    name, eq, path = text.partition("=")
    if not eq or not name or not path:
        raise argparse.ArgumentTypeError("give NAME=FOLDER, e.g. kermany=../shared/data/kermany")
    return name, Path(path)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="octviewer-train sources",
        description="Write one training CSV (path,label,patient,source) from labelled sources.",
    )
    p.add_argument("sources", nargs="+", type=_source, metavar="NAME=FOLDER")
    p.add_argument("--output", required=True, help="The CSV to write.")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        counts = write_sources_csv(args.sources, Path(args.output))
    except OCTViewerError as exc:
        sys.stderr.write(f"octviewer-train sources: error: {exc}\n")
        return 2
    for (src, label), n in sorted(counts.items()):
        log.info("%s %s: %d", src, label, n)
    return 0
