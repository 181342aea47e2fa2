"""DiffAugment (Zhao et al. 2020): each policy does what the paper defines on a planted image,
gradients reach G through it, and `none` leaves the GAN step exactly as it was."""

import numpy as np
import pytest
import tensorflow as tf

from keras_cxr.config import load_preset
from keras_cxr.gan.settings import parse_policies
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.diffaugment import brightness, contrast, cutout, diff_augment, translation
from keras_cxr.gan.train import build_gan

SEED = tf.constant([3, 5], tf.int64)


def _planted(n=16, size=32):
    """Each image: zeros with one bright pixel at (10, 20) and a constant block elsewhere."""
    x = np.zeros((n, size, size, 1), np.float32)
    x[:, 10, 20, 0] = 1.0
    return tf.constant(x)


def test_policy_setting_is_parsed_and_checked():
    assert parse_policies("none") == () and parse_policies("translation,cutout") == ("translation", "cutout")
    for bad in ("flip", "color,color", "color,,cutout"):
        with pytest.raises(KerasCXRError, match=r"`gan.diffaugment` must be 'none' or a comma list.*Received: diffaugment="):
            parse_policies(bad)


def test_translation_moves_the_image_by_at_most_an_eighth_and_fills_with_zeros():
    x = _planted()
    y = translation(x, SEED).numpy()
    shift = int(32 * 0.125 + 0.5)  # 4 pixels
    moves = []
    for img in y[..., 0]:
        assert img.sum() == pytest.approx(1.0)  # the pixel moved, nothing else appeared
        (i,), (j,) = np.nonzero(img)
        moves.append((i - 10, j - 20))
        assert abs(i - 10) <= shift and abs(j - 20) <= shift
    assert len(set(moves)) > 4  # per-image shifts, not one for the batch
    # Content shifted out of the frame leaves zeros behind (no wrap-around).
    ones = translation(tf.ones((64, 32, 32, 1)), SEED).numpy()
    assert ones.min() == 0.0 and ones.max() == 1.0


def test_cutout_zeroes_one_square_of_half_the_side():
    y = cutout(tf.ones((32, 32, 32, 1)), SEED).numpy()[..., 0]
    for img in y:
        rows, cols = np.nonzero(img == 0)
        assert len(rows) > 0
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h <= 16 and w <= 16 and len(rows) == h * w  # one axis-aligned rectangle, clipped at the border
    assert max(int((img == 0).sum()) for img in y) == 16 * 16  # unclipped: exactly side 16


def test_brightness_adds_one_offset_per_image_and_contrast_keeps_the_mean():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (32, 16, 16, 1)).astype(np.float32))
    d = (brightness(x, SEED) - x).numpy()
    per_image = d.reshape(32, -1)
    assert np.allclose(per_image, per_image[:, :1], atol=1e-6)
    assert -0.5 <= per_image.min() and per_image.max() < 0.5 and per_image[:, 0].std() > 0.1
    y = contrast(x, SEED).numpy()
    xm = x.numpy().mean(axis=(1, 2, 3), keepdims=True)
    assert np.allclose(y.mean(axis=(1, 2, 3)), xm.ravel(), atol=1e-5)
    ratio = ((y - xm) / (x.numpy() - xm)).reshape(32, -1)
    assert np.allclose(ratio, ratio[:, :1], atol=1e-3) and 0.5 <= ratio.min() and ratio.max() < 1.5


def test_same_seed_same_augmentation_and_other_seed_another():
    x = _planted()
    policies = ("color", "translation", "cutout")
    a, b = diff_augment(x, policies, SEED).numpy(), diff_augment(x, policies, SEED).numpy()
    c = diff_augment(x, policies, tf.constant([3, 6], tf.int64)).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("kind", ["dcgan", "cdcgan"])
def test_gradients_reach_the_generator_through_every_policy(kind):
    config = load_preset("tiny", ["gan.diffaugment=color,translation,cutout"])
    gan = build_gan(kind, config, alpha=0.5)
    with tf.GradientTape() as tape:
        generated, labels = gan._generate(8, 3, 4, training=True)
        p = gan._discriminate(generated, labels, 7)
        loss = tf.reduce_mean(p)
    grads = tape.gradient(loss, gan.generator.trainable_weights)
    assert all(g is not None for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0


def _two_steps(diffaugment: str):
    config = load_preset("tiny", [f"gan.diffaugment={diffaugment}"])
    gan = build_gan("cdcgan", config, alpha=0.5)
    rng = np.random.default_rng(1)
    images = tf.constant(rng.uniform(0, 1, (4, 32, 32, 1)).astype(np.float32))
    labels = tf.constant([0, 1, 1, 0], tf.int32)
    for _ in range(2):
        gan.train_step((images, labels))
    return [w.numpy() for w in gan.generator.weights + gan.discriminator.weights]


def test_none_is_deterministic_and_a_policy_changes_the_step():
    none_a, none_b = _two_steps("none"), _two_steps("none")
    assert all(np.array_equal(a, b) for a, b in zip(none_a, none_b))
    moved = _two_steps("translation")
    assert any(not np.array_equal(a, b) for a, b in zip(none_a, moved))
