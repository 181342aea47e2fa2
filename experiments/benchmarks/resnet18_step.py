"""ResNet18 train-step time with TensorFlow's stock conv input gradient vs keras_cxr's
forward-convolution one (FastGradConv2D), measured in the same run. Writes
results/resnet18_step.{json,md}. Not a test: numbers depend on the host.

    python experiments/benchmarks/resnet18_step.py [--sizes 64 128] [--batch 32] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cxr.classify import build_resnet18  # noqa: E402
from keras_cxr.io_utils import write_json, write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def step_ms(size: int, batch: int, steps: int, fast: bool) -> float:
    keras.utils.set_random_seed(0)
    model = build_resnet18(size, fast_input_grad=fast)
    opt = keras.optimizers.Adam(4e-3)
    loss_fn = keras.losses.BinaryCrossentropy()
    x = tf.random.uniform([batch, size, size, 1])
    y = tf.one_hot(tf.random.uniform([batch], 0, 2, tf.int32), 2)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))

    train_step()
    train_step()
    t = time.perf_counter()
    for _ in range(steps):
        train_step()
    return (time.perf_counter() - t) / steps * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    rows = []
    for size in args.sizes:
        stock = step_ms(size, args.batch, args.steps, fast=False)
        fast = step_ms(size, args.batch, args.steps, fast=True)
        rows.append({"size": size, "batch": args.batch, "stock_ms": round(stock, 1), "fast_ms": round(fast, 1),
                     "speedup": round(stock / fast, 2), "fast_images_per_s": round(args.batch / fast * 1000, 1)})
        print(rows[-1], flush=True)
    host = {"machine": platform.machine(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU"))}
    write_json(RESULTS / "resnet18_step.json", {"rows": rows, "host": host, "steps": args.steps})
    write_text(RESULTS / "resnet18_step.md", "# ResNet18 train step: stock vs fast conv input gradient\n\n"
               f"`python experiments/benchmarks/resnet18_step.py`; {host['cpus']} CPUs ({host['machine']}), "
               f"TensorFlow {host['tensorflow']}, {host['gpus']} GPUs; mean of {args.steps} steps after 2 warm-up "
               f"steps, both variants in the same run.\n\n| input | batch | stock ms/step | fast ms/step | speedup | "
               "fast images/s |\n|---|---|---|---|---|---|\n" + "".join(
                   f"| {r['size']}x{r['size']} | {r['batch']} | {r['stock_ms']} | {r['fast_ms']} | {r['speedup']}x | "
                   f"{r['fast_images_per_s']} |\n" for r in rows))


if __name__ == "__main__":
    main()
