"""The GAN train_step: alpha, label frequencies, and which weights each update moves."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cxr.config import load_preset
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan import GAN, build_discriminator, build_generator
from keras_cxr.gan.gan import sample_labels
from keras_cxr.gan.train import build_gan


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_unit_interval_is_an_error(alpha):
    g, d = build_generator(32, filters=4, conditional=True), build_discriminator(32, filters=4, conditional=True)
    with pytest.raises(KerasCXRError, match=rf"`alpha` must be in \[0, 1\]. Received: alpha={alpha}"):
        GAN(g, d, conditional=True, alpha=alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_label_frequency_follows_alpha(alpha):
    n = 20_000
    labels = sample_labels(n, alpha, tf.constant([7, 11], tf.int64)).numpy()
    zeros = np.sum(labels == 0)
    sd = np.sqrt(n * alpha * (1 - alpha))
    assert abs(zeros - n * alpha) <= 4 * sd + 1e-9  # binomial, 4 sigma
    assert set(np.unique(labels)) <= {0, 1}


def _weights(model):
    return [w.numpy().copy() for w in model.trainable_weights]


def _changed(before, model):
    return any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights))


@pytest.fixture(params=["dcgan", "cdcgan"])
def gan_and_batch(request):
    config = load_preset("tiny")
    gan = build_gan(request.param, config, alpha=0.3)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 1, (4, 32, 32, 1)).astype("float32"))
    labels = tf.constant([0, 1, 1, 0], tf.int32)
    return gan, images, labels


def test_discriminator_updates_leave_generator_untouched(gan_and_batch):
    gan, images, labels = gan_and_batch
    g0, d0 = _weights(gan.generator), _weights(gan.discriminator)
    gan.update_discriminator_real(images, labels)
    assert not _changed(g0, gan.generator) and _changed(d0, gan.discriminator)
    d1 = _weights(gan.discriminator)
    gan.update_discriminator_fake(4)
    assert not _changed(g0, gan.generator) and _changed(d1, gan.discriminator)


def test_generator_update_leaves_discriminator_untouched(gan_and_batch):
    gan, _, _ = gan_and_batch
    g0, d0 = _weights(gan.generator), _weights(gan.discriminator)
    gan.update_generator(8)
    assert _changed(g0, gan.generator)
    assert not _changed(d0, gan.discriminator)


def test_train_step_does_three_updates_and_reports_metrics(gan_and_batch):
    gan, images, labels = gan_and_batch
    logs = gan.train_step((images, labels))
    assert set(logs) == {"d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake"}
    assert int(gan.d_optimizer.iterations.numpy()) == 2  # D on reals, D on fakes
    assert int(gan.g_optimizer.iterations.numpy()) == 1
    assert all(np.isfinite(float(v)) for v in logs.values())


def test_gan_config_round_trip():
    gan = build_gan("cdcgan", load_preset("tiny"), alpha=0.75)
    again = GAN.from_config(gan.get_config())
    assert (again.alpha, again.conditional, again.latent_dim) == (0.75, True, 100)
    assert [layer.name for layer in again.generator.layers] == [layer.name for layer in gan.generator.layers]
    assert isinstance(keras.saving.get_registered_object("keras_cxr>GAN"), type)


@pytest.mark.parametrize("majority_label", [0, 1])
@pytest.mark.parametrize("alpha", [0.25, 0.75])
def test_alpha_is_the_share_of_majority_labels_in_either_label_order(alpha, majority_label):
    # Paper 4.5: alpha weights the majority class (there "normal", label 0). With NORMAL as the
    # minority (majority label 1) alpha 0.25 must still make 75% minority labels, not 25%.
    n = 20_000
    labels = sample_labels(n, alpha, tf.constant([7, 11], tf.int64), majority_label).numpy()
    share = np.mean(labels == majority_label)
    assert abs(share - alpha) <= 4 * np.sqrt(alpha * (1 - alpha) / n)


def test_majority_label_zero_draws_exactly_the_labels_of_the_paper_rule():
    # The paper's order (majority 0) keeps the earlier rule P(label = 0) = alpha draw for draw.
    seed = tf.constant([1, 2], tf.int64)
    u = tf.random.stateless_uniform([1000], seed).numpy()
    assert np.array_equal(sample_labels(1000, 0.3, seed, 0).numpy(), (u >= 0.3).astype(np.int32))
