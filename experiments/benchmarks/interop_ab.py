"""Inter-op threads A/B for the quick ResNet18 step: intra-op 2 with inter-op 1 vs 2.

Each measurement runs in a fresh process (thread pools are fixed at TensorFlow start-up), and the
two settings alternate for --rounds rounds, so slow phases of a shared VM hit both alike.
Writes results/interop_ab.json and .md. Not a test: numbers depend on the host.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling bench.py and child_result.py
import child_result  # noqa: E402
SETTINGS = ((2, 1), (2, 2))


def child(intra: int, inter: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    import bench

    child_result.emit({"ours": bench.resnet_step(64, 32, 8, ours=True),
                       "plain": bench.resnet_step(64, 32, 8, ours=False)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = {f"{a}/{b}": [] for a, b in SETTINGS}
    for r in range(args.rounds):
        for intra, inter in SETTINGS:
            out = subprocess.run([sys.executable, __file__, "--child", str(intra), str(inter)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            row = child_result.parse(out)
            runs[f"{intra}/{inter}"].append(row)
            print(f"round {r} intra {intra} inter {inter}: {row}", flush=True)
    from bench import cpu_model
    from keras_cxr.io_utils import write_json, write_text

    write_json(HERE / "results" / "interop_ab.json", {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "runs": runs})
    md = ["# Inter-op threads A/B: quick ResNet18 train step, batch 32", "",
          f"`python experiments/benchmarks/interop_ab.py --rounds {args.rounds}`; {os.cpu_count()} CPUs ({cpu_model()}); "
          "fresh process per measurement, settings alternating. Seconds per step: median of 8 steps after 2 warm-up "
          "steps, through the compiled step function (bench.py). Ours: keras_cxr's kernels; plain: Keras' stock ops.", "",
          "| intra / inter op threads | ours s/step (per round) | median | plain s/step (per round) | median |",
          "|---|---|---|---|---|"]
    for key, rows in runs.items():
        fast, stock = [r["ours"] for r in rows], [r["plain"] for r in rows]
        md.append(f"| {key} | {', '.join(f'{v:.3f}' for v in fast)} | {statistics.median(fast):.3f} | "
                  f"{', '.join(f'{v:.3f}' for v in stock)} | {statistics.median(stock):.3f} |")
    write_text(HERE / "results" / "interop_ab.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
