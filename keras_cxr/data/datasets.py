"""Reading a chest X-ray dataset into records: Kermany folder layout or MedMNIST .npz.

Every image is decoded once here, so a corrupt file is found before anything is written, and
the scan doubles as the `data summary` (modes, sizes, pixel-identical duplicates).
"""

from __future__ import annotations

import os
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_cxr.data.images import IMAGE_SUFFIXES, ImageError, decode, load_npz, pixel_digest
from keras_cxr.data.labels import LabelTable, carve_test, read_label_file
from keras_cxr.errors import KerasCXRError

SPLITS = ("train", "val", "test")
DEFAULT_CLASSES = ("NORMAL", "PNEUMONIA")


@dataclass(frozen=True)
class Record:
    """One image: where it is, its label, its split.

    Args:
        file: str. Absolute image path, or `<abs>.npz#<split>/<index>` for an .npz row.
        label: int. Index into the class names (NORMAL=0, PNEUMONIA=1 by default).
        split: str. "train", "val" or "test".
    """

    file: str
    label: int
    split: str


@dataclass
class ScanResult:
    """What a scan found: the readable records and what the summary reports."""

    root: str
    kind: str  # "folder" or "npz"
    class_names: tuple
    records: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (file, reason) of unreadable files
    modes: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)
    duplicates: list = field(default_factory=list)  # groups of files with identical pixels
    duplicate_records: list = field(default_factory=list)  # the same groups, as Record.file values
    ignored: list = field(default_factory=list)  # non-split folders passed over
    debris: int = 0  # hidden and system files and folders skipped (.DS_Store, Thumbs.db, __MACOSX/)

    def counts(self) -> dict:
        """{split: [count of class 0, count of class 1, ...]} for the splits present."""
        out: dict = {}
        for r in self.records:
            out.setdefault(r.split, [0] * len(self.class_names))[r.label] += 1
        return {s: out[s] for s in SPLITS if s in out}


def _set_duplicates(result: ScanResult, by_digest: dict) -> None:
    groups = sorted(sorted(g) for g in by_digest.values() if len(g) > 1)
    result.duplicates = [[shown for shown, _ in g] for g in groups]
    result.duplicate_records = [[file for _, file in g] for g in groups]


# What copying a folder from a Mac or a Windows share leaves beside the images: skipped (and
# counted in one note), never an error. Other hidden files and `__...` folders are skipped too.
SYSTEM_FILES = ("thumbs.db", "desktop.ini", "ehthumbs.db")


def _is_hidden(name: str) -> bool:
    """Hidden files (`.DS_Store`, `._IMG.png`), `__MACOSX/` and Windows' folder files."""
    return name.startswith(".") or name.startswith("__") or name.lower() in SYSTEM_FILES


def _visible(folder: Path, result: ScanResult) -> list[Path]:
    """The entries of `folder` that are not system debris; the debris is counted in `result`."""
    entries = sorted(folder.iterdir())
    result.debris += sum(1 for e in entries if _is_hidden(e.name))
    return [e for e in entries if not _is_hidden(e.name)]


def _list_folder(root: Path, class_names: tuple, result: ScanResult) -> list[tuple[Path, int, str]]:
    """Lists (path, label, split) for a Kermany-style tree, checking its shape."""
    if not (root / "train").is_dir():
        raise KerasCXRError(f"missing train/ folder under {root} (expected ROOT/train/<CLASS>/*.png; for a flat "
                            f"folder with a CSV of labels: `data prepare {root} --labels FILE --out DIR`, then "
                            f"--manifest DIR/manifest.csv)")
    items = []
    for entry in _visible(root, result):
        if entry.name not in SPLITS or not entry.is_dir():
            result.ignored.append(str(entry))
            continue
        split_dir = entry
        class_dirs = _visible(split_dir, result)
        for d in class_dirs:
            if not d.is_dir():
                raise KerasCXRError(
                    f"unexpected file {d} in {split_dir}: expected class folders "
                    f"{', '.join(class_names)}"
                )
            if d.name not in class_names:
                raise KerasCXRError(
                    f"unknown class folder {d} (known: {', '.join(class_names)}). Name yours in label order "
                    f"with `data prepare {root} --class-names A,B --minority-class B --out DIR` (or `data summary "
                    f"--class-names A,B`), "
                    f"then train from DIR/manifest.csv with --manifest"
                )
        present = {d.name for d in class_dirs}
        for label, name in enumerate(class_names):
            d = split_dir / name
            if name not in present:
                raise KerasCXRError(
                    f"split '{split_dir.name}' has no {name} folder ({d}): both classes are required"
                )
            files = _visible(d, result)
            if not files:
                raise KerasCXRError(f"class folder is empty: {d}")
            for f in files:
                if f.is_dir():
                    raise KerasCXRError(f"unexpected folder {f} inside class folder {d}")
                items.append((f, label, split_dir.name))
    return items


