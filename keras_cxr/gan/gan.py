"""One keras.Model for DCGAN and cDCGAN, trained by the reference codes' three updates per step."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.diffaugment import diff_augment
from keras_cxr.gan.settings import check_alpha
from keras_cxr.gan.transition import check_steps, gates, label_weight

# Stateless-seed "purposes": each random draw of a step gets its own stream.
_FAKE_LATENT, _FAKE_LABEL, _G_LATENT, _G_LABEL = 1, 2, 3, 4
_AUG_REAL, _AUG_FAKE, _AUG_G = 5, 6, 7


def sample_labels(n, alpha: float, seed, majority_label: int = 0) -> tf.Tensor:
    """int32 [n] labels, each the majority class's with probability alpha (paper 4.5, "weighted
    cDCGAN": there label 0, healthy, is the majority, so alpha = P(label = 0))."""
    majority = tf.random.stateless_uniform([n], seed) < alpha
    return tf.where(majority, majority_label, 1 - majority_label)


@keras.saving.register_keras_serializable(package="keras_cxr")
class GAN(keras.Model):
    """DCGAN (`conditional=False`) or cDCGAN with label weight `alpha` (paper 4.4-4.5).

    Each `train_step` receives a half batch of real images (and labels) and does exactly the
    reference codes' three updates: D on the real half batch (target 1), D on a half batch of
    fakes (target 0), then G on a full batch of latents (target 1) through D, with only G's
    weights updated. Explicit tapes and two optimizers replace the codes' `d.trainable = False`
    + combined model, which Keras 3 does not honour reliably.

    Randomness: latents and fake labels are stateless draws keyed on (seed, step, replica), so a
    resumed run continues the same random stream and every replica of a MirroredStrategy draws
    different latents (a SeedGenerator variable would give all replicas the same noise).

    Args:
        generator: keras.Model. From `build_generator`.
        discriminator: keras.Model. From `build_discriminator`.
        latent_dim: int. Defaults to 100.
        conditional: bool. Feed labels to G and D. Defaults to False.
        alpha: float. A cDCGAN's probability that a generated label is the majority class's, in
            [0, 1] (the paper's meaning, where the majority is label 0, healthy); a DCGAN has
            none (None). Defaults to 0.5 (Brownlee's uniform labels).
        seed: int. Seed of latents, fake labels and augmentations. Defaults to 0.
        majority_label: int. The train split's majority class (0 or 1). Defaults to 0.
        diffaugment: tuple of str. DiffAugment policies applied to every image D sees, real or
            generated, in order (`keras_cxr.gan.diffaugment`). Defaults to () (none: the paper).
        ema: float. Decay of the moving average of G's weights kept in `ema_generator` after
            every step, warmed up as TensorFlow's ExponentialMovingAverage with `num_updates`
            does: step t uses min(ema, (1 + t) / (10 + t)), so G's random initial weights do not
            linger in the average of a short run. 0 keeps none. Defaults to 0 (the paper).
        transition: (start, end) or None. Transitional conditioning (`keras_cxr.gan.transition`):
            before each step, every `ConditionGate` of G, D (and the average) is set to the
            label weight of the step's G update n (from 1): 0 up to n = `start`, rising to 1 at
            n = `end`. Needs G and
            D built with `transitional=True`. Defaults to None (the labels always fully in).
    """

    def __init__(self, generator, discriminator, latent_dim=100, conditional=False, alpha=0.5, seed=0,
                 majority_label=0, diffaugment=(), ema=0.0, transition=None, **kwargs):
        super().__init__(**kwargs)
        if conditional:  # a DCGAN draws no labels: it has no alpha
            check_alpha(alpha)
        if latent_dim < 1:
            raise KerasCXRError(f"`latent_dim` must be >= 1. Received: latent_dim={latent_dim}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.conditional = bool(conditional)
        if majority_label not in (0, 1):
            raise KerasCXRError(f"`majority_label` must be 0 or 1. Received: majority_label={majority_label}")
        self.alpha = float(alpha) if conditional else None
        self.seed = int(seed)
        self.majority_label = int(majority_label)
        self.diffaugment = tuple(diffaugment)
        if not 0.0 <= float(ema) < 1.0:
            raise KerasCXRError(f"`ema` must be in [0, 1) (0: off). Received: ema={ema}")
        self.ema = float(ema)
        # A copy of G that starts equal to it and then trails it; it draws no random numbers,
        # so G and D train exactly as without it.
        self.ema_generator = None
        if self.ema:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
            self.ema_generator.trainable = False
        self.transition = None if transition is None else tuple(int(t) for t in transition)
        self._gates = gates(generator, discriminator, self.ema_generator)
        if self.transition is not None:
            check_steps(*self.transition)
            if not (self.conditional and self._gates):
                raise KerasCXRError("a transition fades in labels: it needs a cDCGAN whose G and D were built "
                                    f"with transitional=True. Received: transition={transition}")
        self.label_weight_tracker = keras.metrics.Mean(name="label_weight") if self.transition else None
        self.d_loss_real_tracker = keras.metrics.Mean(name="d_loss_real")
        self.d_loss_fake_tracker = keras.metrics.Mean(name="d_loss_fake")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_acc_real_tracker = keras.metrics.Mean(name="d_acc_real")
        self.d_acc_fake_tracker = keras.metrics.Mean(name="d_acc_fake")
        # G and D arrive built; without this, fit under a distribution strategy would try to
        # build the GAN by calling it on a batch of real images.
        self.built = True

    def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    @property
    def metrics(self):
        trackers = [self.d_loss_real_tracker, self.d_loss_fake_tracker, self.g_loss_tracker,
                    self.d_acc_real_tracker, self.d_acc_fake_tracker]
        return trackers + ([self.label_weight_tracker] if self.label_weight_tracker is not None else [])

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "latent_dim": self.latent_dim, "conditional": self.conditional,
            "alpha": self.alpha, "seed": self.seed, "majority_label": self.majority_label,
            "diffaugment": list(self.diffaugment), "ema": self.ema,
            "transition": None if self.transition is None else list(self.transition),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)

    @property
    def sampler(self) -> keras.Model:
        """The generator whose images are tracked, shown and exported: the moving average when
        `ema` is on, else G itself."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, inputs, training=False):
        """Generates images: `inputs` is latent [B, latent_dim] (DCGAN) or [latent, label]."""
        return self.generator(inputs, training=training)

    # -- the algorithm --------------------------------------------------------------------

    def _step_seed(self, purpose: int) -> tf.Tensor:
        ctx = tf.distribute.get_replica_context()
        replica = ctx.replica_id_in_sync_group if ctx is not None else 0
        seed = tf.constant([self.seed, 0], dtype=tf.int64)
        for salt in (tf.cast(self.g_optimizer.iterations, tf.int64), tf.cast(replica, tf.int64), purpose):
            seed = tf.random.experimental.stateless_fold_in(seed, salt)
        return seed

    def _generate(self, n, latent_purpose, label_purpose, training):
        latent = tf.random.stateless_normal([n, self.latent_dim], self._step_seed(latent_purpose))
        if not self.conditional:
            return self.generator(latent, training=training), None
        labels = sample_labels(n, self.alpha, self._step_seed(label_purpose), self.majority_label)
        return self.generator([latent, labels], training=training), labels

    def _discriminate(self, images, labels, augment_purpose: int, training=True):
        if self.diffaugment:  # DiffAugment: every image D sees, real or fake, in D's and G's updates
            images = diff_augment(images, self.diffaugment, self._step_seed(augment_purpose))
        return self.discriminator([images, labels] if self.conditional else images, training=training)

    def _loss(self, target_value, probs):
        # Per-replica mean, scaled so the all-reduced (summed) gradient is the global mean.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        targets = tf.fill(tf.shape(probs), float(target_value))
        return self.loss_fn(targets, probs), 1.0 / replicas

    def _update_discriminator(self, images, labels, target: float, augment_purpose: int):
        """One Adam step of D towards `target` on these images. Returns (loss, D's outputs)."""
        with tf.GradientTape() as tape:
            probs = self._discriminate(images, labels, augment_purpose)
            loss, scale = self._loss(target, probs)
            scaled = self.d_optimizer.scale_loss(loss * scale)  # loss scaling under mixed_float16
        grads = tape.gradient(scaled, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        return loss, probs

    def update_discriminator_real(self, real_images, real_labels):
        """Update 1: D on a half batch of real images, target 1. Returns (loss, D(x))."""
        return self._update_discriminator(real_images, real_labels, 1.0, _AUG_REAL)

    def update_discriminator_fake(self, n):
        """Update 2: D on n fakes (labels: the majority's with probability alpha), target 0. Returns (loss, D(G(z)))."""
        fakes, fake_labels = self._generate(n, _FAKE_LATENT, _FAKE_LABEL, training=False)
        return self._update_discriminator(fakes, fake_labels, 0.0, _AUG_FAKE)

    def update_generator(self, n):
        """Update 3: G on n latents, target 1, through D; only G's weights move. Returns loss."""
        with tf.GradientTape() as tape:
            generated, gen_labels = self._generate(n, _G_LATENT, _G_LABEL, training=True)
            p_gen = self._discriminate(generated, gen_labels, _AUG_G)
            loss, scale = self._loss(1.0, p_gen)
            scaled = self.g_optimizer.scale_loss(loss * scale)
        grads = tape.gradient(scaled, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        return loss

    def update_ema(self):
        """After G's update t: every weight of the average (BatchNorm statistics included) moves
        towards G's, avg <- d * avg + (1 - d) * w with d = min(ema, (1 + t) / (10 + t))."""
        t = tf.cast(self.g_optimizer.iterations, tf.float32)  # G's updates so far, this one included
        decay = tf.minimum(self.ema, (1.0 + t) / (10.0 + t))
        gate_ids = {id(v) for v in self._gates}
        for average, weight in zip(self.ema_generator.weights, self.generator.weights):
            if id(average) in gate_ids:  # a label weight is set, not averaged (set_label_weight)
                continue
            average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))

    def set_label_weight(self):
        """Transitional conditioning: every gate of G, D and the average <- lambda of this step's
        G update (its number, counting from 1), so the step numbered `end` is the first with all
        of the label. Returns lambda."""
        weight = label_weight(self.g_optimizer.iterations + 1, *self.transition)
        for gate in self._gates:
            gate.assign(weight)
        return weight

    def train_step(self, data):
        real_images, real_labels = data
        half = tf.shape(real_images)[0]
        if self.transition is not None:
            self.label_weight_tracker.update_state(self.set_label_weight())
        elif self._gates:  # traced once: a gated GAN trained without its schedule would hold lambda fixed
            raise KerasCXRError("this GAN's G and D have label gates but no transition schedule; build it with "
                                "build_gan(..., steps_per_epoch=N) to train it")
        d_loss_real, p_real = self.update_discriminator_real(real_images, real_labels)
        d_loss_fake, p_fake = self.update_discriminator_fake(half)
        g_loss = self.update_generator(2 * half)
        if self.ema_generator is not None:
            self.update_ema()

        self.d_loss_real_tracker.update_state(d_loss_real)
        self.d_loss_fake_tracker.update_state(d_loss_fake)
        self.g_loss_tracker.update_state(g_loss)
        self.d_acc_real_tracker.update_state(tf.reduce_mean(tf.cast(p_real > 0.5, tf.float32)))
        self.d_acc_fake_tracker.update_state(tf.reduce_mean(tf.cast(p_fake <= 0.5, tf.float32)))
        return {m.name: m.result() for m in self.metrics}
