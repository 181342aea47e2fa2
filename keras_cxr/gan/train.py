"""The GAN as the paper trains it: `build_gan` (the preset's DCGAN or cDCGAN, compiled with the
paper's optimizers and loss), `real_batches` (the codes' random real half batches, seeded per
step) and `DivergenceGuard`. A resumable run around them (run folder, checkpoints, tracking,
export) is `keras_cxr.pipeline.gan_run`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_cxr.config import Config
from keras_cxr.data.pipeline import parallel_calls, pipeline_options, to_float
from keras_cxr.gan.discriminator import build_discriminator
from keras_cxr.gan.gan import GAN
from keras_cxr.gan.generator import build_generator
from keras_cxr.gan.settings import parse_policies
from keras_cxr.kernels import preset
from keras_cxr.kernels.adam import FusedAdam
from keras_cxr.precision import dtype_policy, for_precision, resolve


def build_gan(kind: str, config: Config, alpha: float | None = 0.5, majority_label: int = 0,
              steps_per_epoch: int | None = None) -> GAN:
    """The preset's DCGAN or cDCGAN, compiled with the paper's optimizers and BCE loss, on the
    preset's `kernels` (or those of an active `keras_cxr.kernels.use` scope).
    `majority_label`: the train split's majority class; a cDCGAN's alpha is its share of fake labels.
    `steps_per_epoch`: turns `gan.transition`'s epochs into G updates; without it a cDCGAN with a
    transition has its label gates but cannot train (restoring and exporting need no schedule)."""
    g = config.gan
    conditional = kind == "cdcgan"
    transitional = conditional and bool(g.transition)
    transition = tuple(e * steps_per_epoch for e in g.transition) if transitional and steps_per_epoch else None
    keras.utils.set_random_seed(g.seed)  # weight init
    precision = resolve(g.precision, "gan")
    with preset(config.kernels) as kernels, dtype_policy(precision):
        generator = build_generator(config.image_size, g.latent_dim, g.filters, conditional, embedding_dim=g.embedding_dim,
                                    upsample=g.upsample, transitional=transitional)
        discriminator = build_discriminator(config.image_size, g.filters, conditional, g.discriminator,
                                            embedding_dim=g.embedding_dim, head=g.discriminator_head,
                                            spectral_norm=g.spectral_norm, transitional=transitional)
        gan = GAN(generator, discriminator, g.latent_dim, conditional, alpha, g.seed, majority_label=majority_label,
                  diffaugment=parse_policies(g.diffaugment), ema=g.ema, transition=transition, name=f"{kind}_gan")

    def adam(learning_rate):
        return for_precision(FusedAdam(learning_rate, beta_1=g.beta_1, beta_2=g.beta_2, fused=kernels.fused_adam),
                             precision)

    gan.compile(
        d_optimizer=adam(g.learning_rate if g.d_learning_rate is None else g.d_learning_rate),  # TTUR when set
        g_optimizer=adam(g.learning_rate),
        loss_fn=keras.losses.BinaryCrossentropy(),
        jit_compile=g.jit_compile,
    )
    gan.d_optimizer.build(discriminator.trainable_variables)
    gan.g_optimizer.build(generator.trainable_variables)
    return gan


def real_batches(images: np.ndarray, labels: np.ndarray, half_batch: int, start_step: int,
                 end_step: int, seed: int, pixel_range: str, balanced: bool = False) -> tf.data.Dataset:
    """Half batches of real images drawn at random with replacement, as the codes'
    `randint(0, N, half_batch)` does, keyed on (seed, step) so a resumed run draws the same.

    `balanced` (`gan.real_sampling: balanced`, for a cDCGAN): half of each half batch from each
    label (label 1 gets the odd one out), so D sees as many real minority images as majority ones.
    """
    all_images, all_labels = tf.constant(images), tf.constant(labels, dtype=tf.int32)
    base = tf.constant([seed, 1], dtype=tf.int64)
    pools = [tf.constant(np.flatnonzero(labels == c), dtype=tf.int64) for c in (0, 1)] if balanced else None

    def uniform(key, count, n):
        return tf.random.stateless_uniform([count], key, 0, n, dtype=tf.int64)

    def draw(step):
        key = tf.random.experimental.stateless_fold_in(base, step)
        if not balanced:
            idx = uniform(key, half_batch, len(images))
        else:
            counts = (half_batch // 2, half_batch - half_batch // 2)
            idx = tf.concat([tf.gather(pool, uniform(tf.random.experimental.stateless_fold_in(key, c), k,
                                                     tf.size(pool, out_type=tf.int64)))
                             for c, (pool, k) in enumerate(zip(pools, counts))], axis=0)
        return to_float(tf.gather(all_images, idx), pixel_range), tf.gather(all_labels, idx)

    ds = tf.data.Dataset.range(start_step, end_step)
    threads = parallel_calls()
    ds = ds.map(draw, num_parallel_calls=threads, deterministic=True).prefetch(threads)
    return ds.with_options(pipeline_options())


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


