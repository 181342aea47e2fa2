"""Which epoch each screening run would export under a label-fidelity gate relative to real images.

    python experiments/cgan/gate.py [--minority 25]

`gan.export: best` keeps, among the tracked epochs whose label fidelity (the seed-0 extractor's
accuracy on generated images of each label) is at least `gan.min_label_fidelity` = 0.9 for both
labels, the one with the lowest minority Frechet distance; while no epoch passes, the one whose
worse label has the highest fidelity. The same extractor calls only part of the real test images
of a label by their label (its specificity and recall), so an absolute 0.9 can be a bar real
images fail. This reads every finished run's log (both the average's columns and the raw G's)
and reports, per run: how many tracked epochs pass the absolute gate, and the epoch and tracked
Frechet ratio the rule picks with the gate at 0.9 x the real test images' fidelity per label
instead (the rule `gan.export: best` applies since commit d0dfdb1). Nothing is retrained or
re-measured: these are the tracked numbers of the logs, seed-0 extractor only. Writes results/cgan/m<minority>/selection_gate.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from keras_cxr.gan.selection import best_row, rank  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table import log_view  # noqa: E402

GATE = 0.9


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minority", type=int, choices=(25, 10), default=25)
    args = p.parse_args()
    split = ROOT / "experiments" / "results" / "cgan" / f"m{args.minority}"
    runs = sorted(d.parent for d in split.glob("*/seed*/cdcgan_a050/done.json"))
    extractor = json.loads(next(split.glob("*/seed*/extractor/*/seed0.json")).read_text())
    real = (extractor["test_metrics"]["specificity"], extractor["test_metrics"]["recall"])  # label 0, label 1
    lines = [f"# The export gate at {args.minority}% minority: absolute 0.9 against 0.9 x real images' fidelity", "",
             f"`python experiments/cgan/gate.py --minority {args.minority}`: tracked numbers from each finished run's "
             f"log.csv (seed-0 extractor, every 5 epochs and the last). The seed-0 extractor calls "
             f"{real[0]:.3f} of the real normal test images normal and {real[1]:.3f} of the real pneumonia test "
             f"images pneumonia, so the relative gate is {GATE * real[0]:.3f} (label 0) and {GATE * real[1]:.3f} "
             f"(label 1). Ratio: tracked minority Frechet distance over the real train-vs-test distance "
             f"(the results.md tracked columns).", "",
             "| variant | GAN seed | G | epochs passing 0.9 | exported (0.9): epoch | ratio | passing relative gate | "
             "relative gate: epoch | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        variant, seed = run.parent.parent.name, int(run.parent.name.removeprefix("seed"))
        # The real train-vs-test distance under the seed-0 extractor, as results.md divides by.
        real_fd = json.loads((run.parent / "quality.json").read_text())["real_vs_real_per_extractor"][0]
        for g, prefix in (("average", ""), ("raw", "raw_")):
            with open(run / "log.csv", newline="") as fh:
                rows = log_view(list(csv.DictReader(fh)), prefix)
            if not rows:
                continue
            absolute = best_row(rows, True, GATE)
            relative = best_row(rows, True, GATE, real)
            n_abs = sum(rank(r, True, GATE)[0] == 1 for r in rows)  # the export rule's own test of the gate
            n_rel = sum(rank(r, True, GATE, real)[0] == 1 for r in rows)
            lines.append(f"| {variant} | {seed} | {g} | {n_abs} of {len(rows)} | {absolute['epoch']} | "
                         f"{absolute['fd'] / real_fd:.2f} | {n_rel} of {len(rows)} | {relative['epoch']} | "
                         f"{relative['fd'] / real_fd:.2f} |")
    out = split / "selection_gate.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
