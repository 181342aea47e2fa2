"""Does a change leave every number alone? The tiny matrix before and after, compared bit for bit.

    python experiments/migrations/identity_check.py run REV OUT     # the tiny matrix at git revision REV
    python experiments/migrations/identity_check.py compare A B     # two such folders

`run` checks REV out into a temporary git worktree and runs there
`evaluate-all --preset tiny` (11 methods x seeds 0 1, quality tracked every epoch, the best
epoch exported: what the tests run). `compare` then requires, between the two folders: every
cell's metrics, per-image test and validation scores and train counts; every GAN checkpoint,
and every tracked generator file that both hold (same run and epoch), array by array; every
exported generator's metadata and the images it makes (16 per label, seed 0, through the
SavedModel). It prints one line per kind and exits 1 on the first difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TRACKED = ["--export", "best", "--set", "gan.eval_every=1", "--set", "gan.eval_images=16"]


def run(rev: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True, capture_output=True)
        try:
            cmd = [sys.executable, "-m", "keras_cxr", "evaluate-all", "--preset", "tiny", "--out", str(out.resolve()),
                   "--quiet", *TRACKED]
            subprocess.run(cmd, cwd=tree, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)


def _same_arrays(a: Path, b: Path) -> bool:
    with np.load(a) as x, np.load(b) as y:
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


def _fail(what: str) -> None:
    print(f"DIFFERENT: {what}")
    sys.exit(1)


def compare(a: Path, b: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cells = sorted(p.name for p in (a / "cells").glob("*.json"))
    if cells != sorted(p.name for p in (b / "cells").glob("*.json")) or not cells:
        _fail("the sets of cells")
    for name in cells:
        x, y = (json.loads((d / "cells" / name).read_text()) for d in (a, b))
        for key in ("metrics", "test_scores", "val_scores", "train_counts", "train_counts_before"):
            if x.get(key) != y.get(key):
                _fail(f"cell {name}: {key}")
    print(f"same: {len(cells)} cells (metrics, per-image test and validation scores, train counts)")
    arrays = sorted(p.relative_to(a) for p in a.glob("*/checkpoints/*.npz"))
    if not arrays or arrays != sorted(p.relative_to(b) for p in b.glob("*/checkpoints/*.npz")):
        _fail("the sets of checkpoint files")
    for rel in arrays:
        if not _same_arrays(a / rel, b / rel):
            _fail(f"arrays of {rel}")
    print(f"same: {len(arrays)} GAN checkpoint files, array by array")
    # Generator files of tracked epochs: `best/` (the best so far, before every tracked epoch's
    # generator was kept) or `tracked/` (all of them). Those of one run and epoch in both must agree.
    gens = [{(p.parts[-3], p.name): p for d in ("best", "tracked") for p in x.glob(f"*/{d}/*.npz")} for x in (a, b)]
    shared = sorted(set(gens[0]) & set(gens[1]))
    if not shared:
        _fail("the tracked generator files (none in common)")
    for key in shared:
        if not _same_arrays(gens[0][key], gens[1][key]):
            _fail(f"arrays of tracked generator {key[0]}/{key[1]}")
    print(f"same: {len(shared)} tracked generator files of the same run and epoch, array by array "
          f"({len(gens[0])} in {a.name}, {len(gens[1])} in {b.name})")
    from keras_cxr.gan.export import generate_images

    models = sorted(p.parent.relative_to(a) for p in a.glob("models/*/1/saved_model.pb"))
    for rel in models:
        meta = json.loads((a / rel / "assets.extra" / "keras_cxr.json").read_text())
        if meta != json.loads((b / rel / "assets.extra" / "keras_cxr.json").read_text()):
            _fail(f"metadata of {rel}")
        for label in ((0, 1) if meta["kind"] == "cdcgan" else (meta["generated_label"],)):
            if not np.array_equal(generate_images(a / rel, 16, label, seed=0), generate_images(b / rel, 16, label, seed=0)):
                _fail(f"images of {rel}, label {label}")
    print(f"same: {len(models)} exported generators (metadata, and 16 images of each label they make)")


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ("run", "compare"):
        sys.exit(__doc__)
    if sys.argv[1] == "run":
        run(sys.argv[2], Path(sys.argv[3]))
    else:
        compare(Path(sys.argv[2]), Path(sys.argv[3]))


if __name__ == "__main__":
    main()
