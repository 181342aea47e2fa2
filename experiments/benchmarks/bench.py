"""`make bench`: where training time goes, measured in one process run, as ratios.

- fp32 matmul FLOP/s of this machine (the physical reference);
- GAN training: our `GAN.train_step` (via fit) vs the reference codes' loop (Balde, Brownlee:
  `d.train_on_batch` on real, on fake, then the combined model), same architecture and batch;
  with each step's share of the matmul rate (FLOPs counted from the layer shapes, below);
- ResNet18 training: our fit (`kernels: auto`) vs a plain `fit` of the stock model;
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
from keras_cxr.gan.record import GeneratorRecord  # noqa: E402
from keras_cxr.gan.train import build_gan  # noqa: E402
from keras_cxr.io_utils import write_json, write_text  # noqa: E402
from keras_cxr.kernels import STOCK, Kernels, resolve, use  # noqa: E402
from keras_cxr.kernels.adam import FusedAdam  # noqa: E402
from keras_cxr.kernels.conv_input_grad import stock_input_grad_is_slow  # noqa: E402
from keras_cxr.precision import dtype_policy  # noqa: E402

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
    from keras_cxr.pipeline.provenance import cpu_model as model

    return model()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: tracing and first-call allocation
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in `rounds` rounds that call every function
    once, in an order that rotates each round. On a shared VM whose speed drifts (this one moved
    2x within minutes), a slow phase then hits every candidate alike, and ratios of medians hold."""
    names = list(fns)
    for name in names:  # warm-up: tracing, first-call allocation, oneDNN primitive caches
        fns[name]()
        fns[name]()
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t)
    return times


def summary(seconds: list[float]) -> dict:
    q1, med, q3 = np.percentile(seconds, [25, 50, 75])
    return {"median_s": float(med), "q1_s": float(q1), "q3_s": float(q3), "rounds": len(seconds)}


def matmul_size(sizes=(1024, 2048, 4096)) -> int:
    """The square size with the best fp32 matmul rate here. (1024 alone under-reads this CPU:
    single conv layers ran faster than a 1024 matmul.)"""
    rates = {}
    for n in sizes:
        fn = matmul_fn(n)
        rates[n] = 2 * n ** 3 / timed(fn, 3)
    return max(rates, key=rates.get)


def matmul_fn(n: int):
    a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
    mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    return lambda: mm().numpy()


def matmul_flops(sizes=(1024, 2048, 4096)) -> float:
    """The best fp32 matmul FLOP/s over square sizes: the machine's reachable rate."""
    n = matmul_size(sizes)
    return 2 * n ** 3 / timed(matmul_fn(n), 5)


def train_function_step(model, ds, sync_metric: str):
    """One call = one training step, run by the same compiled function `fit` calls per step
    (steps_per_execution=1), synchronised by reading a metric. Timing steps this way leaves out
    fit's per-call start-up (iterator, callbacks), which a short timed `fit` would charge to a
    handful of steps."""
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    fn, it = model.make_train_function(), iter(ds)
    return lambda: float(fn(it)[sync_metric])


