"""`make bench`: where training time goes, measured in one process run, as ratios.

- fp32 matmul FLOP/s of this machine (the physical reference);
- GAN training: our `GAN.train_step` (via fit) vs the reference codes' loop (Balde, Brownlee:
  `d.train_on_batch` on real, on fake, then the combined model), same architecture and batch;
  with each step's share of the matmul rate (FLOPs counted from the layer shapes, below);
- ResNet18 training: our fit (fast conv input gradient) vs a plain `fit` of the stock model;
- input pipeline images/s vs the classifier's consumption rate;
- generation through the exported SavedModel vs in-process `predict`.

Writes results/bench.json and results/bench.md. Not a test: numbers depend on the host.

FLOP counting: a Conv2D / Conv2DTranspose / Dense layer costs 2 * (output elements) *
(kernel h * w * input channels) (Dense: 2 * inputs * units) multiply-adds per image; a training
pass costs 3x its forward pass (forward, input gradient, weight gradient). GAN step: D trains on
B/2 real and B/2 fake images (3 D each), G makes B/2 fakes (1 G) and then trains on B latents
(3 G + 2 D: D's input gradient and forward, no weight gradient). Elementwise ops are not counted.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cxr.classify import build_resnet18  # noqa: E402
from keras_cxr.config import load_preset  # noqa: E402
from keras_cxr.data.pipeline import make_dataset  # noqa: E402
from keras_cxr.gan import build_discriminator, build_generator  # noqa: E402
from keras_cxr.gan.export import export_generator  # noqa: E402
from keras_cxr.gan.train import build_gan  # noqa: E402
from keras_cxr.io_utils import write_json, write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def forward_flops(model) -> int:
    """Multiply-add FLOPs of one image through the model's conv and dense layers (see module doc)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            kh, kw = layer.kernel_size
            cin = layer.kernel.shape[-1] if isinstance(layer, keras.layers.Conv2DTranspose) else layer.kernel.shape[-2]
            if isinstance(layer, keras.layers.Conv2DTranspose):
                # each input element scatters kh*kw*cout products
                inp = int(np.prod(layer.input.shape[1:]))
                total += 2 * inp * kh * kw * layer.filters
            else:
                total += 2 * int(np.prod(layer.output.shape[1:])) * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "unknown")


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: tracing and first-call allocation
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def matmul_flops(sizes=(1024, 2048, 4096), seconds: float = 2.0) -> float:
    """The best fp32 matmul rate over square sizes: the machine's reachable FLOP/s. (1024 alone
    under-reads it: single conv layers ran faster than a 1024 matmul on this CPU.)"""
    best = 0.0
    for n in sizes:
        a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
        mm = tf.function(lambda a=a, b=b: tf.reduce_sum(tf.matmul(a, b)))
        once = timed(lambda: mm().numpy(), 1)
        best = max(best, 2 * n ** 3 / timed(lambda: mm().numpy(), max(3, int(seconds / once))))
    return best


