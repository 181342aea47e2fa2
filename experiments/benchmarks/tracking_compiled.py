"""Issue 25, item 2: GAN quality tracking with traced (tf.function) forwards against the op-by-op
calls it used before, on every tracked epoch of one finished run: the seconds per evaluation of
each, side by side in one process, and whether the tracked numbers and the epochs that
`gan.export: best` selects stay the same.

    KERAS_CXR_THREADS=1 python experiments/benchmarks/tracking_compiled.py \\
        --run experiments/results/cgan/m25/recipe/seed0

The run folder must still hold its tracked generators (`cdcgan_a050/tracked/`, not committed) and
its extractor weights. For each tracked epoch, in alternating order, both modes evaluate the
run's generator average and its raw G (an EMA run) as training did. The eager rows must equal the
run's own log (the harness reproduces training's numbers), and each mode's rows go through the
export rule (`keras_cxr.gan.selection.best_row`). Writes results/tracking_compiled.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"
RUN = "cdcgan_a050"
COLUMNS = ("fd_label0", "fd_label1", "kid_label0", "kid_label1", "fidelity_label0", "fidelity_label1")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="an experiments/cgan run folder (holding cdcgan_a050/)")
    args = p.parse_args(argv)
    threads = int(os.environ.get("KERAS_CXR_THREADS", "0")) or None
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    import dataclasses

    from keras_cxr.config import config_from_dict
    from keras_cxr.gan.record import GeneratorRecord
    from keras_cxr.gan.selection import best_row
    from keras_cxr.gan.train import build_gan
    from keras_cxr.methods import GeneratorSpec
    from keras_cxr.pipeline.provenance import cpu_model
    from keras_cxr.pipeline.run_folder import RunFolder
    from keras_cxr.pipeline.tracking import quality_probe

    run = RunFolder(args.run, GeneratorSpec("cdcgan", 0.5))
    config = config_from_dict(json.loads(run.config_path.read_text())["preset"])
    manifest = args.run.parents[1] / "data" / "manifest.csv"  # the split's (m25/data), the extractor's key
    probes = {}
    for mode, compiled in (("eager", False), ("traced", True)):
        probe = quality_probe(config, args.run, manifest, GeneratorSpec("cdcgan", 0.5))
        probe.extractor = dataclasses.replace(probe.extractor, compiled=compiled)
        probes[mode] = probe
    record = GeneratorRecord.read(run.export_dir)
    gan = build_gan("cdcgan", config, 0.5, majority_label=record.majority_label)
    with open(run.log_path, newline="") as fh:
        logged = {int(r["epoch"]): r for r in csv.DictReader(fh) if r["fd"]}
    reads = {"ema": lambda: gan.sampler, "raw": lambda: gan.generator} if gan.ema_generator is not None \
        else {"g": lambda: gan.generator}
    rows = {mode: {read: [] for read in reads} for mode in probes}
    seconds = {mode: 0.0 for mode in probes}
    for i, epoch in enumerate(sorted(run.tracked_epochs())):  # in order: the export rule keeps the earlier of a tie
        run.load_tracked(gan, epoch)
        for mode in (("eager", "traced") if i % 2 == 0 else ("traced", "eager")):
            for read, generator in reads.items():
                t = time.perf_counter()
                rows[mode][read].append({"epoch": epoch, **probes[mode](generator())})
                seconds[mode] += time.perf_counter() - t
        print(f"epoch {epoch}: eager {seconds['eager']:.1f} s, traced {seconds['traced']:.1f} s so far", flush=True)

    def logged_value(epoch, read, column):
        prefix = "raw_" if read == "raw" else ""
        return float(logged[epoch][prefix + column])

    def rel(a, b):
        return abs(a - b) / max(abs(b), 1e-12)

    # How far each mode is from training's own numbers: a fresh process does not repeat them bit for
    # bit even op by op (float round-off in oneDNN's kernels), which is the scale to read "traced" on.
    from_log = {mode: max(rel(row[c], logged_value(row["epoch"], read, c)) for read, rs in by.items()
                          for row in rs for c in COLUMNS if not c.startswith("fidelity"))
                for mode, by in rows.items()}
    fidelity_same = {mode: all(row[c] == logged_value(row["epoch"], read, c) for read, rs in by.items()
                               for row in rs for c in COLUMNS if c.startswith("fidelity"))
                     for mode, by in rows.items()}
    worst = max(rel(a[c], b[c]) for read in reads
                for a, b in zip(rows["traced"][read], rows["eager"][read]) for c in COLUMNS if c.startswith("fd"))
    real = probes["eager"].real_fidelity
    chosen = {mode: {read: best_row(rs, True, config.gan.min_label_fidelity, real)["epoch"] for read, rs in by.items()}
              for mode, by in rows.items()}
    real_traced = probes["traced"].real_fidelity
    n = len(run.tracked_epochs()) * len(reads)
    where = args.run.resolve()
    result = {"run": str(where.relative_to(ROOT)) if where.is_relative_to(ROOT) else str(where),
              "cpu": cpu_model(), "threads": threads or "all", "evaluations_per_mode": n,
              "seconds": {m: round(s, 1) for m, s in seconds.items()},
              "seconds_per_evaluation": {m: round(s / n, 2) for m, s in seconds.items()},
              "traced_speedup": round(seconds["eager"] / seconds["traced"], 3),
              "max_relative_difference_from_training_log": from_log, "fidelity_equals_training_log": fidelity_same,
              "max_relative_fd_difference_traced_vs_eager": worst, "rows": rows,
              "real_fidelity": {"eager": list(real), "traced": list(real_traced)},
              "selected_epoch": chosen, "same_selection": chosen["eager"] == chosen["traced"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tracking_compiled.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["# Quality tracking: traced forwards against op-by-op calls", "",
          f"`KERAS_CXR_THREADS={threads or ''} python experiments/benchmarks/tracking_compiled.py --run {result['run']}`; "
          f"{result['cpu']}, 2 cores, one op thread, beside other work (the two modes alternate per epoch, so "
          "they share its load).", "",
          "| | eager (before) | traced (now) |", "|---|---|---|",
          f"| seconds, {n} evaluations | {result['seconds']['eager']} | {result['seconds']['traced']} |",
          f"| seconds per evaluation | {result['seconds_per_evaluation']['eager']} | "
          f"{result['seconds_per_evaluation']['traced']} |",
          f"| epoch the export rule selects ({', '.join(reads)}) | {', '.join(str(chosen['eager'][r]) for r in reads)} | "
          f"{', '.join(str(chosen['traced'][r]) for r in reads)} |",
          f"| largest relative difference of Frechet / KID from the run's training log | {from_log['eager']:.1e} | "
          f"{from_log['traced']:.1e} |",
          f"| label fidelities equal to the training log | {fidelity_same['eager']} | {fidelity_same['traced']} |", "",
          f"Traced / eager speed-up: {result['traced_speedup']}x. Largest relative Frechet difference between the "
          f"modes: {worst:.1e}; the eager calls of a fresh process already differ from training's own log by "
          f"{from_log['eager']:.1e}, so the traced forwards move the tracked numbers by float round-off only. "
          f"Same selection: {result['same_selection']}."]
    (RESULTS / "tracking_compiled.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
