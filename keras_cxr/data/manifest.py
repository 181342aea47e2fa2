"""The manifest: one CSV row per image (file, label, class, split). Every later step reads it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from keras_cxr.data.datasets import Record
from keras_cxr.data.images import load_npz
from keras_cxr.errors import KerasCXRError
from keras_cxr.identity import records_sha256
from keras_cxr.io_utils import atomic_path, write_json

FIELDS = ("file", "label", "class", "split")


def write_manifest(path: str | os.PathLike, records: list[Record], class_names: tuple) -> None:
    """Writes the manifest CSV atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FIELDS)
            for r in records:
                w.writerow((r.file, r.label, class_names[r.label], r.split))


def write_prepared(folder: str | os.PathLike, records: list[Record], class_names: tuple, summary: dict) -> Path:
    """Writes `folder/summary.json`, then `folder/manifest.csv`; returns the manifest's path.

    In that order, so a manifest always has its summary (a kill between the two leaves only a
    summary, which a rerun writes again); if the manifest cannot be written (a full disk), the
    summary is removed too, so nothing is left half-prepared.
    """
    folder = Path(folder)
    write_json(folder / "summary.json", summary)
    try:
        write_manifest(folder / "manifest.csv", records, class_names)
    except BaseException:
        (folder / "summary.json").unlink(missing_ok=True)
        raise
    return folder / "manifest.csv"


def read_manifest(path: str | os.PathLike, check_files: bool = True) -> tuple[list[Record], tuple]:
    """Reads and checks a manifest; returns (records, class_names in label order).

    Checked before anything downstream writes: the columns, every label and split, that each
    label has one class name (and each name one label), that both labels occur, and (with
    `check_files`) that every image file exists.
    """
    path = Path(path)
    if not path.is_file():
        raise KerasCXRError(f"manifest not found: {path} (make one with `python -m keras_cxr data prepare`)")
    records, names, first_line = [], {}, {}
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != FIELDS:
                raise KerasCXRError(f"{path} is not a keras_cxr manifest (columns {reader.fieldnames}, expected {list(FIELDS)})")
            for line, row in enumerate(reader, start=2):
                try:
                    label = int(row["label"])
                except (TypeError, ValueError):
                    raise KerasCXRError(f"{path} line {line}: label {row['label']!r} is not an integer") from None
                if label not in (0, 1) or row["split"] not in ("train", "val", "test") or not row["file"]:
                    raise KerasCXRError(f"{path} line {line}: bad label, split or file in {row}")
                name = row["class"]
                if names.setdefault(label, name) != name:
                    raise KerasCXRError(f"{path} line {line}: label {label} is class {name!r} here but "
                                        f"{names[label]!r} on line {first_line[label]}")
                first_line.setdefault(label, line)
                records.append(Record(row["file"], label, row["split"]))
    except UnicodeDecodeError:
        raise KerasCXRError(f"{path} is not a text CSV manifest") from None
    except csv.Error as exc:
        raise KerasCXRError(f"{path} is not a readable CSV manifest ({exc})") from None
    if len(names) != 2:
        raise KerasCXRError(f"{path} must hold images of both classes (labels 0 and 1); it has only {sorted(names)}")
    if names[0] == names[1]:
        raise KerasCXRError(f"{path}: labels 0 and 1 carry the same class name {names[0]!r}")
    if check_files:
        missing = sorted({f for f in (r.file.rsplit("#", 1)[0] if ".npz#" in r.file else r.file for r in records)
                          if not os.path.isfile(f)})
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise KerasCXRError(f"{path} lists {len(missing)} image file(s) that do not exist: {shown}")
        _check_npz_rows(path, records)
    return records, (names[0], names[1])


def _check_npz_rows(path: Path, records: list[Record]) -> None:
    """Every `<file>.npz#<split>/<index>` row names an array the archive has and an index inside
    it (a negative index would silently read from the end)."""
    for line, r in enumerate(records, start=2):
        if ".npz#" not in r.file:
            continue
        npz, member = r.file.rsplit("#", 1)
        split, _, index = member.partition("/")
        if split not in ("train", "val", "test") or not index.isdigit():
            raise KerasCXRError(f"{path} line {line}: {r.file!r} must end in #<train|val|test>/<index >= 0>")
        images = load_npz(npz).get(f"{split}_images")
        if images is None:
            raise KerasCXRError(f"{path} line {line}: {npz} has no `{split}_images` array (row {r.file!r})")
        if int(index) >= len(images):
            raise KerasCXRError(f"{path} line {line}: index {index} is outside `{split}_images` of {npz} "
                                f"({len(images)} images)")


def manifest_sha256(path: str | os.PathLike) -> str:
    """The content digest of a manifest's images (`identity.records_sha256` of its records): what
    cells and prepared folders record and compare."""
    return records_sha256(read_manifest(path)[0])


def label_counts(records: list[Record], splits=("train", "val")) -> list[int]:
    """[count of label 0, count of label 1] over the given splits (default: train + validation,
    the pool that `--minority-fraction` shapes)."""
    counts = [0, 0]
    for r in records:
        if r.split in splits:
            counts[r.label] += 1
    return counts
