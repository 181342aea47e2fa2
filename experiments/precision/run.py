"""Issue 25, item 3: does mixed_bfloat16 change the results? float32 against mixed_bfloat16 on a
CPU with native bfloat16 (AVX-512 BF16 or AMX; elsewhere bfloat16 is emulated and slower).

Pre-registered before any run (the endpoints and what counts as "no loss"):

* Classifier: the quick preset (64x64, 5 epochs, from scratch) on the quick split (pneumonia 25%
  of train), methods baseline and oversample, seeds 0-4, once per precision. A cell of seed s in
  bfloat16 is paired with the float32 cell of seed s (same data order, same initial weights).
  Primary endpoint: test ROC AUC; secondary: F1 at 0.5 and balanced accuracy. Per method, the
  paired bfloat16 - float32 difference: mean, paired t-test p (two-sided), and the smallest
  difference these 5 seeds could detect (MDD, 80% power at 5%). "No loss": for both methods the
  mean ROC AUC difference is above -0.01 (a hundredth of AUC, well inside the seed-to-seed
  spread of the committed quick cells) and the t-test does not call bfloat16 worse at 5%.
* Generators: the quick DCGAN and the quick cDCGAN (alpha 0.5), GAN seeds 0 and 1, once per
  precision, everything else the quick preset (tracked every 5 epochs, best epoch exported).
  Endpoint: the exported generator's Frechet distance to real pneumonia images over the real-vs-
  real distance, under the split's extractor seeds 0, 1, 2. Two seeds give no test; "no loss":
  for each model the bfloat16 ratio of every GAN seed is within the float32 runs' own spread
  (at most the larger float32 seed's ratio x 1.5) and the label fidelity / near-copies do not
  get worse.

Stages (run from the repository root; each resumes; two processes share the 2 cores):

  python experiments/precision/run.py prepare      # the shared manifest and extractor, once
  KERAS_CXR_THREADS=1 python experiments/precision/run.py work --worker 0/2 &
  KERAS_CXR_THREADS=1 python experiments/precision/run.py work --worker 1/2 &
  wait
  python experiments/precision/run.py table        # results/precision/results.md + summary.json

Everything lands in experiments/results/precision/: cells/<precision>/ (evaluate-all folders),
gan/<precision>/<model>/seed<k>/ (train-gan folders), results.md. A sitting's command, wall time,
CPU and code are appended to each folder's sittings.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "experiments" / "results" / "precision"
DATA = "../shared/data/kermany128"
PRECISIONS = ("float32", "mixed_bfloat16")
METHODS = ("baseline", "oversample")
SEEDS = (0, 1, 2, 3, 4)
GAN_SEEDS = (0, 1)
MODELS = ("dcgan", "cdcgan")


def prepare(data: str) -> Path:
    """The quick split's manifest and seed-0 extractor, made once and shared by every folder."""
    from keras_cxr.config import load_preset
    from keras_cxr.pipeline.extractor import ensure_extractor
    from keras_cxr.pipeline.prepared import prepare_manifest

    config = load_preset("quick")
    manifest = prepare_manifest(config, OUT, data)
    ensure_extractor(config, OUT, manifest, seed=0)
    return manifest


def gan_dir(precision: str, model: str, seed: int) -> Path:
    return OUT / "gan" / precision / model / f"seed{seed}"


def gan_jobs() -> list[tuple[str, str, int]]:
    """(precision, model, seed); worker k of 2 takes jobs k, k + 2, ...: at each GAN seed one model
    per worker (swapped between seeds), float32 then bfloat16, so a pair runs under the same load."""
    return [(p, MODELS[(k + seed) % len(MODELS)], seed) for seed in GAN_SEEDS for p in PRECISIONS
            for k in range(len(MODELS))]


def train_gan(manifest: Path, precision: str, model: str, seed: int) -> int:
    from keras_cxr.pipeline.extractor import share_extractors
    from keras_cxr.pipeline.provenance import run_logged

    out = gan_dir(precision, model, seed)
    name = "dcgan" if model == "dcgan" else "cdcgan_a050"
    if (out / name / "done.json").exists():
        return 0
    out.mkdir(parents=True, exist_ok=True)
    share_extractors(OUT, out)
    cmd = [sys.executable, "-m", "keras_cxr", "train-gan", "--model", model, "--alpha", "0.5", "--preset", "quick",
           "--manifest", str(manifest), "--out", str(out), "--seed", str(seed),
           "--set", f"gan.precision={precision}", "--quiet"]
    return run_logged(cmd, out, cwd=ROOT)


def cells(manifest: Path, precision: str, worker: tuple[int, int]) -> int:
    from keras_cxr.pipeline.provenance import run_logged

    out = OUT / "cells" / precision
    cmd = [sys.executable, "-m", "keras_cxr", "evaluate-all", "--preset", "quick", "--manifest", str(manifest),
           "--out", str(out), "--methods", *METHODS, "--seeds", *map(str, SEEDS),
           "--shard", f"{worker[0]}/{worker[1]}", "--set", f"classifier.precision={precision}", "--quiet"]
    return run_logged(cmd, out, cwd=ROOT)


def work(worker: tuple[int, int], data: str, only: str | None) -> None:
    manifest = prepare(data)
    if only in (None, "cells"):
        for precision in PRECISIONS:
            if cells(manifest, precision, worker):
                sys.exit(f"error: the {precision} cells failed; see {OUT / 'cells' / precision}")
    if only in (None, "gan"):
        for precision, model, seed in gan_jobs()[worker[0]::worker[1]]:
            if train_gan(manifest, precision, model, seed):
                sys.exit(f"error: the {precision} {model} seed {seed} run failed; see {gan_dir(precision, model, seed)}")


def _worker(text: str) -> tuple[int, int]:
    k, n = (int(v) for v in text.split("/"))
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"K/N with 0 <= K < N. Received: {text!r}")
    return k, n


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("prepare", "work", "table"))
    p.add_argument("--worker", type=_worker, default=(0, 1), help="K/N: this process's share of the jobs")
    p.add_argument("--only", choices=("cells", "gan"), help="only the classifier cells or only the generators")
    p.add_argument("--data", default=DATA)
    args = p.parse_args(argv)
    if args.stage == "prepare":
        prepare(args.data)
    elif args.stage == "work":
        work(args.worker, args.data, args.only)
    else:
        from table import write_table  # noqa: E402 (sibling module)

        write_table(OUT)


if __name__ == "__main__":
    main()
