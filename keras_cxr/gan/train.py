"""`train-gan`: one resumable GAN run, from manifest to exported SavedModel generator.

Run directory `<out>/<run>/` (run = dcgan, cdcgan_a025, ...):
  config.json        the resolved preset + run arguments; a rerun with other values is refused
  manifest.csv       the exact images the run trained on
  log.csv            one row of metrics per completed epoch
  tensorboard/       TensorBoard event files
  samples/           per-epoch sample grids from fixed latents (one per label for cDCGAN)
  checkpoints/       epoch-NNNN.npz: G, D and both optimizers (the last `keep_checkpoints`)
  done.json          written last; a finished run is never retrained
and the generator is exported to `<out>/models/<run>/1/` (TF Serving layout).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_cxr.config import Config, GANConfig
from keras_cxr.data import default_data_path, imbalanced_from_path, read_manifest, write_manifest
from keras_cxr.data.pipeline import load_images, to_float
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.discriminator import build_discriminator
from keras_cxr.gan.export import export_generator, images_from_generator_output
from keras_cxr.gan.gan import GAN
from keras_cxr.gan.generator import build_generator
from keras_cxr.gan.grid import save_grid
from keras_cxr.io_utils import atomic_path, remove_stale_tmp, run_lock, write_json
from keras_cxr.optimizers import FusedAdam
from keras_cxr.precision import dtype_policy, for_precision

LOG_FIELDS = ("epoch", "d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake", "epoch_s", "images_per_s")


class GANDivergedError(KerasCXRError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def run_name(kind: str, alpha: float | None = None) -> str:
    """dcgan, or cdcgan_a025 / cdcgan_a050 / cdcgan_a075 for alpha 0.25 / 0.5 / 0.75."""
    return "dcgan" if kind == "dcgan" else f"cdcgan_a{round(alpha * 100):03d}"


def build_gan(kind: str, config: Config, alpha: float = 0.5, fast_output_conv: bool | None = None,
              fused_adam: bool = True) -> GAN:
    """The preset's DCGAN or cDCGAN, compiled with the paper's optimizers and BCE loss.
    `fast_output_conv`: see `build_generator` (None: on when no GPU is visible); `fused_adam`:
    Adam's update as one fused kernel (`keras_cxr.optimizers.FusedAdam`, same numbers)."""
    g = config.gan
    conditional = kind == "cdcgan"
    keras.utils.set_random_seed(g.seed)  # weight init
    with dtype_policy(g.precision):
        generator = build_generator(config.image_size, g.latent_dim, g.filters, conditional, embedding_dim=g.embedding_dim,
                                    fast_output_conv=fast_output_conv)
        discriminator = build_discriminator(config.image_size, g.filters, conditional, g.discriminator,
                                            embedding_dim=g.embedding_dim)
        gan = GAN(generator, discriminator, g.latent_dim, conditional, alpha, g.seed, name=f"{kind}_gan")

    def adam():
        return for_precision(FusedAdam(g.learning_rate, beta_1=g.beta_1, beta_2=g.beta_2, fused=fused_adam), g.precision)

    gan.compile(
        d_optimizer=adam(),
        g_optimizer=adam(),
        loss_fn=keras.losses.BinaryCrossentropy(),
        jit_compile=g.jit_compile,
    )
    gan.d_optimizer.build(discriminator.trainable_variables)
    gan.g_optimizer.build(generator.trainable_variables)
    return gan