def gan_ours(config, batch: int, steps: int, jit: bool) -> float:
    """Seconds per step of GAN.train_step run by fit."""
    config = load_preset(config.name, [f"gan.batch_size={batch}", f"gan.jit_compile={str(jit).lower()}"])
    gan = build_gan("dcgan", config)
    size = config.image_size
    x = tf.random.uniform([batch // 2, size, size, 1])
    ds = tf.data.Dataset.from_tensors((x, tf.ones([batch // 2], tf.int32))).repeat()
    gan.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    t = time.perf_counter()
    gan.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - t) / steps


def gan_reference(config, batch: int, steps: int) -> float:
    """Seconds per step of the codes' loop: D.train_on_batch(real), D.train_on_batch(G.predict(z)),
    combined.train_on_batch(z, ones), with D frozen in the combined model (timing semantics)."""
    g = config.gan
    gen = build_generator(config.image_size, g.latent_dim, g.filters)
    disc = build_discriminator(config.image_size, g.filters)
    disc.compile(keras.optimizers.Adam(g.learning_rate, beta_1=0.5), "binary_crossentropy")
    half = batch // 2
    real = np.random.default_rng(0).uniform(0, 1, (half, config.image_size, config.image_size, 1)).astype("float32")
    disc.train_on_batch(real, np.ones((half, 1)))  # trace D's step while it is trainable
    disc.trainable = False
    z_in = keras.Input((g.latent_dim,))
    combined = keras.Model(z_in, disc(gen(z_in)))
    combined.compile(keras.optimizers.Adam(g.learning_rate, beta_1=0.5), "binary_crossentropy")
    rng = np.random.default_rng(1)

    def step():
        disc.train_on_batch(real, np.ones((half, 1)))
        fake = gen.predict(rng.standard_normal((half, g.latent_dim)).astype("float32"), verbose=0)
        disc.train_on_batch(fake, np.zeros((half, 1)))
        combined.train_on_batch(rng.standard_normal((batch, g.latent_dim)).astype("float32"), np.ones((batch, 1)))

    return timed(step, steps)


def resnet_step(size: int, batch: int, steps: int, fast: bool) -> float:
    keras.utils.set_random_seed(0)
    model = build_resnet18(size, fast_input_grad=fast)
    model.compile(keras.optimizers.Adam(4e-3), "binary_crossentropy")
    x = tf.random.uniform([batch, size, size, 1])
    ds = tf.data.Dataset.from_tensors((x, tf.one_hot(tf.zeros([batch], tf.int32), 2))).repeat()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - t) / steps


def pipeline_rate(size: int, batch: int, n: int = 2048) -> float:
    images = np.random.default_rng(0).integers(0, 256, (n, size, size), dtype=np.uint8)
    ds = make_dataset(images, np.zeros(n, np.int32), batch_size=batch, training=True)
    for _ in ds.take(2):
        pass
    t = time.perf_counter()
    seen = sum(int(x.shape[0]) for x, _ in ds)
    return seen / (time.perf_counter() - t)


def generation(config, n: int = 512) -> tuple[float, float]:
    g = config.gan
    gen = build_generator(config.image_size, g.latent_dim, g.filters)
    z = np.random.default_rng(0).standard_normal((n, g.latent_dim)).astype("float32")
    in_process = n / timed(lambda: gen.predict(z, batch_size=256, verbose=0), 3)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "g" / "1"
        export_generator(gen, path, {"kind": "dcgan", "latent_dim": g.latent_dim, "pixel_range": g.pixel_range,
                                     "generated_label": 1, "image_size": config.image_size})
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        zt = tf.constant(z)
        saved = n / timed(lambda: [serve(latent=zt[i:i + 256])["images"].numpy() for i in range(0, n, 256)], 3)
    return saved, in_process


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--paper", action="store_true", help="also the paper architecture (128x128; slow on a CPU)")
    args = p.parse_args()
    out = {"host": {"machine": platform.machine(), "cpu_model": cpu_model(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU"))}}
    peak = matmul_flops()
    out["matmul_flops"] = peak
    print(f"matmul: {peak / 1e9:.1f} GFLOP/s", flush=True)
    presets = ["quick"] + (["paper"] if args.paper else [])
    out["gan"], out["resnet18"], out["pipeline"], out["generation"] = [], [], [], []
    for name in presets:
        config = load_preset(name)
        size = config.image_size
        g_flops = forward_flops(build_generator(size, config.gan.latent_dim, config.gan.filters))
        d_flops = forward_flops(build_discriminator(size, config.gan.filters))
        for batch in (32, 128):
            half = batch // 2
            step_flops = half * 3 * d_flops * 2 + half * g_flops + batch * (3 * g_flops + 2 * d_flops)
            steps = args.steps if name == "quick" else 2
            ref = gan_reference(config, batch, steps)
            row = {"preset": name, "batch": batch, "reference_s": ref, "step_flops": step_flops}
            for jit in (False, True):
                ours = gan_ours(config, batch, steps, jit)
                row[f"ours_xla_{'on' if jit else 'off'}_s"] = ours
            best = min(row["ours_xla_off_s"], row["ours_xla_on_s"])
            row.update({"speedup_vs_reference": ref / best, "real_images_per_s": half / best,
                        "share_of_matmul": step_flops / best / peak})
            out["gan"].append(row)
            print(row, flush=True)
        rn_flops = forward_flops(build_resnet18(size))
        for batch in (32, 128):
            steps = args.steps if name == "quick" else 2
            plain = resnet_step(size, batch, steps, fast=False)
            ours = resnet_step(size, batch, steps, fast=True)
            row = {"preset": name, "batch": batch, "plain_fit_s": plain, "ours_s": ours, "speedup": plain / ours,
                   "images_per_s": batch / ours, "share_of_matmul": 3 * rn_flops * batch / ours / peak}
            out["resnet18"].append(row)
            print(row, flush=True)
            if batch == 32:
                rate = pipeline_rate(size, 32)
                out["pipeline"].append({"preset": name, "pipeline_images_per_s": rate, "classifier_images_per_s": batch / ours,
                                        "ratio": rate / (batch / ours)})
                print(out["pipeline"][-1], flush=True)
        saved, in_process = generation(config)
        out["generation"].append({"preset": name, "savedmodel_images_per_s": saved, "predict_images_per_s": in_process,
                                  "ratio": saved / in_process})
        print(out["generation"][-1], flush=True)
    write_json(RESULTS / "bench.json", out)
    h = out["host"]
    md = ["# keras_cxr benchmarks\n", f"`make bench` (`python experiments/benchmarks/bench.py --steps {args.steps}`"
          f"{' --paper' if args.paper else ''}); {h['cpus']} CPUs ({h['machine']}), TensorFlow {h['tensorflow']}, "
          f"{h['gpus']} GPUs, CPU model {h['cpu_model']}. All rows from one process run. fp32 matmul: {peak / 1e9:.1f} GFLOP/s.\n",
          "## GAN training step (DCGAN architecture)\n",
          "| preset | batch | reference loop s/step | ours s/step (XLA off / on) | ours vs reference | real images/s | share of matmul FLOP/s |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['batch']} | {r['reference_s']:.3f} | {r['ours_xla_off_s']:.3f} / {r['ours_xla_on_s']:.3f} | "
           f"{r['speedup_vs_reference']:.2f}x | {r['real_images_per_s']:.1f} | {r['share_of_matmul']:.0%} |" for r in out["gan"]]
    md += ["", "## ResNet18 training step\n", "| preset | batch | plain fit s/step | ours s/step | speedup | images/s | share of matmul FLOP/s |",
           "|---|---|---|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['batch']} | {r['plain_fit_s']:.3f} | {r['ours_s']:.3f} | {r['speedup']:.2f}x | "
           f"{r['images_per_s']:.1f} | {r['share_of_matmul']:.0%} |" for r in out["resnet18"]]
    md += ["", "## Input pipeline vs classifier (batch 32)\n", "| preset | pipeline images/s | classifier images/s | ratio |", "|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['pipeline_images_per_s']:.0f} | {r['classifier_images_per_s']:.1f} | {r['ratio']:.1f}x |" for r in out["pipeline"]]
    md += ["", "## Generation\n", "| preset | SavedModel images/s | in-process predict images/s | ratio |", "|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['savedmodel_images_per_s']:.0f} | {r['predict_images_per_s']:.0f} | {r['ratio']:.2f} |" for r in out["generation"]]
    write_text(RESULTS / "bench.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