def gan_step_fn(config, batch: int, jit: bool, fast_kernels: bool, precision: str = "float32"):
    """Our GAN.train_step (DCGAN) as one callable step; `fast_kernels`: keras_cxr's generator
    output-conv kernels and fused Adam, or Keras' stock ops for both."""
    config = load_preset(config.name, [f"gan.batch_size={batch}", f"gan.jit_compile={str(jit).lower()}",
                                       f"gan.precision={precision}"])
    with use(Kernels(gan_output_conv=True, fused_adam=True) if fast_kernels else STOCK):
        gan = build_gan("dcgan", config)
    x = tf.random.uniform([batch // 2, config.image_size, config.image_size, 1])
    ds = tf.data.Dataset.from_tensors((x, tf.ones([batch // 2], tf.int32))).repeat()
    return train_function_step(gan, ds, "g_loss")


def gan_ours(config, batch: int, steps: int, jit: bool) -> float:
    """Median seconds per step of our GAN.train_step as the preset trains it (CPU kernels auto)."""
    step = gan_step_fn(config, batch, jit, fast_kernels=not tf.config.list_logical_devices("GPU"))
    return summary(interleaved({"gan": step}, steps)["gan"])["median_s"]


def gan_reference_fn(config, batch: int):
    """The codes' loop as one callable step: D.train_on_batch(real), D.train_on_batch(G.predict(z)),
    combined.train_on_batch(z, ones), with D frozen in the combined model (timing semantics), on
    the same architecture with Keras' stock layers."""
    g = config.gan
    with use(STOCK):
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

    return step


# The stock Keras ops ("plain" in bench.md): Keras' conv input gradient, batch norm and Adam.
PLAIN_KERNELS = {"kernels": STOCK}


def resnet_step_fn(size: int, batch: int, kernels: Kernels | None = None, precision: str = "float32"):
    """One ResNet18 training step (Adam, BCE on one-hot labels) as one callable, with `kernels`
    (default: what `kernels: auto` runs here); **PLAIN_KERNELS gives the stock Keras layers and Adam."""
    kernels = kernels or resolve("auto")
    keras.utils.set_random_seed(0)
    with dtype_policy(precision):
        with use(kernels):
            model = build_resnet18(size)
    model.compile(FusedAdam(4e-3, fused=kernels.fused_adam), "binary_crossentropy")  # fused=False: Keras' Adam
    x = tf.random.uniform([batch, size, size, 1])
    ds = tf.data.Dataset.from_tensors((x, tf.one_hot(tf.zeros([batch], tf.int32), 2))).repeat()
    return train_function_step(model, ds, "loss")


def resnet_step(size: int, batch: int, steps: int, ours: bool = True) -> float:
    """Median seconds per ResNet18 training step, keras_cxr's kernels (ours) or the stock ones."""
    step = resnet_step_fn(size, batch) if ours else resnet_step_fn(size, batch, **PLAIN_KERNELS)
    return summary(interleaved({"resnet": step}, steps)["resnet"])["median_s"]


def pipeline_rate(size: int, batch: int, n: int = 2048) -> float:
    images = np.random.default_rng(0).integers(0, 256, (n, size, size), dtype=np.uint8)
    ds = make_dataset(images, np.zeros(n, np.int32), batch_size=batch, training=True)
    for _ in ds.take(2):
        pass
    t = time.perf_counter()
    seen = sum(int(x.shape[0]) for x, _ in ds)
    return seen / (time.perf_counter() - t)


def generation_fns(config, tmp: Path, n: int = 512) -> dict:
    """Generating n images through the exported SavedModel signature and through `predict`."""
    g = config.gan
    gen = build_generator(config.image_size, g.latent_dim, g.filters)
    z = np.random.default_rng(0).standard_normal((n, g.latent_dim)).astype("float32")
    path = tmp / "g" / "1"
    export_generator(gen, path, GeneratorRecord("dcgan", g.latent_dim, g.pixel_range, config.image_size, minority_label=1))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    zt = tf.constant(z)
    return {"savedmodel": lambda: [serve(latent=zt[i:i + 256])["images"].numpy() for i in range(0, n, 256)],
            "predict": lambda: gen.predict(z, batch_size=256, verbose=0)}


def fmt_ms(stats: dict) -> str:
    return f"{stats['median_s'] * 1e3:.0f} [{stats['q1_s'] * 1e3:.0f}-{stats['q3_s'] * 1e3:.0f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=12, help="interleaved rounds per comparison (quick)")
    p.add_argument("--paper", action="store_true", help="also the paper architecture (128x128; slow on a CPU)")
    args = p.parse_args()
    on_gpu = bool(tf.config.list_logical_devices("GPU"))
    out = {"host": {"machine": platform.machine(), "cpu_model": cpu_model(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "tensorflow": tf.__version__, "keras": keras.__version__, "gpus": len(tf.config.list_physical_devices("GPU"))},
           "rounds": args.rounds, "matmul_n": matmul_size()}
    mm, n = matmul_fn(out["matmul_n"]), out["matmul_n"]
    print(f"matmul size {n}", flush=True)
    out["gan"], out["resnet18"], out["pipeline"], out["generation"] = [], [], [], []

    def measure(fns: dict, rounds: int) -> tuple[dict, float]:
        times = interleaved({**fns, "matmul": mm}, rounds)
        peak = 2 * n ** 3 / summary(times.pop("matmul"))["median_s"]
        return {k: summary(v) for k, v in times.items()}, peak

    for name in ["quick"] + (["paper"] if args.paper else []):
        config = load_preset(name)
        size, rounds = config.image_size, args.rounds if name == "quick" else max(3, args.rounds // 4)
        g_flops = forward_flops(build_generator(size, config.gan.latent_dim, config.gan.filters))
        d_flops = forward_flops(build_discriminator(size, config.gan.filters))
        for batch in (32, 128):
            half = batch // 2
            step_flops = half * 3 * d_flops * 2 + half * g_flops + batch * (3 * g_flops + 2 * d_flops)
            stats, peak = measure({
                "reference": gan_reference_fn(config, batch),
                "ours_stock_kernels": gan_step_fn(config, batch, jit=False, fast_kernels=False),
                "ours_fast_kernels": gan_step_fn(config, batch, jit=False, fast_kernels=True),
                "ours_fast_kernels_xla": gan_step_fn(config, batch, jit=True, fast_kernels=True),
                "ours_fast_kernels_bf16": gan_step_fn(config, batch, jit=False, fast_kernels=True, precision="mixed_bfloat16"),
            }, rounds)
            # "ours" is what `train-gan` runs with this preset on this machine.
            trained = f"ours_{'stock' if on_gpu else 'fast'}_kernels{'_xla' if config.gan.jit_compile else ''}"
            ours = stats[trained]["median_s"]
            ref = stats["reference"]["median_s"]
            row = {"preset": name, "batch": batch, "step_flops": step_flops, "matmul_flops": peak, "seconds": stats,
                   "trained_variant": trained, "speedup_vs_reference": ref / ours, "real_images_per_s": half / ours,
                   "share_of_matmul": step_flops / ours / peak,
                   "variants": {k: {"vs_reference": ref / v["median_s"], "share_of_matmul": step_flops / v["median_s"] / peak}
                                for k, v in stats.items()}}
            out["gan"].append(row)
            print({k: row[k] for k in ("preset", "batch", "trained_variant", "speedup_vs_reference", "share_of_matmul")}, flush=True)
        rn_flops = forward_flops(build_resnet18(size))
        for batch in (32, 128):
            stats, peak = measure({"plain_fit": resnet_step_fn(size, batch, **PLAIN_KERNELS),
                                   "ours": resnet_step_fn(size, batch),
                                   "ours_bf16": resnet_step_fn(size, batch, precision="mixed_bfloat16")}, rounds)
            ours = stats["ours"]["median_s"]
            row = {"preset": name, "batch": batch, "matmul_flops": peak, "seconds": stats,
                   "fast_input_grad": resolve("auto").conv_input_grad,
                   "conv_grad_would_pay": not on_gpu and stock_input_grad_is_slow(), "speedup": stats["plain_fit"]["median_s"] / ours,
                   "images_per_s": batch / ours, "share_of_matmul": 3 * rn_flops * batch / ours / peak,
                   "plain_share_of_matmul": 3 * rn_flops * batch / stats["plain_fit"]["median_s"] / peak,
                   "bf16_speedup": stats["plain_fit"]["median_s"] / stats["ours_bf16"]["median_s"]}
            out["resnet18"].append(row)
            print({k: row[k] for k in ("preset", "batch", "speedup", "share_of_matmul")}, flush=True)
            if batch == 32:
                rate = pipeline_rate(size, 32)
                out["pipeline"].append({"preset": name, "pipeline_images_per_s": rate, "classifier_images_per_s": batch / ours,
                                        "ratio": rate / (batch / ours)})
                print(out["pipeline"][-1], flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            stats = {k: summary(v) for k, v in interleaved(generation_fns(config, Path(tmp)), max(3, rounds // 2)).items()}
        out["generation"].append({"preset": name, "images": 512, "seconds": stats,
                                  "savedmodel_images_per_s": 512 / stats["savedmodel"]["median_s"],
                                  "predict_images_per_s": 512 / stats["predict"]["median_s"],
                                  "ratio": stats["predict"]["median_s"] / stats["savedmodel"]["median_s"]})
        print({k: v for k, v in out["generation"][-1].items() if k != "seconds"}, flush=True)
    write_json(RESULTS / "bench.json", out)
    write_text(RESULTS / "bench.md", markdown(out, args))
    print(f"wrote {RESULTS / 'bench.md'}")


def markdown(out: dict, args) -> str:
    h = out["host"]
    md = ["# keras_cxr benchmarks\n",
          f"`make bench` (`python experiments/benchmarks/bench.py --rounds {args.rounds}{' --paper' if args.paper else ''}`); "
          f"{h['cpus']} CPUs ({h['machine']}, {h['cpu_model']}), {h['gpus']} GPUs, TensorFlow {h['tensorflow']}, Keras {h['keras']}. "
          "One process run. Every comparison is interleaved: each round runs one step of every candidate and one "
          f"{out['matmul_n']}x{out['matmul_n']} fp32 matmul (the best square size here), in rotating order; times are "
          "medians over the rounds with the interquartile range in brackets, in ms, and ratios and matmul shares are "
          "taken from those medians. Steps run through the compiled function `fit` calls per step.\n",
          "## GAN training step (DCGAN architecture)\n",
          "Reference: the codes' loop (`D.train_on_batch` real, `D.train_on_batch(G.predict(z))`, combined "
          "`train_on_batch`) with Keras' stock layers and Adam. Ours: `GAN.train_step`, with the same stock ops, with "
          "keras_cxr's kernels (generator output conv `keras_cxr.kernels.gan_output_conv`, fused Adam), with those plus XLA, and "
          "with those under the opt-in `mixed_bfloat16` policy (its matmul share counts the same FLOPs against the "
          "fp32 matmul). **Bold**: the variant `train-gan` runs with that preset on this machine.\n",
          "| preset | batch | matmul GFLOP/s | reference ms | ours, stock kernels | ours, fast kernels | ours, fast kernels + XLA | ours, fast kernels, mixed_bfloat16 | trained variant vs reference | real images/s | GFLOP/s | share of matmul |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["gan"]:
        cells = []
        for k in ("ours_stock_kernels", "ours_fast_kernels", "ours_fast_kernels_xla", "ours_fast_kernels_bf16"):
            v = r["variants"][k]
            cell = f"{fmt_ms(r['seconds'][k])}: {v['vs_reference']:.2f}x, {v['share_of_matmul']:.0%}"
            cells.append(f"**{cell}**" if k == r["trained_variant"] else cell)
        md.append(f"| {r['preset']} | {r['batch']} | {r['matmul_flops'] / 1e9:.0f} | {fmt_ms(r['seconds']['reference'])} | "
                  + " | ".join(cells) + f" | {r['speedup_vs_reference']:.2f}x | {r['real_images_per_s']:.1f} | "
                  f"{r['share_of_matmul'] * r['matmul_flops'] / 1e9:.0f} | {r['share_of_matmul']:.0%} |")
    md += ["", "## ResNet18 training step\n",
           "Plain: the stock Keras layers and Adam, as `fit` runs them. Ours: as `evaluate-all` trains it on this "
           "machine (`kernels: auto`): fused batch norm (`keras_cxr.kernels.batch_norm`), fused Adam "
           "(`keras_cxr.kernels.adam`) and the stock conv input gradient (the last column says which path ran; "
           "`kernels: conv_grad` opts into the forward-convolution rewrite). Ours, mixed_bfloat16: the same under the "
           "opt-in `mixed_bfloat16` policy.\n",
           "| preset | batch | matmul GFLOP/s | plain ms | ours ms | ours vs plain | images/s | share of matmul (plain / ours) | ours' input gradient | ours, mixed_bfloat16 ms: vs plain |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['batch']} | {r['matmul_flops'] / 1e9:.0f} | {fmt_ms(r['seconds']['plain_fit'])} | {fmt_ms(r['seconds']['ours'])} | "
           f"{r['speedup']:.2f}x | {r['images_per_s']:.1f} | {r['plain_share_of_matmul']:.0%} / {r['share_of_matmul']:.0%} | "
           f"{'forward-conv rewrite' if r['fast_input_grad'] else 'stock'} | {fmt_ms(r['seconds']['ours_bf16'])}: {r['bf16_speedup']:.2f}x |"
           for r in out["resnet18"]]
    md += ["", "## Input pipeline vs classifier (batch 32)\n", "| preset | pipeline images/s | classifier images/s | ratio |", "|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['pipeline_images_per_s']:.0f} | {r['classifier_images_per_s']:.1f} | {r['ratio']:.1f}x |" for r in out["pipeline"]]
    md += ["", "## Generation (512 images, chunks of 256)\n", "| preset | SavedModel images/s | in-process predict images/s | ratio |", "|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['savedmodel_images_per_s']:.0f} | {r['predict_images_per_s']:.0f} | {r['ratio']:.2f} |" for r in out["generation"]]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