def _check_one(item):
    path, label, split = item
    try:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ImageError(
                f"not an image file (expected {', '.join(IMAGE_SUFFIXES)}): {path}"
            )
        pixels, mode, size = decode(path)
        return item, mode, size, pixel_digest(pixels), None
    except ImageError as exc:
        return item, None, None, None, str(exc)


def _scan_folder(root: Path, class_names, extra_normal, skip_corrupt, workers) -> ScanResult:
    result = ScanResult(root=str(root), kind="folder", class_names=tuple(class_names))
    items = _list_folder(root, tuple(class_names), result)
    if extra_normal is not None:
        extra = Path(extra_normal)
        if not extra.is_dir():
            raise KerasCXRError(f"--extra-normal folder does not exist: {extra}")
        extra_files = [f for f in sorted(extra.iterdir()) if f.is_file() and not _is_hidden(f.name)]
        if not extra_files:
            raise KerasCXRError(f"--extra-normal folder is empty: {extra}")
        items += [(f, 0, "train") for f in extra_files]
    _decode_items(result, items, skip_corrupt, workers)
    _check_both_classes(result)
    if result.debris:
        print(f"note: skipped {result.debris} hidden or system file(s) under {root} (.DS_Store, Thumbs.db, "
              f"desktop.ini, __MACOSX/ and the like)", file=sys.stderr)
    return result


def _scan_labelled(root: Path, table: LabelTable, class_names, skip_corrupt, workers) -> ScanResult:
    """A flat image folder and a CSV of labels (`keras_cxr.data.labels`)."""
    if not root.is_dir():
        raise KerasCXRError(f"--labels needs a folder of images; {root} is not a folder")
    result = ScanResult(root=str(root), kind="labels", class_names=tuple(class_names))
    listed = read_label_file(root, table, tuple(class_names), IMAGE_SUFFIXES)
    _decode_items(result, [(f, label, split or "train") for f, label, split in listed.items], skip_corrupt, workers)
    if table.split_column is None:
        result.records = carve_test(result.records, table.test_fraction, result.duplicate_records, table.seed)
    _check_both_classes(result)
    if listed.unmapped:
        values = ", ".join(f"{v!r} ({n:,})" for v, n in listed.unmapped.most_common())
        print(f"note: skipped {sum(listed.unmapped.values()):,} row(s) of {table.file} whose label --label-map "
              f"does not name: {values}", file=sys.stderr)
    if listed.repeated_rows:
        print(f"note: {listed.repeated_rows:,} row(s) of {table.file} repeat an image already listed with the same "
              f"label (e.g. one row per box): each image is counted once", file=sys.stderr)
    return result


def _decode_items(result: ScanResult, items: list, skip_corrupt: bool, workers) -> None:
    """Decodes every (path, label, split) once: the readable ones become records, the duplicates
    are grouped; unreadable ones are an error, or skipped and listed with `skip_corrupt`."""
    root = result.root
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        checked = list(pool.map(_check_one, items, chunksize=64))
    by_digest = defaultdict(list)
    for (path, label, split), mode, size, digest, error in checked:
        if error is not None:
            result.skipped.append((str(path), error))
            continue
        result.records.append(Record(str(path.resolve()), label, split))
        result.modes[mode] += 1
        result.sizes[f"{size[0]}x{size[1]}"] += 1
        by_digest[digest].append((os.path.relpath(path, root), result.records[-1].file))
    if result.skipped and not skip_corrupt:
        # One line (the CLI's contract); `data summary --skip-corrupt` lists them all.
        listed = "; ".join(reason for _, reason in result.skipped[:3])
        more = f"; and {len(result.skipped) - 3} more" if len(result.skipped) > 3 else ""
        raise ImageError(
            f"{len(result.skipped)} unreadable file(s) under {root} "
            f"(pass --skip-corrupt to skip and list them): {listed}{more}"
        )
    _set_duplicates(result, by_digest)