def real_batches(images: np.ndarray, labels: np.ndarray, half_batch: int, start_step: int,
                 end_step: int, seed: int, pixel_range: str) -> tf.data.Dataset:
    """Half batches of real images drawn at random with replacement, as the codes'
    `randint(0, N, half_batch)` does, keyed on (seed, step) so a resumed run draws the same."""
    n = len(images)
    all_images, all_labels = tf.constant(images), tf.constant(labels, dtype=tf.int32)
    base = tf.constant([seed, 1], dtype=tf.int64)

    def draw(step):
        idx = tf.random.stateless_uniform(
            [half_batch], tf.random.experimental.stateless_fold_in(base, step), 0, n, dtype=tf.int64
        )
        return to_float(tf.gather(all_images, idx), pixel_range), tf.gather(all_labels, idx)

    ds = tf.data.Dataset.range(start_step, end_step)
    return ds.map(draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def _variables(gan: GAN) -> dict:
    return {"g": gan.generator.variables, "d": gan.discriminator.variables,
            "g_opt": gan.g_optimizer.variables, "d_opt": gan.d_optimizer.variables}


def save_checkpoint(gan: GAN, path: Path, epoch: int) -> None:
    arrays = {f"{group}/{i}": np.asarray(v.numpy()) for group, vs in _variables(gan).items() for i, v in enumerate(vs)}
    arrays["epoch"] = np.array(epoch)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


class CheckpointError(KerasCXRError):
    """A checkpoint file that cannot be read back whole (truncated, corrupt, not an .npz)."""


def read_checkpoint(path: Path) -> dict:
    """Every array of a checkpoint, read in full so that a bad CRC or a cut-off member shows here."""
    try:
        with np.load(path, allow_pickle=False) as ckpt:
            arrays = {k: ckpt[k] for k in ckpt.files}
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, OSError, ValueError: all "unreadable"
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from None
    if "epoch" not in arrays:
        raise CheckpointError(f"checkpoint {path} is incomplete (no epoch record)")
    return arrays


def load_checkpoint(gan: GAN, path: Path) -> int:
    """Restores G, D and both optimizers from `path`; returns its epoch. Nothing is assigned
    unless the whole file reads and matches the model."""
    ckpt = read_checkpoint(path)
    pairs = []
    for group, vs in _variables(gan).items():
        for i, v in enumerate(vs):
            key = f"{group}/{i}"
            if key not in ckpt or ckpt[key].shape != tuple(v.shape):
                raise KerasCXRError(f"checkpoint {path} does not match the model ({key}); start a new --out")
            pairs.append((v, ckpt[key]))
    for v, value in pairs:
        v.assign(value)
    return int(ckpt["epoch"])


def restore_latest(gan: GAN, run_dir: Path, name: str) -> int:
    """Loads the newest checkpoint that reads completely; returns its epoch (0: none).

    A newer one that does not read (a kill or a full disk mid-write on a filesystem without
    atomic rename, bit rot) is reported by name and set aside as `*.npz.corrupt`, not deleted.
    """
    for path in reversed(_checkpoints(run_dir)):
        try:
            return load_checkpoint(gan, path)
        except CheckpointError as exc:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            print(f"{name}: {exc}; set it aside as {aside.name} and fell back to the previous checkpoint",
                  file=sys.stderr)
    return 0


def _run_identity(run_config: dict) -> dict:
    """What a resumed run must share with its start: everything but how the step is executed
    (XLA compiles the same algorithm; the quick preset switched it off after a measurement).
    GAN settings added after a run started count at their defaults, which is what it ran with."""
    identity = json.loads(json.dumps(run_config))
    gan = identity.get("preset", {}).get("gan", {})
    for f in dataclasses.fields(GANConfig):
        gan.setdefault(f.name, json.loads(json.dumps(f.default)))
    gan.pop("jit_compile", None)
    gan.pop("max_images", None)  # a serving guard, not part of what is trained
    return identity


def _checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("epoch-*.npz"))


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, or one above `max_loss`, and remembers where.

    A finite blow-up is divergence too: with the paper's learning rate, D's logits can jump to
    ~1e4 (epoch-mean losses in the thousands) and D then wins for good, with no NaN ever logged.
    """

    def __init__(self, max_loss: float = 1000.0):
        super().__init__()
        self.max_loss = max_loss
        self.diverged = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items() if "loss" in k}
        bad = {k: v for k, v in values.items() if not np.isfinite(v) or abs(v) > self.max_loss}
        if bad and self.diverged is None:
            self.diverged = (self.epoch + 1, batch + 1, bad)
            self.model.stop_training = True


class EpochEnd(keras.callbacks.Callback):
    """Per completed epoch: the CSV row, the sample grids, then the checkpoint (in that order,
    so a checkpoint always has its log row; rows past the restored epoch are dropped on resume)."""

    def __init__(self, run_dir: Path, guard: DivergenceGuard, fixed_latents: np.ndarray, conditional: bool,
                 pixel_range: str, keep: int, images_per_epoch: int):
        super().__init__()
        self.run_dir, self.guard, self.keep = run_dir, guard, keep
        self.fixed_latents, self.conditional, self.pixel_range = fixed_latents, conditional, pixel_range
        self.images_per_epoch = images_per_epoch
        self.t0 = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.diverged is not None:
            return
        seconds = time.perf_counter() - self.t0
        row = {"epoch": epoch + 1, **{k: float(logs[k]) for k in LOG_FIELDS[1:6]},
               "epoch_s": round(seconds, 3), "images_per_s": round(self.images_per_epoch / seconds, 2)}
        log = self.run_dir / "log.csv"
        new = not log.exists()
        with open(log, "a", newline="") as fh:
            w = csv.DictWriter(fh, LOG_FIELDS)
            if new:
                w.writeheader()
            w.writerow(row)
        self.save_samples(epoch + 1)
        ckpt_dir = self.run_dir / "checkpoints"
        save_checkpoint(self.model, ckpt_dir / f"epoch-{epoch + 1:04d}.npz", epoch + 1)
        for old in _checkpoints(self.run_dir)[:-self.keep]:
            old.unlink()

    def save_samples(self, epoch: int) -> None:
        gen = self.model.generator
        if not self.conditional:
            out = gen(self.fixed_latents, training=False)
            save_grid(images_from_generator_output(out, self.pixel_range), self.run_dir / "samples" / f"epoch-{epoch:04d}.png")
            return
        for label in (0, 1):
            labels = np.full(len(self.fixed_latents), label, dtype=np.int32)
            out = gen([self.fixed_latents, labels], training=False)
            save_grid(images_from_generator_output(out, self.pixel_range),
                      self.run_dir / "samples" / f"epoch-{epoch:04d}_label{label}.png")


def _truncate_log(log: Path, last_epoch: int) -> None:
    if not log.exists():
        return
    with open(log, newline="") as fh:
        # A row cut off by a kill mid-append has empty fields: it is dropped with the rest.
        rows = [r for r in csv.DictReader(fh)
                if all(r.get(f) not in (None, "") for f in LOG_FIELDS) and int(r["epoch"]) <= last_epoch]
    with atomic_path(log) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)


def _resolve_records(config: Config, data, manifest):
    if manifest is not None:
        return read_manifest(manifest)
    records, class_names, _, _ = imbalanced_from_path(default_data_path(data), config.data)
    return records, class_names


def default_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def train_gan(kind: str, config: Config, out_dir, alpha: float | None = 0.5, data=None, manifest=None,
              verbose: int = 1, strategy: tf.distribute.Strategy | None = None, max_epochs: int | None = None) -> dict:
    """Trains (or resumes) one GAN and exports its generator.

    Args:
        kind: str. "dcgan" (minority-class train images only, paper 4.4) or "cdcgan" (all of
            train with true labels, paper 4.5).
        config: Config. The preset.
        out_dir: folder holding the run directory and `models/`.
        alpha: float. cDCGAN fake-label weight, in [0, 1]; ignored for DCGAN. Defaults to 0.5.
        data: dataset path (imbalanced with the preset's data settings); default the bundled
            sample. Exclusive with `manifest`.
        manifest: manifest.csv from `data prepare`.
        verbose: int. Keras progress bar (1) or silent (0). Defaults to 1.
        strategy: tf.distribute.Strategy. Defaults to MirroredStrategy over several GPUs, else none.
        max_epochs: int or None. Stop after this epoch this time (the run stays resumable);
            used to simulate an interruption. Defaults to None.

    Returns:
        dict with run_dir, export_dir, epochs, wall_s and the last epoch's metrics.
    """
    if kind not in ("dcgan", "cdcgan"):
        raise KerasCXRError(f"`model` must be 'dcgan' or 'cdcgan'. Received: model={kind!r}")
    if kind == "cdcgan" and (alpha is None or not 0.0 <= alpha <= 1.0):
        raise KerasCXRError(f"`alpha` must be in [0, 1]. Received: alpha={alpha}")
    alpha = 0.5 if kind == "dcgan" else float(alpha)
    g = config.gan
    name = run_name(kind, alpha)
    out_dir = Path(out_dir)
    run_dir = out_dir / name
    export_dir = out_dir / "models" / name / "1"
    epochs = g.dcgan_epochs if kind == "dcgan" else g.cdcgan_epochs

    records, class_names = _resolve_records(config, data, manifest)
    train = [r for r in records if r.split == "train"]
    counts = [sum(1 for r in train if r.label == c) for c in (0, 1)]
    source = manifest or default_data_path(data)
    if kind == "cdcgan" and min(counts) == 0:
        raise KerasCXRError(f"a cDCGAN learns both labels, but the train split of {source} has "
                            f"{counts[0]} {class_names[0]} and {counts[1]} {class_names[1]} images")
    minority = int(np.argmin(counts))  # which class is the minority is read from the data
    if kind == "dcgan":
        train = [r for r in train if r.label == minority]
    steps = len(train) // g.batch_size
    if steps == 0:
        raise KerasCXRError(
            f"{name}: {len(train)} training images is fewer than `batch_size`={g.batch_size}; "
            f"lower it with --set gan.batch_size=N"
        )
    # Only what shapes the GAN identifies the run: classifier settings may change freely.
    gan_preset = {k: v for k, v in config.to_dict().items() if k != "classifier"}
    run_config = {"kind": kind, "alpha": alpha if kind == "cdcgan" else None, "preset": gan_preset,
                  "generated_label": minority if kind == "dcgan" else None, "class_names": list(class_names),
                  "train_files": len(train), "train_counts": counts}
    # Everything above only reads: bad input has written nothing. From here on, one writer.
    with run_lock(run_dir, what=f"train-gan {name}"):
        remove_stale_tmp(run_dir, run_dir / "checkpoints", run_dir / "samples", export_dir.parent)
        return _train_locked(kind, config, name, alpha, run_dir, export_dir, epochs, steps, train, class_names,
                             run_config, verbose, strategy, max_epochs)


def _train_locked(kind, config, name, alpha, run_dir, export_dir, epochs, steps, train, class_names, run_config,
                  verbose, strategy, max_epochs) -> dict:
    g = config.gan
    config_path = run_dir / "config.json"
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if _run_identity(previous) != _run_identity(run_config):
            raise KerasCXRError(
                f"{run_dir} was started with a different configuration ({config_path}); "
                f"use another --out, or delete {run_dir} to start over"
            )
    else:
        write_manifest(run_dir / "manifest.csv", train, class_names)
        write_json(config_path, run_config)
    meta = _export_meta(run_config, name, epochs, g.max_images)

    done_path = run_dir / "done.json"
    if done_path.exists():
        done = json.loads(done_path.read_text())
        if not (export_dir / "saved_model.pb").exists():
            gan = build_gan(kind, config, alpha)
            if restore_latest(gan, run_dir, name) != epochs:
                raise KerasCXRError(f"{name} is marked done but its final checkpoint is missing from "
                                    f"{run_dir / 'checkpoints'}; delete {done_path} to retrain")
            export_generator(gan.generator, export_dir, meta)
        print(f"{name}: already trained ({done['epochs']} epochs); generator at {export_dir}")
        return done

    images, labels = load_images(train, config.image_size)
    strategy = strategy or default_strategy()
    with strategy.scope():
        gan = build_gan(kind, config, alpha)
    start = restore_latest(gan, run_dir, name)
    if start:
        print(f"{name}: resuming after epoch {start} of {epochs}")
    _truncate_log(run_dir / "log.csv", start)
    stop = min(epochs, max_epochs) if max_epochs else epochs
    t0 = time.perf_counter()
    guard = DivergenceGuard(g.max_loss)
    fixed = np.random.default_rng(g.seed).standard_normal((g.sample_grid, g.latent_dim)).astype("float32")
    epoch_end = EpochEnd(run_dir, guard, fixed, kind == "cdcgan", g.pixel_range, g.keep_checkpoints, steps * g.batch_size)
    if start < stop:
        ds = real_batches(images, labels, g.batch_size // 2, start * steps, stop * steps, g.seed, g.pixel_range)
        callbacks = [guard, epoch_end,
                     keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False)]
        gan.fit(ds, epochs=stop, initial_epoch=start, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose, shuffle=False)
    if guard.diverged is not None:
        epoch, batch, bad = guard.diverged
        last = _checkpoints(run_dir)
        raise GANDivergedError(
            f"{name} diverged at epoch {epoch}, step {batch} ({', '.join(f'{k}={v}' for k, v in bad.items())}); "
            f"last good checkpoint: {last[-1] if last else 'none'}. Try a lower --set gan.learning_rate "
            f"(both reference codes use 2e-4) in a new --out"
        )
    wall = time.perf_counter() - t0
    result = {"run_dir": str(run_dir), "export_dir": str(export_dir), "epochs": stop, "wall_s": round(wall, 1)}
    if stop < epochs:
        result["epochs_total"] = epochs
        return result  # interrupted on purpose (max_epochs): resumable, not done
    with open(run_dir / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    result["last_epoch"] = {k: (int(v) if k == "epoch" else float(v)) for k, v in rows[-1].items()} if rows else {}
    export_generator(gan.generator, export_dir, meta)
    write_json(done_path, result)
    return result


def _export_meta(run_config: dict, name: str, epochs: int, max_images: int) -> dict:
    p = run_config["preset"]
    return {"name": name, "kind": run_config["kind"], "alpha": run_config["alpha"],
            "generated_label": run_config["generated_label"], "class_names": run_config["class_names"],
            "minority_label": int(np.argmin(run_config["train_counts"])),  # `generate`'s default label
            "image_size": p["image_size"], "latent_dim": p["gan"]["latent_dim"],
            "pixel_range": p["gan"]["pixel_range"], "preset": p["name"], "epochs": epochs,
            "max_images": max_images}
