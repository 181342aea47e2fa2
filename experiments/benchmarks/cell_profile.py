"""Where one quick classifier cell's time goes, against the bare train step, in one run.

    python experiments/benchmarks/cell_profile.py [--manifest M] [--models DIR] [--steps 8]

Runs quick-preset cells the way `evaluate-all` runs them (one `ClassifierSession`, `run_cell`),
on the committed quick split and generators by default: baseline seed 0 (the process's first
cell: the validation and predict functions are traced in it), dcgan seed 0 (generated images
from the SavedModel) and baseline seed 1 (steady state). Each cell's spans come from its own
record (`timings_s`: resample, dataset, per epoch train and validation, test, weights).

The bare step is the same network's compiled train function on one cached batch
(`train_on_batch` on a twin model, so the cell's own model is never touched). This host's speed
drifts up to 2x within a minute, so the bare step is timed in bursts of `--steps` steps before
every epoch, after every `--every` train batches and after the last epoch (a session callback),
and each cell is compared with the bursts taken during it, spread evenly through its time. `cell_vs_step` is the cell's images/s (train images x epochs over
the cell's wall time, bursts left out) over the bare step's images/s in those bursts (images
over seconds, all bursts together).

Writes results/<--name, default cell_profile>.{json,md}. Not a test: numbers depend on the host.
"""

from __future__ import annotations

import argparse
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

from keras_cxr.classify.datasets import Splits  # noqa: E402
from keras_cxr.classify.train import ClassifierSession  # noqa: E402
from keras_cxr.config import load_preset  # noqa: E402
from keras_cxr.io_utils import write_json, write_text  # noqa: E402
from keras_cxr.kernels import cpu_flags, resolve  # noqa: E402
from keras_cxr.pipeline.cells import run_cell  # noqa: E402

CELLS = (("baseline", 0, "first cell of the process"), ("dcgan", 0, "generated images"),
         ("baseline", 1, "steady state"))


class BareBursts(keras.callbacks.Callback):
    """Times `steps` bare train steps of a twin model before each epoch, after every `every`
    train batches and after the last epoch. It comes first in the session's callbacks, so a
    burst before an epoch is outside that epoch's timing; the bursts inside an epoch are summed
    per epoch (`inside`), to be taken out of it."""

    def __init__(self, twin, batch_size: int, size: int, steps: int, every: int, where: str = "batches"):
        super().__init__()
        self.twin, self.steps, self.every, self.where = twin, steps, every, where
        self.batch = (tf.random.stateless_uniform((batch_size, size, size, 1), [0, 1]),
                      tf.one_hot(tf.zeros(batch_size, tf.int32), 2), tf.ones(batch_size))
        for _ in range(3):  # tracing and first-call allocation
            self._step()
        self.bursts: list[float] = []  # seconds of each burst (`steps` steps)
        self.inside: list[float] = []  # per epoch of the current cell: seconds of the bursts within it

    def _step(self):
        x, y, w = self.batch
        self.twin.train_on_batch(x, y, sample_weight=w)

    def burst(self) -> float:
        t = time.perf_counter()
        for _ in range(self.steps):
            self._step()
        self.bursts.append(time.perf_counter() - t)
        return self.bursts[-1]

    def on_train_begin(self, logs=None):
        self.inside = []
        if self.where == "cells":
            self.burst()

    def on_epoch_begin(self, epoch, logs=None):
        if self.where != "cells":
            self.burst()
        self.inside.append(0.0)

    def on_train_batch_end(self, batch, logs=None):
        if self.where == "batches" and (batch + 1) % self.every == 0:
            self.inside[-1] += self.burst()

    def on_train_end(self, logs=None):
        self.burst()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default=str(REPO / "experiments/results/quick/data/manifest.csv"))
    p.add_argument("--models", default=str(REPO / "experiments/results/quick/models"))
    p.add_argument("--steps", type=int, default=4, help="bare steps per burst")
    p.add_argument("--every", type=int, default=10, help="a burst after every this many train batches too")
    p.add_argument("--bursts", choices=("batches", "epochs", "cells"), default="batches",
                   help="where the twin's bursts go: before every epoch and after every --every batches; "
                        "before every epoch only; or only before and after each cell's training (a twin "
                        "stepping between the cell's own steps may itself slow them)")
    p.add_argument("--name", default="cell_profile", help="results/<name>.{json,md} (one per host kind)")
    args = p.parse_args()
    # The committed quick generators are one per row (made before `generator_per_seed`).
    config = load_preset("quick", ["classifier.generator_per_seed=false"])
    c = config.classifier
    t = time.perf_counter()
    splits = Splits.load(args.manifest, config.image_size)
    load_s = time.perf_counter() - t
    bursts = BareBursts(ClassifierSession(config).model, c.batch_size, config.image_size, args.steps, args.every,
                        args.bursts)
    t = time.perf_counter()
    session = ClassifierSession(config, callbacks=[bursts])
    build_s = time.perf_counter() - t
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for method, seed, note in CELLS:
            first = len(bursts.bursts)
            t = time.perf_counter()
            record = run_cell(method, seed, config, splits, out, args.models, session=session)
            mine = bursts.bursts[first:]
            wall = time.perf_counter() - t - sum(mine)
            images = record["train_images_per_epoch"] * c.epochs
            step_ips = c.batch_size * len(mine) * args.steps / sum(mine)
            rows.append({"method": method, "seed": seed, "note": note, "wall_s": round(wall, 2),
                         "images": images, "images_per_s": round(images / wall, 1),
                         "bare_step_images_per_s": round(step_ips, 1),
                         "bare_burst_ms_per_step": [round(b / args.steps * 1e3, 1) for b in mine],
                         "cell_vs_step": round(images / wall / step_ips, 3), "timings_s": record["timings_s"],
                         # each epoch's train seconds without the bursts inside it
                         "epoch_train_s": [round(e["train"] - b, 2) for e, b in zip(record["timings_s"]["epochs"],
                                                                                     bursts.inside)]})
            print(f"{method} seed {seed}: {wall:.1f} s, {images / wall:.1f} images/s, bare step "
                  f"{step_ips:.1f} images/s: {rows[-1]['cell_vs_step']:.2f}", flush=True)
    host = {"cpu_model": bench.cpu_model(), "cpus": os.cpu_count(), "avx512f": "avx512f" in cpu_flags(),
            "tensorflow": tf.__version__, "kernels_used": sorted(k for k, v in vars(resolve(config.kernels)).items() if v)}
    result = {"host": host, "preset": "quick", "manifest": args.manifest, "models": args.models,
              "data_load_s": round(load_s, 2), "session_build_s": round(build_s, 2), "steps_per_burst": args.steps,
              "burst_every_batches": args.every, "bursts": args.bursts,
              "cells": rows, "cell_vs_step": min(r["cell_vs_step"] for r in rows[1:])}
    write_json(HERE / "results" / f"{args.name}.json", result)
    write_text(HERE / "results" / f"{args.name}.md", _markdown(result))
    print(f"wrote {HERE / 'results' / (args.name + '.md')}")
    return 0


