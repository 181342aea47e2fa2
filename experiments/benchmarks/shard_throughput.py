"""Machine throughput of the quick steps: one 2-thread process vs two 1-thread shards at once.

The quick matrix can run as one process using both cores or as two `--shard K/2` processes with
`KERAS_CXR_THREADS=1`. Which gets more images per second through the whole machine decides how
to run it. Each measurement starts fresh processes (thread pools are fixed at TensorFlow start-up)
and the two layouts alternate for --rounds rounds, so slow phases of a shared VM hit both alike.
Measured per layout: the quick ResNet18 train step and the quick DCGAN train step (batch 32),
median of --steps steps after bench.py's warm-up. Writes results/shard_throughput.json and .md.
Not a test: numbers depend on the host.
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
BATCH = 32
LAYOUTS = {"1 process x 2 threads": (1, 2), "2 processes x 1 thread": (2, 1)}


def child(threads: int, steps: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import bench
    from keras_cxr.config import load_preset

    quick = load_preset("quick")
    child_result.emit({"resnet18": bench.resnet_step(quick.image_size, BATCH, steps),
                       "dcgan": bench.gan_ours(quick, BATCH, steps, jit=False)})


def run_layout(processes: int, threads: int, steps: int) -> dict:
    """Starts `processes` children at once; returns images/s through the machine per step kind."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, __file__, "--child", str(threads), str(steps)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(processes)]
    rows = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"error: a benchmark child exited with {proc.returncode}")
        rows.append(child_result.parse(out))
    return {kind: sum(BATCH / row[kind] for row in rows) for kind in ("resnet18", "dcgan")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return
    runs = {name: [] for name in LAYOUTS}
    for r in range(args.rounds):
        for name, (processes, threads) in LAYOUTS.items():
            runs[name].append(run_layout(processes, threads, args.steps))
            print(f"round {r} {name}: {runs[name][-1]}", flush=True)
    from bench import cpu_model
    from keras_cxr.io_utils import write_json, write_text

    med = {name: {k: statistics.median(row[k] for row in rows) for k in ("resnet18", "dcgan")} for name, rows in runs.items()}
    one, two = (med[name] for name in LAYOUTS)
    write_json(HERE / "results" / "shard_throughput.json",
               {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "batch": BATCH, "steps": args.steps, "runs": runs, "median": med})
    md = ["# Machine throughput: one 2-thread process vs two 1-thread shards", "",
          f"`python experiments/benchmarks/shard_throughput.py --rounds {args.rounds} --steps {args.steps}`; "
          f"{os.cpu_count()} CPUs ({cpu_model()}); quick preset, batch {BATCH}; fresh processes per measurement, "
          "layouts alternating. Images per second through the whole machine (the two shards' rates summed), "
          "from each process's median step time; median over rounds [per round].", "",
          "| layout | ResNet18 train step, images/s | DCGAN train step, batch images/s |", "|---|---|---|"]
    for name, rows in runs.items():
        cells = [f"{med[name][k]:.1f} [{', '.join(f'{row[k]:.1f}' for row in rows)}]" for k in ("resnet18", "dcgan")]
        md.append(f"| {name} | {cells[0]} | {cells[1]} |")
    md += ["", f"Two shards vs one process: ResNet18 {two['resnet18'] / one['resnet18']:.2f}x, "
               f"DCGAN {two['dcgan'] / one['dcgan']:.2f}x (above 1: the shards get more through the machine)."]
    write_text(HERE / "results" / "shard_throughput.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
