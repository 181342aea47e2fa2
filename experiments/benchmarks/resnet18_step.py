"""ResNet18 training step, kernel by kernel: what each of keras_cxr's CPU kernels adds, measured
interleaved in one run (bench.py's method). Writes results/<name>.{json,md} (default name
resnet18_step). Not a test: numbers depend on the host.

    python experiments/benchmarks/resnet18_step.py [--sizes 64 128] [--batch 32] [--rounds 12] [--name NAME]

Variants, each adding one kernel to the previous:
  stock         Keras' BatchNormalization and Adam, TensorFlow's conv input gradient
  +fused BN     keras_cxr.classify.fast_bn.FusedBatchNormalization
  +fused Adam   keras_cxr.optimizers.FusedAdam
  +conv grad    keras_cxr.kernels.conv_input_grad: the input gradient as a forward convolution
and, beside them, "+fused Adam" under the mixed_bfloat16 policy (keras_cxr.precision; fast where
the CPU has AVX-512 BF16 or AMX, emulated and slow elsewhere).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling bench.py

import tensorflow as tf  # noqa: E402

import bench  # noqa: E402
from keras_cxr.kernels import cpu_flags, resolve  # noqa: E402
from keras_cxr.kernels.conv_input_grad import stock_input_grad_is_slow  # noqa: E402
from keras_cxr.io_utils import write_json, write_text  # noqa: E402
from keras_cxr.kernels import Kernels  # noqa: E402

VARIANTS = {  # name: bench.resnet_step_fn arguments; each float32 variant adds one kernel
    "stock": bench.PLAIN_KERNELS,
    "+fused BN": {"kernels": Kernels(fused_bn=True)},
    "+fused Adam": {"kernels": Kernels(fused_bn=True, fused_adam=True)},
    "+conv grad": {"kernels": Kernels(fused_bn=True, fused_adam=True, conv_input_grad=True)},
    "+fused Adam, mixed_bfloat16": {"kernels": Kernels(fused_bn=True, fused_adam=True), "precision": "mixed_bfloat16"},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--name", default="resnet18_step", help="results/<name>.{json,md}")
    args = p.parse_args()
    rows = []
    for size in args.sizes:
        times = bench.interleaved({name: bench.resnet_step_fn(size, args.batch, **kw) for name, kw in VARIANTS.items()}, args.rounds)
        stats = {name: bench.summary(t) for name, t in times.items()}
        stock = stats["stock"]["median_s"]
        rows.append({"size": size, "batch": args.batch, "seconds": stats,
                     "speedup_vs_stock": {name: stock / s["median_s"] for name, s in stats.items()}})
        print({name: f"{s['median_s'] * 1e3:.0f} ms" for name, s in stats.items()}, flush=True)
    host = {"cpu_model": bench.cpu_model(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU")), "avx512f": "avx512f" in cpu_flags(),
            "auto_takes_conv_grad": resolve("auto").conv_input_grad,
            "calibration_finds_stock_slow": stock_input_grad_is_slow()}
    write_json(HERE / "results" / f"{args.name}.json", {"host": host, "rounds": args.rounds, "rows": rows})
    auto = "`+conv grad`" if host["auto_takes_conv_grad"] else "`+fused Adam`"
    md = ["# ResNet18 train step, kernel by kernel", "",
          f"`python experiments/benchmarks/resnet18_step.py --rounds {args.rounds} --sizes {' '.join(map(str, args.sizes))} "
          f"--name {args.name}`; {host['cpus']} CPUs ({host['cpu_model']}, "
          f"{'with' if host['avx512f'] else 'without'} AVX-512), "
          f"TensorFlow {host['tensorflow']}, {host['gpus']} GPUs; one run, variants interleaved (bench.py's method); "
          "median ms per step [interquartile range] and speed-up over stock. Each float32 variant adds one kernel to "
          f"the one before; the last is `+fused Adam` under the mixed_bfloat16 policy. On this CPU `kernels: auto` runs "
          f"{auto} (the rewrite is taken on x86-64 without AVX-512); `kernels: conv_grad` runs `+conv grad`. "
          f"The timing calibration (`stock_input_grad_is_slow`, reported only) "
          f"{'finds' if host['calibration_finds_stock_slow'] else 'does not find'} the stock input gradient slow here.", "",
          "| input | batch | " + " | ".join(VARIANTS) + " |", "|---|---|" + "---|" * len(VARIANTS)]
    md += [f"| {r['size']}x{r['size']} | {r['batch']} | " + " | ".join(
        f"{bench.fmt_ms(r['seconds'][n])}: {r['speedup_vs_stock'][n]:.2f}x" for n in VARIANTS) + " |" for r in rows]
    write_text(HERE / "results" / f"{args.name}.md", "\n".join(md) + "\n")
    print(f"wrote {HERE / 'results' / f'{args.name}.md'}")


if __name__ == "__main__":
    main()