def _spread(ms: list) -> str:
    return f"{np.median(ms):.0f}, {min(ms):.0f}-{max(ms):.0f}, {len(ms)}"


def _markdown(r: dict) -> str:
    h = r["host"]
    lines = ["# One quick classifier cell, span by span, against the bare train step", "",
             f"`python experiments/benchmarks/cell_profile.py`; {h['cpus']} CPUs ({h['cpu_model']}, "
             f"{'with' if h['avx512f'] else 'without'} AVX-512), TensorFlow {h['tensorflow']}, kernels "
             f"{', '.join(h['kernels_used'])}; quick preset (64x64, batch 32, 5 epochs) on the committed quick "
             f"split, generators from `{Path(r['models']).relative_to(REPO) if r['models'].startswith(str(REPO)) else r['models']}`. "
             f"One process, as `evaluate-all` runs cells: data loaded once ({r['data_load_s']} s), one compiled "
             f"model ({r['session_build_s']} s to build), reset per cell.", "",
             f"Bare step: the same network's compiled train function on one cached batch (a twin model), "
             f"{r['steps_per_burst']} steps before every epoch, after every {r['burst_every_batches']} train batches and after the last epoch (epoch times below leave them out); each cell is compared with "
             f"its own bursts, because this host's speed drifts within a minute.", "",
             "| cell | what it shows | wall s (bursts out) | images | images/s | bare step images/s (ms/step: median, min-max, bursts) "
             "| cell_vs_step | resample s | dataset s | train s (epochs) | validation s | test s | weights s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in r["cells"]:
        t = c["timings_s"]
        epochs = t.get("epochs", [])
        train = sum(c["epoch_train_s"])
        val = sum(e["val"] for e in epochs)
        lines.append(f"| {c['method']} seed {c['seed']} | {c['note']} | {c['wall_s']} | {c['images']} | "
                     f"{c['images_per_s']:.1f} | {c['bare_step_images_per_s']} ({_spread(c['bare_burst_ms_per_step'])}) | "
                     f"{c['cell_vs_step']:.2f} | {t.get('resample', 0)} | {t.get('dataset', 0)} | "
                     f"{train:.1f} ({', '.join(map(str, c['epoch_train_s']))}) | {val:.1f} | "
                     f"{t.get('test', 0)} | {t.get('weights', 0)} |")
    lines += ["", f"`cell_vs_step` (the slowest cell after the process's first): **{r['cell_vs_step']:.2f}**. "
              "The first cell also traces the validation and predict functions."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
