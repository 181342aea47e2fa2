"""The paper's imbalanced split (section 3): delete minority images at random, carve a balanced
validation set from train, leave test untouched; or, on request, a dataset's own split as published."""

from __future__ import annotations

import math

import numpy as np

from keras_cxr.data.datasets import Record
from keras_cxr.errors import KerasCXRError


def minority_label(counts) -> int:
    """The minority class of a two-class train split, from its per-label image counts: the label
    with fewer images; on a tie, label 1 (the positive class: PNEUMONIA in the Kermany order).
    The one definition every stage uses; the majority is `1 - minority_label(counts)`."""
    counts = [int(c) for c in counts]
    if len(counts) != 2:
        raise KerasCXRError(f"a minority label needs the counts of exactly two labels. Received: counts={counts}")
    return 0 if counts[0] < counts[1] else 1


def label_counts(labels) -> list[int]:
    """Images per label (0, 1) of an int label array."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=2).tolist()


def default_val_per_class(n_minority: int) -> int:
    """10% of the minority count, at least 1: the documented default of `val_per_class`."""
    return max(1, round(0.1 * n_minority))


def build_manifest(
    records: list[Record],
    class_names: tuple = ("NORMAL", "PNEUMONIA"),
    minority_class: str = "PNEUMONIA",
    minority_fraction: float = 0.25,
    val_per_class: int | None = None,
    seed: int = 0,
    duplicate_groups: list | None = None,
    keep_val: bool = False,
    natural: bool = False,
) -> tuple[list[Record], dict]:
    """The imbalanced train / balanced val / untouched test manifest: `minority_class` images are
    deleted from train (an official val/ joins it first) down to `minority_fraction` of it,
    rounding down, then `val_per_class` per class move to val. `natural` skips the deletion,
    `keep_val` the merge and carve; with both, a published split is used as it is.

    Args:
        records: list of Record. Every readable image (splits train, optional val, test).
        class_names: tuple of str. Names in label order. Defaults to ("NORMAL", "PNEUMONIA").
        minority_class: str. Class to delete images from. Defaults to "PNEUMONIA" (paper).
        minority_fraction: float. Minority share of train after deletion, in (0, 0.5].
            Defaults to 0.25 (paper section 3).
        val_per_class: int or None. Defaults to 10% of the minority count (at least 1).
        seed: int. Seed of deletion and carve. Defaults to 0.
        duplicate_groups: list of lists of Record.file. Pixel-identical images, kept together
            in train or in val by the carve (`ScanResult.duplicate_records`). Defaults to none.
        keep_val: bool. Keep the dataset's own val split (it must have one) instead of merging
            and carving (`val_per_class` unused). Defaults to False.
        natural: bool. Delete nothing (`minority_class`, `minority_fraction` unused; the
            minority is the smaller train class). Defaults to False.

    Returns:
        (records with split train/val/test, info dict with the counts at each stage).
    """
    _check_settings(class_names, minority_class, minority_fraction)
    pool, own_val, test = _splits(records, keep_val)
    if natural:  # the minority is whichever class train has fewer of (the one rule, ties included)
        minority_class = class_names[minority_label([sum(1 for r in pool if r.label == c) for c in (0, 1)])]
    minority = class_names.index(minority_class)
    majority_name = class_names[1 - minority]
    pool_min = [r for r in pool if r.label == minority]
    pool_maj = [r for r in pool if r.label != minority]
    rng = np.random.default_rng(seed)  # one stream: the deletion's draws, then the carve's
    kept_min = pool_min if natural else _delete_minority(pool_min, len(pool_maj), minority_fraction, rng,
                                                         minority_class, majority_name)
    if keep_val:  # `val_per_class` (e.g. a preset's) is not used: nothing is carved
        v = None
        out = [Record(r.file, r.label, "train") for r in (*pool_maj, *kept_min)]
        out += [Record(r.file, r.label, "val") for r in own_val]
    else:
        v = _val_count(val_per_class, {minority_class: kept_min, majority_name: pool_maj})
        out = _carve_validation({majority_name: pool_maj, minority_class: kept_min}, v, duplicate_groups, rng)
    out += test
    out.sort(key=lambda r: ({"train": 0, "val": 1, "test": 2}[r.split], r.label, r.file))
    counts = {"before_deletion": {majority_name: len(pool_maj), minority_class: len(pool_min)},
              "before_val_carve": {majority_name: len(pool_maj), minority_class: len(kept_min)},
              "deleted": {minority_class: len(pool_min) - len(kept_min)},
              **{split: _count(out, split, class_names) for split in ("train", "val", "test")}}
    return out, {"minority_class": minority_class, "minority_fraction": None if natural else minority_fraction,
                 "natural": natural, "keep_val": keep_val, "seed": seed, "val_per_class": v, **counts}


def _splits(records: list[Record], keep_val: bool) -> tuple[list, list, list]:
    """(train pool, the dataset's own val, test): an official val joins the pool unless kept."""
    records = sorted(records, key=lambda r: (r.split, r.label, r.file))
    test = [Record(r.file, r.label, "test") for r in records if r.split == "test"]
    if not test:
        raise KerasCXRError("the dataset has no test split: the paper evaluates on the untouched test set")
    own_val = [r for r in records if r.split == "val"]
    if keep_val and not own_val:
        raise KerasCXRError("`keep_val`: the dataset has no val split to keep; drop --keep-val to carve one from train")
    pool = [r for r in records if r.split == "train" or (r.split == "val" and not keep_val)]
    return pool, own_val, test


def _check_settings(class_names: tuple, minority_class: str, minority_fraction: float) -> None:
    if not 0 < minority_fraction <= 0.5:
        raise KerasCXRError(
            f"`minority_fraction` must be in (0, 0.5]. Received: minority_fraction={minority_fraction}"
        )
    if minority_class not in class_names:
        raise KerasCXRError(
            f"`minority_class` must be one of {list(class_names)}. Received: minority_class={minority_class!r}"
        )


def _count(records: list[Record], split: str, class_names: tuple) -> dict:
    return {class_names[c]: sum(1 for r in records if r.split == split and r.label == c) for c in (0, 1)}


def _carve_validation(groups: dict, v: int, duplicate_groups, rng) -> list[Record]:
    """`groups` {class name: its train records}, majority first (the order of the draws): each
    loses `v` records to a balanced `val` split."""
    group_of = {f: i for i, g in enumerate(duplicate_groups or ()) for f in g}
    out = []
    for name, group in groups.items():
        val_idx = _carve(group, v, group_of, rng, name)
        out += [Record(r.file, r.label, "val" if i in val_idx else "train") for i, r in enumerate(group)]
    return out


def _delete_minority(pool_min: list[Record], n_majority: int, fraction: float, rng, minority_name: str,
                     majority_name: str) -> list[Record]:
    """The minority images kept (seeded draw) so that they are `fraction` of train, rounding down."""
    n_min = math.floor(fraction / (1 - fraction) * n_majority + 1e-9)
    if n_min > len(pool_min):
        raise KerasCXRError(
            f"`minority_fraction`={fraction} needs {n_min} {minority_name} train images "
            f"beside {n_majority} {majority_name}, but only {len(pool_min)} exist; "
            f"lower minority_fraction"
        )
    if n_min < 2:
        raise KerasCXRError(
            f"`minority_fraction`={fraction} leaves {n_min} {minority_name} train images; "
            f"at least 2 are needed (one for train, one for validation)"
        )
    keep = sorted(rng.choice(len(pool_min), size=n_min, replace=False).tolist())
    return [pool_min[i] for i in keep]


def _val_count(val_per_class: int | None, groups: dict) -> int:
    """Validation images per class: the setting, or 10% of the smaller class (the kept minority);
    checked against each class."""
    n_min = min(len(g) for g in groups.values())
    v = default_val_per_class(n_min) if val_per_class is None else int(val_per_class)
    if v < 1:
        raise KerasCXRError(f"`val_per_class` must be >= 1. Received: val_per_class={v}")
    for name, group in groups.items():
        if v >= len(group):
            raise KerasCXRError(
                f"`val_per_class`={v} leaves no {name} image for training: only {len(group)} "
                f"{name} images are in the imbalanced train set"
            )
    return v


def _carve(group: list[Record], v: int, group_of: dict, rng, name: str) -> set:
    """Indices of `v` validation images drawn at random from `group`, whole duplicate groups only."""
    units: dict = {}
    for i, r in enumerate(group):
        units.setdefault(group_of.get(r.file, ("single", i)), []).append(i)
    units = list(units.values())
    chosen, total = set(), 0
    for u in rng.permutation(len(units)):
        if total + len(units[u]) <= v:
            chosen.update(units[u])
            total += len(units[u])
            if total == v:
                break
    if total < v:  # only when duplicate groups are too large to make up v exactly
        raise KerasCXRError(f"`val_per_class`={v}: cannot carve {v} {name} validation images without "
                            f"splitting a group of pixel-identical images; choose another val_per_class")
    return chosen


def imbalanced_from_path(path, data_config, class_names=("NORMAL", "PNEUMONIA"), extra_normal=None,
                         skip_corrupt: bool = False, labels=None):
    """Scans a dataset and builds its imbalanced manifest with a `DataConfig`'s settings.

    `labels` (a `keras_cxr.data.labels.LabelTable`) reads a flat folder with a CSV of labels.

    Returns:
        (records, class names, info dict from `build_manifest`, the ScanResult).
    """
    from keras_cxr.data.datasets import scan_dataset

    scan = scan_dataset(path, class_names, extra_normal, skip_corrupt, labels=labels)
    d = data_config
    if d.keep_val and "val" not in scan.counts():
        raise KerasCXRError(f"--keep-val: {path} has no val split to keep (splits: {', '.join(scan.counts())}); "
                            f"drop --keep-val to carve validation from train")
    records, info = build_manifest(scan.records, scan.class_names, d.minority_class, d.minority_fraction,
                                   d.val_per_class, d.seed, scan.duplicate_records, d.keep_val, d.natural)
    return records, scan.class_names, info, scan
