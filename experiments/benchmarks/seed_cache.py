"""What reseeding costs a cell: `keras.utils.set_random_seed` (TensorFlow's kernel cache cleared,
every traced function instantiated again) against `seed_cell` (the cache kept), in one run.

    python experiments/benchmarks/seed_cache.py [--preset tiny] [--rounds 2]

Each round runs one process per way, alternating, on the preset's prepared sample split: the
same 8 cells (4 methods x seeds 0 1, one `ClassifierSession`), the way `evaluate-all` runs them.
The first cell of each seed builds that seed's initial weights (a full `set_random_seed` either
way) and is left out; the table gives the other cells' wall time and their first train batch,
where the re-instantiation shows. Writes results/seed_cache.{json,md}. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CELLS = [(m, s) for m in ("baseline", "oversample", "class_weights", "smote") for s in (0, 1)]


def child(way: str, preset: str, out: Path) -> None:
    import keras

    from keras_cxr.classify import train as classify_train
    from keras_cxr.classify.datasets import Splits
    from keras_cxr.config import load_preset
    from keras_cxr.pipeline import train_cell
    from keras_cxr.pipeline.prepared import prepare_manifest

    if way == "set_random_seed":  # what cells did before seed_cell
        classify_train.seed_cell = train_cell.seed_cell = keras.utils.set_random_seed

    class FirstBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.first = time.perf_counter() - self.t

    config = load_preset(preset)
    splits = Splits.load(prepare_manifest(config, out), config.image_size)
    first = FirstBatch()
    session = classify_train.ClassifierSession(config, callbacks=[first])
    rows = []
    for method, seed in CELLS:
        t = time.perf_counter()
        train_cell.train_classifier(method, seed, config, splits, out, session=session)
        rows.append({"method": method, "seed": seed, "wall_s": time.perf_counter() - t, "first_batch_s": first.first})
    print(json.dumps(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.preset, Path(args.out))
    ways = ("set_random_seed", "seed_cell")
    runs = {w: [] for w in ways}
    for r in range(args.rounds):
        for way in ways:
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
                cmd = [sys.executable, __file__, "--child", way, "--preset", args.preset, "--out", tmp]
                res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            rows = json.loads(res.stdout.strip().splitlines()[-1])
            runs[way] += [row for i, row in enumerate(rows) if i >= 2]  # the first cell of each seed builds
            print(f"round {r + 1} {way}: {sum(x['wall_s'] for x in rows[2:]):.1f} s for {len(rows) - 2} cells", flush=True)
    summary = {}
    for way in ways:
        rows = runs[way]
        summary[way] = {"cells": len(rows), "mean_cell_s": round(sum(x["wall_s"] for x in rows) / len(rows), 2),
                        "mean_first_batch_s": round(sum(x["first_batch_s"] for x in rows) / len(rows), 3)}
    ratio = summary["set_random_seed"]["mean_cell_s"] / summary["seed_cell"]["mean_cell_s"]
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    result = {"preset": args.preset, "rounds": args.rounds, "cpu": cpu, "cores": os.cpu_count(),
              "ways": summary, "speedup": round(ratio, 2), "date": time.strftime("%Y-%m-%d")}
    (HERE / "results" / "seed_cache.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# Reseeding a cell: kernel cache cleared or kept ({args.preset} preset)", "",
             f"`python experiments/benchmarks/seed_cache.py --preset {args.preset} --rounds {args.rounds}`, "
             f"{result['date']}, {cpu}, {os.cpu_count()} cores; the two ways alternate, one process each per round.", "",
             "| way | cells | mean cell (s) | mean first train batch (s) |", "|---|---|---|---|"]
    lines += [f"| {w} | {s['cells']} | {s['mean_cell_s']} | {s['mean_first_batch_s']} |" for w, s in summary.items()]
    lines += ["", f"Cells with the cache kept take 1/{ratio:.2f} of the time."]
    (HERE / "results" / "seed_cache.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
