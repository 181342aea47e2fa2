"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable transforms are applied to every image D sees, real or generated,
in both the D and the G updates, so D cannot overfit a small training set while G still gets
gradients through the transform. Policies, as the authors' code defines them (images in
[-1, 1], NHWC):

- `color`: brightness (add U[-0.5, 0.5)), saturation (scale each pixel's deviation from its
  channel mean by U[0, 2); a no-op on one-channel X-rays, kept for RGB inputs), contrast (scale
  the deviation from the image mean by U[0.5, 1.5)).
- `translation`: shift by integers in [-s, s] pixels on each axis, s = round(size / 8), filling
  with zeros.
- `cutout`: zero one square of side round(size / 2) centred uniformly at random (clipped at the
  borders).

Draws are stateless: keyed on the caller's seed tensor, one per image, so a resumed run repeats
the same augmentations.
"""

from __future__ import annotations

import tensorflow as tf

from keras_cxr.gan.settings import DIFFAUGMENT_POLICIES


def _uniform(x, seed, salt, minval=0.0, maxval=1.0, shape=None):
    shape = shape or [tf.shape(x)[0], 1, 1, 1]
    return tf.random.stateless_uniform(shape, tf.random.experimental.stateless_fold_in(seed, salt),
                                       minval, maxval, dtype=x.dtype)


def brightness(x, seed):
    return x + _uniform(x, seed, 1, -0.5, 0.5)


def saturation(x, seed):
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    return (x - mean) * _uniform(x, seed, 2, 0.0, 2.0) + mean


def contrast(x, seed):
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * _uniform(x, seed, 3, 0.5, 1.5) + mean


def color(x, seed):
    return contrast(saturation(brightness(x, seed), seed), seed)


def _shift_axis(x, shift, axis: int):
    """out[..., i, ...] = x[..., i + shift, ...] along `axis` (1 or 2), zero outside the image."""
    size = tf.shape(x)[axis]
    pad = [[0, 0]] * 4
    pad[axis] = [1, 1]
    index = tf.clip_by_value(tf.range(size)[None] + shift + 1, 0, size + 1)  # 0 and size+1: the zero padding
    return tf.gather(tf.pad(x, pad), index, axis=axis, batch_dims=1)


def translation(x, seed, ratio: float = 0.125):
    n = tf.shape(x)[0]
    shift = tf.cast(tf.cast(tf.shape(x)[1], tf.float32) * ratio + 0.5, tf.int32)
    draws = [tf.random.stateless_uniform([n, 1], tf.random.experimental.stateless_fold_in(seed, salt),
                                         -shift, shift + 1, dtype=tf.int32) for salt in (4, 5)]
    return _shift_axis(_shift_axis(x, draws[0], 1), draws[1], 2)


def cutout(x, seed, ratio: float = 0.5):
    n, size = tf.shape(x)[0], tf.shape(x)[1]
    side = tf.cast(tf.cast(size, tf.float32) * ratio + 0.5, tf.int32)
    # As the authors' code: the centre is uniform over [0, size + 1 - side % 2).
    centres = [tf.random.stateless_uniform([n, 1], tf.random.experimental.stateless_fold_in(seed, salt),
                                           0, size + 1 - side % 2, dtype=tf.int32) for salt in (6, 7)]
    coords = tf.range(size)[None]
    inside = [(coords >= c - side // 2) & (coords < c - side // 2 + side) for c in centres]  # [n, size] each
    hole = inside[0][:, :, None] & inside[1][:, None, :]
    return x * tf.cast(~hole, x.dtype)[..., None]


_FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}
assert tuple(_FUNCTIONS) == DIFFAUGMENT_POLICIES


def diff_augment(x, policies: tuple[str, ...], seed):
    """x with each policy applied in order; `seed` is a stateless seed, shape [2] int64."""
    for i, name in enumerate(policies):
        x = _FUNCTIONS[name](x, tf.random.experimental.stateless_fold_in(seed, 100 + i))
    return x
