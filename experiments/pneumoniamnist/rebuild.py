"""Rebuilds the official PneumoniaMNIST (MedMNIST v2, 28x28) split from the two modified copies in
`../shared/data/pneumoniamnist/`, as that folder's README explains: aksufatih's train normals
(label 0, all 1,214) with every other array of varun19424's copy (train pneumonia, val, test).

    python experiments/pneumoniamnist/rebuild.py --out runs/pneumoniamnist/pneumoniamnist.npz

The result has the official counts (train 4,708 = 1,214 / 3,494; val 524 = 135 / 389; test 624 =
234 / 390). Its row order is not the official file's (normals first within train), and its bytes
could not be compared with the official file (MD5 28209eda62fecd6e6a2d98b1501bb15f): no copy of it
was available. Checks, each an error if it fails: varun's 388 train normals are all among
aksufatih's 1,214; no test image is pixel-identical to a train or val image.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("KERAS_CXR_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
AKSUFATIH = "aksufatih_snn-medmnist/pneumoniamnist.npz"
VARUN = "varun19424_pneumonia_mnist/pneumoniamnist.npz"
OFFICIAL = {"train": (1214, 3494), "val": (135, 389), "test": (234, 390)}


def _digests(images: np.ndarray) -> set:
    return {hashlib.md5(np.ascontiguousarray(img).tobytes()).hexdigest() for img in images}


def rebuild(shared: Path) -> dict:
    """The official split's arrays (train/val/test images uint8 [N, 28, 28], labels uint8 [N, 1])."""
    a = np.load(shared / "pneumoniamnist" / AKSUFATIH)
    v = np.load(shared / "pneumoniamnist" / VARUN)
    a_labels, v_labels = a["train_labels"].reshape(-1), v["train_labels"].reshape(-1)
    normals, varun_normals = a["train_images"][a_labels == 0], v["train_images"][v_labels == 0]
    if not _digests(varun_normals) <= _digests(normals):
        raise SystemExit("error: varun19424's train normals are not all among aksufatih's: not the documented copies")
    pneumonia = v["train_images"][v_labels == 1]
    out = {
        "train_images": np.concatenate([normals, pneumonia]),
        "train_labels": np.concatenate([np.zeros(len(normals)), np.ones(len(pneumonia))]).astype(np.uint8)[:, None],
        "val_images": v["val_images"], "val_labels": v["val_labels"].reshape(-1, 1).astype(np.uint8),
        "test_images": v["test_images"], "test_labels": v["test_labels"].reshape(-1, 1).astype(np.uint8),
    }
    for split, want in OFFICIAL.items():
        got = tuple(int(c) for c in np.bincount(out[f"{split}_labels"].reshape(-1), minlength=2))
        if got != want:
            raise SystemExit(f"error: {split} has {got[0]} / {got[1]} images; the official split has {want[0]} / {want[1]}")
    leaked = _digests(out["test_images"]) & (_digests(out["train_images"]) | _digests(out["val_images"]))
    if leaked:
        raise SystemExit(f"error: {len(leaked)} test image(s) are pixel-identical to train or val images")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help=f"the shared data folder (default {SHARED})")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    args = parser.parse_args(argv)
    for name in (AKSUFATIH, VARUN):
        if not (args.shared / "pneumoniamnist" / name).is_file():
            print(f"error: {args.shared / 'pneumoniamnist' / name} not found (--shared)", file=sys.stderr)
            return 2
    arrays = rebuild(args.shared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, args.out)
    for split in OFFICIAL:
        n0, n1 = np.bincount(arrays[f"{split}_labels"].reshape(-1), minlength=2)
        print(f"{split:<5} {n0 + n1:>5} ({n0} normal / {n1} pneumonia)")
    print(f"wrote {args.out} (sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()[:16]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
