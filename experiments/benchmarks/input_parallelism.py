"""tf.data settings arm against arm, on this host, in one run.

    python experiments/benchmarks/input_parallelism.py [--arms library autotuner] [--rounds 1] [--gan-epochs 4]

`keras_cxr.data.pipeline` owns how the classifier's and the GAN's batches are prepared:
`parallel_calls` (threads) and `pipeline_options` (the tf.data autotuner off). Arms:
`library` as it is; `autotuner` with tf.data's default options (the autotuner on, as before
pipeline_options); `one` with one preparing thread. The arms run, in rotating order each round,
in one process:
- quick classifier cells as `evaluate-all` runs them (one ClassifierSession, `run_cell`) on the
  committed quick split: baseline seeds 0 and 1, dcgan seed 0 (generated images); each batch's
  end is time-stamped, so an epoch's first batch (where the wait was) is seen apart from its
  steady steps;
- a quick cDCGAN from scratch for `--gan-epochs` epochs, quality tracking off.
The arms must give the same numbers (cells: ROC AUC and every test score; GAN: the logged
losses): the script says so per pair. Writes results/input_parallelism.{json,md}. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # the sibling bench.py

import bench  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_cxr.data.pipeline as pipeline  # noqa: E402
import keras_cxr.gan.train as gan_train  # noqa: E402
from keras_cxr.classify.datasets import Splits  # noqa: E402
from keras_cxr.classify.train import ClassifierSession  # noqa: E402
from keras_cxr.config import load_preset  # noqa: E402
from keras_cxr.io_utils import write_json, write_text  # noqa: E402
from keras_cxr.pipeline.cells import run_cell  # noqa: E402
from keras_cxr.pipeline.gan_run import train_gan  # noqa: E402

CELLS = (("baseline", 0), ("baseline", 1), ("dcgan", 0))
LIBRARY = pipeline.parallel_calls, pipeline.pipeline_options
ARMS = {"library": LIBRARY, "autotuner": (LIBRARY[0], tf.data.Options), "one": (lambda: 1, LIBRARY[1])}


def use(arm: str) -> None:
    """Both modules that build tf.data pipelines look the functions up at call time."""
    threads, options = ARMS[arm]
    pipeline.parallel_calls = gan_train.parallel_calls = threads
    pipeline.pipeline_options = gan_train.pipeline_options = options


class Stamps(keras.callbacks.Callback):
    """Per epoch: the first batch's wall and CPU seconds and the median of the others (ms)."""

    def __init__(self):
        super().__init__()
        self.epochs: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t, self.cpu = [time.perf_counter()], [time.process_time()]

    def on_train_batch_end(self, batch, logs=None):
        self.t.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        d = np.diff(self.t)
        # CPU seconds of the whole process during the first batch: a wait uses next to none.
        self.epochs.append({"s": round(float(d.sum()), 2), "first_batch_s": round(float(d[0]), 2),
                            "first_batch_cpu_s": round(self.cpu[1] - self.cpu[0], 2),
                            "median_step_ms": round(float(np.median(d[1:])) * 1e3, 1)})


def classifier_cells(arm, config, splits, session, stamps, manifest_models, out) -> list[dict]:
    use(arm)
    rows = []
    for method, seed in CELLS:
        stamps.epochs = []
        t = time.perf_counter()
        record = run_cell(method, seed, config, splits, f"{out}/{arm}_{method}_{seed}_{time.time_ns()}",
                          manifest_models, session=session)
        rows.append({"arm": arm, "cell": f"{method} seed {seed}", "wall_s": round(time.perf_counter() - t, 1),
                     "epochs": stamps.epochs, "roc_auc": record["metrics"]["roc_auc"],
                     "test_scores": record["test_scores"]})
        print(f"{arm}: {method} seed {seed}: {rows[-1]['wall_s']} s, epochs "
              f"{[e['s'] for e in stamps.epochs]}, first batches {[e['first_batch_s'] for e in stamps.epochs]}",
              flush=True)
    return rows


