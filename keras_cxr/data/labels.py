"""A flat image folder plus a CSV of labels, as the public challenges ship chest X-rays.

RSNA Pneumonia gives `patientId,...,Target` beside a folder of `<patientId>.dcm` (one row per
box, so an image can have several rows); CheXpert gives `Path,...,Pneumonia` with paths under
the dataset's parent folder and the values 1.0, 0.0, -1.0 (uncertain) and blank. Both become the
records a class-folder tree gives: each listed file found and decoded once, each label value
mapped to a class name, and a split from a split column or a seeded, stratified test carve.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_cxr.errors import KerasCXRError

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class LabelTable:
    """How to read a CSV of labels.

    Args:
        file: str. The CSV file.
        path_column: str or None. Column of image paths, relative to the image folder (or
            absolute); a value without a suffix (RSNA's patientId) matches `<value>.dcm`,
            `.png`, `.jpg` or `.jpeg`. None: the first column. Defaults to None.
        label_column: str or None. Column of label values. None: the second column.
            Defaults to None.
        label_map: tuple of (value, class name) pairs. Empty: values that are class names map to
            themselves. Numeric values match numerically (`1` matches `1.0`). Defaults to ().
        skip_unmapped: bool. Skip rows whose value the map does not name (CheXpert's -1.0 and
            blanks), counted in one note; otherwise they are an error. Defaults to False.
        split_column: str or None. Column of train / val (or valid, validation) / test. None:
            a stratified test split of `test_fraction` of each class is carved. Defaults to None.
        test_fraction: float. Share of each class carved as test, in (0, 1). Defaults to 0.2.
        seed: int. Seed of the test carve (the data section's seed). Defaults to 0.
    """

    file: str
    path_column: str | None = None
    label_column: str | None = None
    label_map: tuple = ()
    skip_unmapped: bool = False
    split_column: str | None = None
    test_fraction: float = 0.2
    seed: int = 0

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["label_map"] = dict(self.label_map)
        return out


@dataclass
class LabelledFiles:
    """What a label file lists: (path, label, split or None) per image, and what was passed over."""

    items: list = field(default_factory=list)
    unmapped: Counter = field(default_factory=Counter)  # skipped label values and their row counts
    repeated_rows: int = 0  # extra rows of an image already listed with the same label (RSNA boxes)


def parse_label_map(text: str) -> tuple:
    """`1=PNEUMONIA,0=NORMAL` -> (("1", "PNEUMONIA"), ("0", "NORMAL")); `=X` maps the blank value."""
    pairs = []
    for part in text.split(","):
        value, sep, name = part.partition("=")
        if not sep or not name.strip():
            raise KerasCXRError(f"--label-map takes VALUE=CLASS pairs separated by commas, e.g. 1=PNEUMONIA,0=NORMAL. "
                                f"Received: {text!r}")
        pairs.append((value.strip(), name.strip()))
    return tuple(pairs)


def _number(value: str):
    try:
        return float(value)
    except ValueError:
        return None


def _class_of(value: str, label_map: tuple, class_names: tuple) -> str | None:
    """The class name of a label value, or None where the map does not name it."""
    value = value.strip()
    pairs = label_map or tuple((n, n) for n in class_names)
    for key, name in pairs:
        if key == value or (_number(key) is not None and _number(key) == _number(value)):
            return name
    return None


def _resolve(root: Path, value: str, suffixes: tuple) -> Path | None:
    path = Path(value.strip())
    path = path if path.is_absolute() else root / path
    if path.is_file():
        return path
    if not path.suffix:
        found = [path.with_name(path.name + s) for s in suffixes if path.with_name(path.name + s).is_file()]
        if len(found) == 1:
            return found[0]
    return None


def _columns(table: LabelTable, fieldnames: list) -> tuple[str, str, str | None]:
    if len(fieldnames) < 2:
        raise KerasCXRError(f"{table.file} needs a path and a label column; it has {fieldnames}")
    path_col, label_col = table.path_column or fieldnames[0], table.label_column or fieldnames[1]
    for option, col in (("--path-column", path_col), ("--label-column", label_col), ("--split-column", table.split_column)):
        if col is not None and col not in fieldnames:
            raise KerasCXRError(f"{table.file} has no column {col!r} ({option}); its columns: {', '.join(fieldnames)}")
    return path_col, label_col, table.split_column


def _check_map(table: LabelTable, class_names: tuple) -> None:
    names = {name for _, name in table.label_map}
    unknown = sorted(names - set(class_names))
    if unknown:
        raise KerasCXRError(f"--label-map names {unknown}, which are not among the class names {list(class_names)} "
                            f"(set them in label order with --class-names)")
    if table.label_map and names != set(class_names):
        raise KerasCXRError(f"--label-map must map values to both classes {list(class_names)}. "
                            f"Received: {dict(table.label_map)}")
    if not 0 < table.test_fraction < 1:
        raise KerasCXRError(f"--test-fraction must be in (0, 1). Received: {table.test_fraction}")


def read_label_file(root: Path, table: LabelTable, class_names: tuple, suffixes: tuple) -> LabelledFiles:
    """Reads the CSV: every row's file found, its value mapped, repeated rows merged.

    Raises:
        KerasCXRError: a missing column, an unmapped value (without `skip_unmapped`), a bad
            split value, a listed file that does not exist, or one file with two labels.
    """
    _check_map(table, class_names)
    path = Path(table.file)
    if not path.is_file():
        raise KerasCXRError(f"label file not found: {path}")
    out, seen, missing = LabelledFiles(), {}, []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's byte-order mark
            reader = csv.DictReader(fh)
            path_col, label_col, split_col = _columns(table, list(reader.fieldnames or ()))
            for line, row in enumerate(reader, start=2):
                name = _class_of(row[label_col] or "", table.label_map, class_names)
                if name is None:
                    out.unmapped[(row[label_col] or "").strip()] += 1
                    continue
                split = None
                if split_col is not None:
                    split = SPLIT_NAMES.get((row[split_col] or "").strip().lower())
                    if split is None:
                        raise KerasCXRError(f"{path} line {line}: split {row[split_col]!r} in column {split_col!r} "
                                            f"is not one of train, val (valid, validation), test")
                file = _resolve(root, row[path_col] or "", suffixes)
                if file is None:
                    missing.append(row[path_col])
                    continue
                key, label = str(file.resolve()), class_names.index(name)
                if key in seen:
                    if seen[key][1:] != (label, split):
                        raise KerasCXRError(f"{path} line {line}: {row[path_col]} is listed again with another "
                                            f"label or split (first on line {seen[key][0]})")
                    out.repeated_rows += 1
                    continue
                seen[key] = (line, label, split)
                out.items.append((file, label, split))
    except UnicodeDecodeError:
        raise KerasCXRError(f"{path} is not a UTF-8 text CSV file") from None
    except csv.Error as exc:
        raise KerasCXRError(f"{path} is not a readable CSV file ({exc})") from None
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise KerasCXRError(f"{path} lists {len(missing)} image(s) not found under {root} (paths are relative to "
                            f"the image folder; a name without a suffix may end in {', '.join(suffixes)}): {shown}")
    if out.unmapped and not table.skip_unmapped:
        values = ", ".join(f"{v!r} ({n:,} row{'s' if n != 1 else ''})" for v, n in out.unmapped.most_common())
        raise KerasCXRError(f"{path}: column {label_col!r} has values --label-map does not name: {values}. "
                            f"Map them, or pass --skip-unmapped to leave those rows out")
    return out


def carve_test(records: list, fraction: float, duplicate_groups: list, seed: int) -> list:
    """Moves `fraction` of each class (rounded, at least one) from train to test at random, whole
    groups of pixel-identical images at a time, so no image is scored that was trained on."""
    from keras_cxr.data.datasets import Record

    group_of = {f: i for i, g in enumerate(duplicate_groups or ()) for f in g}
    rng = np.random.default_rng([seed, 7])  # its own stream: the manifest's draws use `seed` alone
    test = set()
    for label in (0, 1):
        members = [r.file for r in records if r.label == label]
        units: dict = {}
        for f in members:
            units.setdefault(group_of.get(f, f), []).append(f)
        units_list = list(units.values())
        target = max(1, round(fraction * len(members)))
        taken = 0
        for u in rng.permutation(len(units_list)):
            if taken >= target:
                break
            test.update(units_list[u])
            taken += len(units_list[u])
        if taken >= len(members):
            raise KerasCXRError(f"--test-fraction {fraction} leaves no train image of label {label} "
                                f"({len(members)} image(s))")
    return [Record(r.file, r.label, "test" if r.file in test else "train") for r in records]