def _scan_npz(path: Path, class_names) -> ScanResult:
    data = load_npz(str(path))
    result = ScanResult(root=str(path), kind="npz", class_names=tuple(class_names))
    for required in ("train_images", "train_labels"):
        if required not in data:
            raise KerasCXRError(
                f"{path} has no `{required}` array (found: {', '.join(sorted(data)) or 'nothing'})"
            )
    by_digest = defaultdict(list)
    for split in SPLITS:
        if f"{split}_images" not in data and f"{split}_labels" not in data:
            continue
        for key in (f"{split}_images", f"{split}_labels"):
            if key not in data:
                raise KerasCXRError(f"{path} has `{split}_*` arrays but no `{key}`")
        images, labels = data[f"{split}_images"], np.asarray(data[f"{split}_labels"]).reshape(-1)
        if len(images) != len(labels):
            raise KerasCXRError(
                f"{path}: `{split}_images` has {len(images)} rows but `{split}_labels` has {len(labels)}"
            )
        if images.ndim not in (3, 4) or images.dtype != np.uint8:
            raise KerasCXRError(
                f"{path}: `{split}_images` must be uint8 (N, H, W[, C]); got {images.dtype} {images.shape}"
            )
        bad = sorted(set(labels.tolist()) - set(range(len(class_names))))
        if bad:
            raise KerasCXRError(
                f"{path}: `{split}_labels` has labels {bad} outside 0..{len(class_names) - 1}"
            )
        for i, (img, label) in enumerate(zip(images, labels)):
            result.records.append(Record(f"{path.resolve()}#{split}/{i}", int(label), split))
            by_digest[pixel_digest(np.squeeze(img))].append((f"{split}/{i}", result.records[-1].file))
        result.modes["L" if images.ndim == 3 or images.shape[-1] == 1 else "RGB"] += len(images)
        result.sizes[f"{images.shape[2]}x{images.shape[1]}"] += len(images)
    _set_duplicates(result, by_digest)
    _check_both_classes(result)
    return result


def _check_both_classes(result: ScanResult) -> None:
    for split, counts in result.counts().items():
        missing = [result.class_names[i] for i, n in enumerate(counts) if n == 0]
        if missing:
            raise KerasCXRError(
                f"split '{split}' of {result.root} has no {', '.join(missing)} images: "
                f"both classes are required"
            )
    if "train" not in result.counts():
        raise KerasCXRError(f"no readable train images in {result.root}")


def scan_dataset(
    path: str | os.PathLike,
    class_names: tuple = DEFAULT_CLASSES,
    extra_normal: str | os.PathLike | None = None,
    skip_corrupt: bool = False,
    workers: int | None = None,
    labels: LabelTable | None = None,
) -> ScanResult:
    """Reads a dataset's layout and decodes every image once to validate it.

    Args:
        path: folder `ROOT/{train,test[,val]}/{CLASS}/*`, a MedMNIST `.npz`, or (with `labels`)
            a folder of images that a CSV of labels lists.
        class_names: tuple of str. Folder names in label order. Defaults to
            ("NORMAL", "PNEUMONIA"), so NORMAL=0 and PNEUMONIA=1.
        extra_normal: folder of extra class-0 images added to train (the paper's NIH
            supplement). Defaults to None.
        skip_corrupt: bool. Skip and list unreadable files instead of failing. Defaults to False.
        workers: int. Decoding threads. Defaults to the CPU count.
        labels: LabelTable. Labels (and optionally splits) from a CSV instead of class folders.
            Defaults to None.

    Raises:
        KerasCXRError: the layout is wrong, a class is missing, or a file is unreadable.
    """
    if len(class_names) != 2 or len(set(class_names)) != 2:
        raise KerasCXRError(f"`class_names` must be two distinct names. Received: {list(class_names)}")
    path = Path(path)
    if not path.exists():
        raise KerasCXRError(f"data path does not exist: {path}")
    if labels is not None:
        if extra_normal is not None:
            raise KerasCXRError("--extra-normal works with class folders, not with --labels")
        return _scan_labelled(path, labels, class_names, skip_corrupt, workers)
    if path.is_file():
        if path.suffix != ".npz":
            raise KerasCXRError(f"data path must be a folder or a .npz file: {path}")
        if extra_normal is not None:
            raise KerasCXRError("--extra-normal works with folder datasets, not .npz")
        return _scan_npz(path, class_names)
    return _scan_folder(path, class_names, extra_normal, skip_corrupt, workers)
