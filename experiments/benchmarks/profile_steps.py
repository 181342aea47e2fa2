"""Where the training step's time goes: per-layer profile and thread scaling, quick preset.

Two measurements, written to results/profile.json and results/profile.md:

1. Thread scaling. The same ResNet18 step, GAN step (as the quick preset trains) and matmul, each in a fresh
   process with TensorFlow's op thread pools capped at 1 and at 2 (`KERAS_CXR_THREADS`): does the
   second core help?
2. Per-layer profile (in this process, all threads). Every conv / dense layer of the quick
   ResNet18 and of the DCGAN generator and discriminator, timed alone on its real input shape at
   batch 32: the forward pass plus the input and weight gradients (a training pass), as a
   compiled function. Its FLOPs (3x forward, counted as in bench.py) over its time give its own
   FLOP/s and share of the matmul rate; the sum over layers against the whole step's time gives
   the share spent outside the convolutions (batch norm, activations, the optimizer, framework).

Not a test: numbers depend on the host.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling bench.py and child_result.py
import child_result  # noqa: E402
RESULTS = HERE / "results"


def _scaling_child() -> None:
    """Runs in a subprocess: prints one JSON line of step times under the inherited thread cap."""
    import tensorflow as tf

    from keras_cxr.pipeline.cli import _thread_cap

    threads = _thread_cap(os.environ.get("KERAS_CXR_THREADS"))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import bench
    from keras_cxr.config import load_preset

    config = load_preset("quick")
    out = {"matmul_flops": bench.matmul_flops(),
           "resnet18_s": bench.resnet_step(config.image_size, 32, 8),
           "gan_s": bench.gan_ours(config, 32, 8, jit=config.gan.jit_compile)}
    child_result.emit(out)


def thread_scaling() -> dict:
    rows = {}
    for threads in (1, 2):
        env = {**os.environ, "KERAS_CXR_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True)
        rows[threads] = child_result.parse(proc.stdout)
        print(f"threads {threads}: {rows[threads]}", flush=True)
    return rows


def layer_profile(model, batch: int, repeats: int, peak: float) -> list[dict]:
    import keras
    import tensorflow as tf

    from bench import forward_flops, timed

    rows = []
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)):
            continue
        x = tf.random.uniform([batch, *layer.input.shape[1:]])

        @tf.function
        def train_pass(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
            return tape.gradient(y, [x, *layer.trainable_weights])

        seconds = timed(lambda: [g.numpy() for g in train_pass(x)][:0], repeats)
        probe = keras.Model(layer.input, layer.output)
        flops = 3 * forward_flops(probe) * batch
        rows.append({"layer": layer.name, "input": list(layer.input.shape[1:]), "output": list(layer.output.shape[1:]),
                     "train_flops": int(flops), "seconds": seconds, "gflops_per_s": flops / seconds / 1e9,
                     "share_of_matmul": flops / seconds / peak})
    total = sum(r["seconds"] for r in rows)
    for r in rows:
        r["share_of_layer_time"] = r["seconds"] / total
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    if args.child:
        _scaling_child()
        return
    scaling = thread_scaling()

    import bench
    import tensorflow as tf
    from keras_cxr.classify import build_resnet18
    from keras_cxr.config import load_preset
    from keras_cxr.gan import build_discriminator, build_generator
    from keras_cxr.io_utils import write_json, write_text

    config = load_preset("quick")
    size, g = config.image_size, config.gan
    peak = bench.matmul_flops()
    models = {"resnet18": build_resnet18(size), "generator": build_generator(size, g.latent_dim, g.filters),
              "discriminator": build_discriminator(size, g.filters)}
    profiles = {name: layer_profile(m, 32, args.repeats, peak) for name, m in models.items()}
    resnet_step = bench.resnet_step(size, 32, args.repeats)
    layer_sum = sum(r["seconds"] for r in profiles["resnet18"])
    out = {"host_cpus": os.cpu_count(), "cpu_model": bench.cpu_model(), "tensorflow": tf.__version__, "matmul_flops": peak, "thread_scaling": scaling,
           "resnet18_step_s": resnet_step, "resnet18_conv_dense_s": layer_sum, "layers": profiles}
    write_json(RESULTS / "profile.json", out)

    md = ["# Where the step time goes (quick preset, batch 32)", "",
          f"`python experiments/benchmarks/profile_steps.py`; {os.cpu_count()} CPUs ({bench.cpu_model()}), TensorFlow "
          f"{tf.__version__}, one run. fp32 matmul in this process (best of 1024-4096 square): {peak / 1e9:.1f} GFLOP/s.", "",
          "## Thread scaling (fresh process per row, `KERAS_CXR_THREADS`)", "",
          "| op threads | matmul GFLOP/s | ResNet18 step s | GAN step s |", "|---|---|---|---|"]
    md += [f"| {t} | {r['matmul_flops'] / 1e9:.1f} | {r['resnet18_s']:.3f} | {r['gan_s']:.3f} |" for t, r in scaling.items()]
    s1, s2 = scaling[1], scaling[2]
    md += ["", f"Second core speed-up: matmul {s2['matmul_flops'] / s1['matmul_flops']:.2f}x, ResNet18 step "
           f"{s1['resnet18_s'] / s2['resnet18_s']:.2f}x, GAN step {s1['gan_s'] / s2['gan_s']:.2f}x.", "",
           "## ResNet18 whole step vs its layers", "",
           f"Whole training step (batch 32, median of {args.repeats}): {resnet_step:.3f} s; its conv and dense layers timed alone "
           f"(forward + both gradients): {layer_sum:.3f} s ({layer_sum / resnet_step:.0%}); the rest "
           f"({1 - layer_sum / resnet_step:.0%}) is batch norm, ReLU, additions, pooling, loss, the optimizer "
           "and the framework.", ""]
    for name, rows in profiles.items():
        md += [f"## Per layer: {name}", "",
               "| layer | input | output | train GFLOP | ms | GFLOP/s | share of matmul | share of layer time |",
               "|---|---|---|---|---|---|---|---|"]
        md += [f"| {r['layer']} | {'x'.join(map(str, r['input']))} | {'x'.join(map(str, r['output']))} | "
               f"{r['train_flops'] / 1e9:.2f} | {r['seconds'] * 1e3:.1f} | {r['gflops_per_s']:.1f} | "
               f"{r['share_of_matmul']:.0%} | {r['share_of_layer_time']:.0%} |" for r in rows]
        md.append("")
    write_text(RESULTS / "profile.md", "\n".join(md) + "\n")
    print(f"wrote {RESULTS / 'profile.md'}")


if __name__ == "__main__":
    main()
