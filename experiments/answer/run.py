"""Issue 24: the answer, at 25% and at 10% minority, with a generator per seed.

    python experiments/answer/run.py matrix --minority 25        # resumable; repeat to continue
    python experiments/answer/run.py matrix --minority 10
    python experiments/answer/run.py matrix --minority 25 --shard 0/2 --rows baseline ...  # part of it
    python experiments/answer/run.py curve                       # report + imbalance curve of both

Each is `evaluate-all` with the quick preset on ../shared/data/kermany128, seeds 0-5 (at least
six), `classifier.generator_per_seed` on (the quick preset's setting: a GAN cell of seed s uses a
generator trained with gan.seed = s), and these rows:

  baseline, baseline_threshold, logit_adjustment (threshold controls), class_weights,
  oversample, smote, dcgan, cdcgan_a050 (the faithful cDCGAN), and cdcgan_plus_a050, the
  conditional recipe experiments/cgan chose (keras_cxr/gan/settings.py RECIPE; a generator per
  seed like every GAN row).

Results land in experiments/results/answer/minority25/ and minority10/ (cells, results.md;
weights, checkpoints and generators stay out of git, see .gitignore). The call rule, endpoints
and Holm families are fixed in keras_cxr/pipeline/summary.py before any of these cells exist.
A sitting's wall time is appended to <folder>/sittings.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "experiments" / "results" / "answer"
DATA = "../shared/data/kermany128"
SEEDS = [0, 1, 2, 3, 4, 5]
ROWS = ["baseline", "baseline_threshold", "logit_adjustment", "class_weights", "oversample", "smote", "dcgan",
        "cdcgan_a050", "cdcgan_plus_a050"]


def folder(minority: int) -> Path:
    return OUT / f"minority{minority}"


def matrix(minority: int, seeds: list[int], data: str, rows: list[str], shard: str | None) -> None:
    out = folder(minority)
    cmd = [sys.executable, "-m", "keras_cxr", "evaluate-all", "--preset", "quick", "--data", data, "--out", str(out),
           "--seeds", *map(str, seeds), "--methods", *rows, *(["--shard", shard] if shard else []),
           "--set", f"data.minority_fraction={minority / 100}", "--set", "gan.alphas=[0.5]", "--quiet"]
    from keras_cxr.pipeline.provenance import run_logged

    reuse_extractors(minority)
    rc = run_logged(cmd, out, cwd=ROOT)
    if rc:
        sys.exit(rc)


def reuse_extractors(minority: int) -> None:
    """The feature extractors experiments/cgan trained on the same split (the same manifest bytes,
    so the same extractor key): copied instead of retrained (about 3 min per seed at one thread)."""
    from keras_cxr.pipeline.extractor import share_extractors

    cgan = ROOT / "experiments" / "results" / "cgan" / f"m{minority}"
    mine, theirs = folder(minority) / "data" / "manifest.csv", cgan / "data" / "manifest.csv"
    if mine.exists() and theirs.exists() and mine.read_bytes() == theirs.read_bytes():
        share_extractors(cgan, folder(minority))


def curve() -> None:
    cmd = [sys.executable, "-m", "keras_cxr", "report", "--results", str(folder(25)), "--compare", str(folder(10))]
    print("$", " ".join(cmd[1:]), flush=True)
    sys.exit(subprocess.call(cmd, cwd=ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("matrix", "curve"))
    p.add_argument("--minority", type=int, choices=(25, 10), default=25)
    p.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    p.add_argument("--data", default=DATA)
    p.add_argument("--rows", nargs="+", choices=ROWS, default=ROWS,
                   help="a subset of the rows, e.g. all but cdcgan_plus_a050 while its recipe is still screened")
    p.add_argument("--shard", help="K/N: this process's part of the matrix (evaluate-all --shard)")
    args = p.parse_args()
    if args.stage == "matrix":
        matrix(args.minority, args.seeds, args.data, args.rows, args.shard)
    else:
        curve()


if __name__ == "__main__":
    main()