def gan_run(arm, config, manifest, out) -> dict:
    use(arm)
    folder = Path(out) / f"gan_{arm}_{time.time_ns()}"
    t = time.perf_counter()
    train_gan("cdcgan", config, folder, alpha=0.5, manifest=manifest, verbose=0)
    wall = time.perf_counter() - t
    log = next(folder.rglob("log.csv"))
    rows = list(csv.DictReader(log.open()))
    print(f"{arm}: cdcgan {len(rows)} epochs: {[float(r['epoch_s']) for r in rows]} ({wall:.0f} s)", flush=True)
    return {"arm": arm, "wall_s": round(wall, 1), "epoch_s": [float(r["epoch_s"]) for r in rows],
            "losses": [[r[k] for k in ("d_loss_real", "d_loss_fake", "g_loss")] for r in rows]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default=str(REPO / "experiments/results/quick/data/manifest.csv"))
    p.add_argument("--models", default=str(REPO / "experiments/results/quick/models"))
    p.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=["library", "autotuner"])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--gan-epochs", type=int, default=4)
    args = p.parse_args()
    # The committed quick generators are one per row (made before `generator_per_seed`).
    config = load_preset("quick", ["classifier.generator_per_seed=false"])
    gan_config = load_preset("quick", ["gan.eval_every=0", "gan.export=last", f"gan.cdcgan_epochs={args.gan_epochs}"])
    splits = Splits.load(args.manifest, config.image_size)
    stamps = Stamps()
    session = ClassifierSession(config, callbacks=[stamps])
    cells, gans = [], []
    with tempfile.TemporaryDirectory() as out:
        for r in range(args.rounds):
            arms = args.arms[r % len(args.arms):] + args.arms[:r % len(args.arms)]
            for arm in arms:
                cells += classifier_cells(arm, config, splits, session, stamps, args.models, out)
            for arm in arms:
                gans.append(gan_run(arm, gan_config, args.manifest, out))
    same_cells = all(a["roc_auc"] == b["roc_auc"] and a["test_scores"] == b["test_scores"]
                     for a in cells for b in cells if a["cell"] == b["cell"])
    same_gans = all(a["losses"] == b["losses"] for a in gans for b in gans)
    for c in cells:
        del c["test_scores"]
    for g in gans:
        del g["losses"]
    result = {"host": {"cpu_model": bench.cpu_model(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                       "threads": os.environ.get("KERAS_CXR_THREADS", "all")},
              "arms": args.arms, "rounds": args.rounds, "gan_epochs": args.gan_epochs, "cells": cells, "gans": gans,
              "same_cell_numbers": same_cells, "same_gan_losses": same_gans}
    write_json(HERE / "results" / "input_parallelism.json", result)
    write_text(HERE / "results" / "input_parallelism.md", _markdown(result))
    print(f"wrote {HERE / 'results' / 'input_parallelism.md'}")
    return 0


def _markdown(r: dict) -> str:
    h = r["host"]
    lines = ["# tf.data settings, arm against arm", "",
             f"`python experiments/benchmarks/input_parallelism.py --arms {' '.join(r['arms'])} --rounds {r['rounds']} --gan-epochs "
             f"{r['gan_epochs']}`; {h['cpus']} CPUs ({h['cpu_model']}), op threads: {h['threads']}, TensorFlow "
             f"{h['tensorflow']}; quick preset on the committed quick split. Arms rotate within one process: `library` is "
             "keras_cxr.data.pipeline as it is (tf.data autotuner off), `autotuner` has tf.data's default options "
             "(autotuner on), `one` one preparing thread.", "",
             "## Classifier cells (5 epochs each)", "",
             "| arm | cell | wall s | epoch s | first batch s (process CPU s in it) | median step ms (per epoch) |", "|---|---|---|---|---|---|"]
    for c in r["cells"]:
        e = c["epochs"]
        seconds = ", ".join(str(x["s"]) for x in e)
        first = ", ".join(str(x["first_batch_s"]) + (f" ({x['first_batch_cpu_s']} cpu)" if "first_batch_cpu_s" in x else "")
                          for x in e)
        steps = ", ".join(f"{x['median_step_ms']:.0f}" for x in e)
        lines.append(f"| {c['arm']} | {c['cell']} | {c['wall_s']} | {seconds} | {first} | {steps} |")
    for arm in r["arms"]:
        mine = [c for c in r["cells"] if c["arm"] == arm]
        # A cell's first epoch is left out: in the process's first cell its first batch is tracing.
        waits = [x["first_batch_s"] for c in mine for x in c["epochs"][1:]]
        lines.append(f"\n`{arm}`: cells {sum(c['wall_s'] for c in mine):.1f} s in all; epochs 2-5 whose first batch "
                     f"took over 2 s: {sum(w > 2 for w in waits)} of {len(waits)}.")
    lines += ["", f"Same ROC AUC and test scores in both arms, cell by cell: **{r['same_cell_numbers']}**.", "",
              f"## Quick cDCGAN ({r['gan_epochs']} epochs, tracking off)", "",
              "| arm | wall s | epoch s |", "|---|---|---|"]
    for g in r["gans"]:
        lines.append(f"| {g['arm']} | {g['wall_s']} | {', '.join(map(str, g['epoch_s']))} |")
    lines += ["", f"Same logged losses in both arms, epoch by epoch: **{r['same_gan_losses']}**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
