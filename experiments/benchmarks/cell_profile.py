"""Where one quick classifier cell's time goes, against the bare train step, in one run.

    python experiments/benchmarks/cell_profile.py [--manifest M] [--models DIR] [--steps 20]

Runs quick-preset cells the way `evaluate-all` runs them (one `ClassifierSession`, `run_cell`),
on the committed quick split and generators by default: baseline seed 0 (the process's first
cell: the validation and predict functions are traced in it), dcgan seed 0 (generated images
from the SavedModel) and baseline seed 1 (steady state). Around them, the bare step: the same
compiled train function on one cached batch (`train_on_batch`), median of `--steps` steps,
before and after the cells. Each cell's spans come from its own record (`timings_s`: resample,
dataset, per epoch train and validation, test, weights). `cell_vs_step` is the cell's images/s
(train images x epochs over the cell's whole wall time) over the bare step's images/s.

Writes results/cell_profile.{json,md}. Not a test: numbers depend on the host.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # the sibling bench.py

import bench  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cxr.classify.datasets import Splits  # noqa: E402
from keras_cxr.classify.train import ClassifierSession  # noqa: E402
from keras_cxr.config import load_preset  # noqa: E402
from keras_cxr.io_utils import write_json, write_text  # noqa: E402
from keras_cxr.kernels import cpu_flags, resolve  # noqa: E402
from keras_cxr.pipeline.cells import run_cell  # noqa: E402

CELLS = (("baseline", 0, "first cell of the process"), ("dcgan", 0, "generated images"),
         ("baseline", 1, "steady state"))


def bare_step(model, batch_size: int, size: int, steps: int) -> float:
    """Median seconds of the compiled train step on one cached batch."""
    x = tf.random.stateless_uniform((batch_size, size, size, 1), [0, 1])
    y = tf.one_hot(tf.zeros(batch_size, tf.int32), 2)
    w = tf.ones(batch_size)
    for _ in range(3):
        model.train_on_batch(x, y, sample_weight=w)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y, sample_weight=w)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default=str(REPO / "experiments/results/quick/data/manifest.csv"))
    p.add_argument("--models", default=str(REPO / "experiments/results/quick/models"))
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    config = load_preset("quick")
    c = config.classifier
    t = time.perf_counter()
    splits = Splits.load(args.manifest, config.image_size)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    session = ClassifierSession(config)
    build_s = time.perf_counter() - t
    before = bare_step(session.model, c.batch_size, config.image_size, args.steps)
    print(f"bare step {before * 1e3:.0f} ms", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for method, seed, note in CELLS:
            t = time.perf_counter()
            record = run_cell(method, seed, config, splits, out, args.models, session=session)
            wall = time.perf_counter() - t
            images = record["train_images_per_epoch"] * c.epochs
            rows.append({"method": method, "seed": seed, "note": note, "wall_s": round(wall, 2),
                         "images": images, "images_per_s": images / wall, "timings_s": record["timings_s"]})
            print(f"{method} seed {seed}: {wall:.1f} s, {images / wall:.1f} images/s", flush=True)
    after = bare_step(session.model, c.batch_size, config.image_size, args.steps)
    step_ips = c.batch_size / statistics.mean([before, after])
    for r in rows:
        r["cell_vs_step"] = round(r["images_per_s"] / step_ips, 3)
    host = {"cpu_model": bench.cpu_model(), "cpus": os.cpu_count(), "avx512f": "avx512f" in cpu_flags(),
            "tensorflow": tf.__version__, "kernels_used": sorted(k for k, v in vars(resolve(config.kernels)).items() if v)}
    result = {"host": host, "preset": "quick", "manifest": args.manifest, "models": args.models,
              "data_load_s": round(load_s, 2), "session_build_s": round(build_s, 2),
              "bare_step_ms": {"before": round(before * 1e3, 1), "after": round(after * 1e3, 1)},
              "bare_step_images_per_s": round(step_ips, 1), "cells": rows,
              "cell_vs_step": min(r["cell_vs_step"] for r in rows[1:])}
    write_json(HERE / "results" / "cell_profile.json", result)
    write_text(HERE / "results" / "cell_profile.md", _markdown(result))
    print(f"wrote {HERE / 'results' / 'cell_profile.md'}")
    return 0


def _markdown(r: dict) -> str:
    h = r["host"]
    lines = ["# One quick classifier cell, span by span, against the bare train step", "",
             f"`python experiments/benchmarks/cell_profile.py`; {h['cpus']} CPUs ({h['cpu_model']}, "
             f"{'with' if h['avx512f'] else 'without'} AVX-512), TensorFlow {h['tensorflow']}, kernels "
             f"{', '.join(h['kernels_used'])}; quick preset (64x64, batch 32, 5 epochs) on the committed quick "
             f"split, generators from `{Path(r['models']).relative_to(REPO) if r['models'].startswith(str(REPO)) else r['models']}`. "
             f"One process, as `evaluate-all` runs cells: data loaded once ({r['data_load_s']} s), one compiled "
             f"model ({r['session_build_s']} s to build), reset per cell.", "",
             f"Bare step (the same compiled train function on one cached batch, median of the steps): "
             f"{r['bare_step_ms']['before']} ms before the cells, {r['bare_step_ms']['after']} ms after: "
             f"{r['bare_step_images_per_s']} images/s.", "",
             "| cell | what it shows | wall s | images | images/s | cell_vs_step | resample s | dataset s | "
             "train s (epochs) | validation s | test s | weights s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in r["cells"]:
        t = c["timings_s"]
        epochs = t.get("epochs", [])
        train = sum(e["train"] for e in epochs)
        val = sum(e["val"] for e in epochs)
        lines.append(f"| {c['method']} seed {c['seed']} | {c['note']} | {c['wall_s']} | {c['images']} | "
                     f"{c['images_per_s']:.1f} | {c['cell_vs_step']:.2f} | {t.get('resample', 0)} | {t.get('dataset', 0)} | "
                     f"{train:.1f} ({', '.join(str(e['train']) for e in epochs)}) | {val:.1f} | "
                     f"{t.get('test', 0)} | {t.get('weights', 0)} |")
    lines += ["", f"`cell_vs_step` (the slowest cell after the process's first): **{r['cell_vs_step']:.2f}**. "
              "The first cell also traces the validation and predict functions."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
