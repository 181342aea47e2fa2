"""The manifest: one CSV row per image (file, label, class, split). Every later step reads it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from keras_cxr.data.datasets import Record
from keras_cxr.errors import KerasCXRError
from keras_cxr.io_utils import atomic_path

FIELDS = ("file", "label", "class", "split")


def write_manifest(path: str | os.PathLike, records: list[Record], class_names: tuple) -> None:
    """Writes the manifest CSV atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FIELDS)
            for r in records:
                w.writerow((r.file, r.label, class_names[r.label], r.split))


def read_manifest(path: str | os.PathLike) -> tuple[list[Record], tuple]:
    """Reads a manifest; returns (records, class_names in label order)."""
    path = Path(path)
    if not path.is_file():
        raise KerasCXRError(f"manifest not found: {path} (make one with `python -m keras_cxr data prepare`)")
    records, names = [], {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise KerasCXRError(f"{path} is not a keras_cxr manifest (columns {reader.fieldnames}, expected {list(FIELDS)})")
        for line, row in enumerate(reader, start=2):
            try:
                label = int(row["label"])
            except ValueError:
                raise KerasCXRError(f"{path} line {line}: label {row['label']!r} is not an integer") from None
            if label not in (0, 1) or row["split"] not in ("train", "val", "test"):
                raise KerasCXRError(f"{path} line {line}: bad label or split in {row}")
            names[label] = row["class"]
            records.append(Record(row["file"], label, row["split"]))
    if len(names) != 2:
        raise KerasCXRError(f"{path} must hold images of both classes")
    return records, (names[0], names[1])
