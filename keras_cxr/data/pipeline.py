"""tf.data from a manifest: decode once, then shuffle / augment / batch / prefetch in the graph.

Decoding goes through Pillow (keras_cxr.data.images), the same decoder that validated the files,
so 16-bit, RGBA, CMYK and palette images come out exactly as `data summary` saw them. Decoded
images are held as uint8 (128x128: 16 KiB each, 96 MB for all of Kermany), which is the cache:
every epoch after that is pure tensor work. Augmentation is per batch, vectorised, and seeded
with stateless ops, so a seed fixes every flip, angle and crop of every epoch.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from keras_cxr.data.datasets import Record
from keras_cxr.data.images import read_grayscale, read_npz_image
from keras_cxr.errors import KerasCXRError


def read_record(record: Record, size: int) -> np.ndarray:
    """Pixels of one manifest record as uint8 (size, size)."""
    if ".npz#" in record.file:
        path, where = record.file.rsplit("#", 1)
        split, index = where.split("/")
        return read_npz_image(path, split, int(index), size)
    return read_grayscale(record.file, size)


def load_images(records: list[Record], size: int, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decodes and resizes records in parallel threads.

    Returns:
        (uint8 array [N, size, size], int32 labels [N]).
    """
    if not records:
        raise KerasCXRError("no images to load (empty split)")
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        images = list(pool.map(lambda r: read_record(r, size), records))
    return np.stack(images), np.array([r.label for r in records], dtype=np.int32)


def to_float(images_uint8: tf.Tensor, pixel_range: str = "0_1") -> tf.Tensor:
    """uint8 [..., H, W] -> float32 [..., H, W, 1] in [0, 1] or [-1, 1]."""
    x = tf.cast(images_uint8, tf.float32)[..., tf.newaxis] / 255.0
    return x * 2.0 - 1.0 if pixel_range == "-1_1" else x


def _rotation_transforms(angles: tf.Tensor, height: int, width: int) -> tf.Tensor:
    # Projective transforms [B, 8] mapping each output pixel to its input pixel, rotating
    # about the image centre (the same maths as Keras' RandomRotation).
    cos, sin = tf.cos(angles), tf.sin(angles)
    w, h = float(width - 1), float(height - 1)
    x_off = (w - (cos * w - sin * h)) / 2.0
    y_off = (h - (sin * w + cos * h)) / 2.0
    zeros = tf.zeros_like(angles)
    return tf.stack([cos, -sin, x_off, sin, cos, y_off, zeros, zeros], axis=1)


def augment_batch(
    images: tf.Tensor, seed: tf.Tensor, max_rotation_deg: float = 10.0, crop_fraction: float = 0.9
) -> tf.Tensor:
    """Random horizontal flip, rotation and crop (resized back) of a float batch [B, H, W, 1].

    Args:
        images: float32 [B, H, W, 1].
        seed: int tensor of shape [2], the stateless seed of this batch.
        max_rotation_deg: float. Angles are uniform in +-this. Defaults to 10.
        crop_fraction: float. Side of the random crop relative to the image. Defaults to 0.9.
    """
    b = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    s_flip, s_rot, s_crop = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    flip = tf.random.stateless_uniform([b], s_flip) < 0.5
    images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if max_rotation_deg > 0:
        max_rad = max_rotation_deg * math.pi / 180.0
        angles = tf.random.stateless_uniform([b], s_rot, -max_rad, max_rad)
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=_rotation_transforms(angles, height, width),
            output_shape=[height, width],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )
    if crop_fraction < 1:
        offsets = tf.random.stateless_uniform([b, 2], s_crop, 0.0, 1.0 - crop_fraction)
        boxes = tf.concat([offsets, offsets + crop_fraction], axis=1)  # y1, x1, y2, x2
        images = tf.image.crop_and_resize(images, boxes, tf.range(b), [height, width])
    return images


def parallel_calls() -> int:
    """Threads that prepare tf.data batches, and batches prefetched: as many as tf.data picks.

    One thread against this, in alternating arms of one run, gave the same batches and numbers and
    no speed difference outside the noise on a 2-core CPU host
    (experiments/benchmarks/results/input_parallelism.md).
    """
    return tf.data.AUTOTUNE


def pipeline_options() -> tf.data.Options:
    """Options of every training and evaluation pipeline: the tf.data autotuner off.

    With it on, the first batch of one epoch in three or so waited 5-21 s using almost no CPU
    (a quick classifier epoch takes 13 s): a new epoch's iterator waited for the autotuner's
    thread, which wakes at a period that doubles up to a minute. With it off, no epoch waited,
    and the batches are the same: the autotuner sets only parallelism and buffer sizes, never the
    order (`deterministic=True` everywhere). Measured in one run, arm against arm:
    experiments/benchmarks/results/input_parallelism.md.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def augment_and_batch(
    ds: tf.data.Dataset,
    batch_size: int = 32,
    seed: int = 0,
    pixel_range: str = "0_1",
    augment: bool = True,
    max_rotation_deg: float = 10.0,
    crop_fraction: float = 0.9,
) -> tf.data.Dataset:
    """Batches an unbatched (uint8 image [H, W], label[, ...]) dataset, scales it to float
    [B, H, W, 1] and, if `augment`, flips / rotates / crops each batch with stateless seeds."""
    threads = parallel_calls()
    ds = ds.batch(batch_size, num_parallel_calls=threads, deterministic=True)

    def prepare(batch, batch_seed=None):
        x = to_float(batch[0], pixel_range)
        if batch_seed is not None:
            x = augment_batch(x, batch_seed, max_rotation_deg, crop_fraction)
            x = tf.clip_by_value(x, -1.0 if pixel_range == "-1_1" else 0.0, 1.0)
        return (x, *batch[1:])

    if augment:
        # One fresh seed pair per batch, re-drawn every epoch, reproducible from `seed`.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: prepare(batch, s), num_parallel_calls=threads, deterministic=True)
    else:
        ds = ds.map(lambda *batch: prepare(batch), num_parallel_calls=threads, deterministic=True)
    return ds.prefetch(threads).with_options(pipeline_options())


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 32,
    training: bool = True,
    seed: int = 0,
    pixel_range: str = "0_1",
    augment: bool | None = None,
    max_rotation_deg: float = 10.0,
    crop_fraction: float = 0.9,
) -> tf.data.Dataset:
    """A (images float32 [B, H, W, 1], labels int32 [B]) dataset over in-memory uint8 images.

    Args:
        images: uint8 [N, H, W]. From `load_images`.
        labels: int32 [N].
        batch_size: int. Defaults to 32 (paper 4.1).
        training: bool. Shuffle each epoch (and augment, unless `augment` says otherwise).
        seed: int. Fixes shuffle order and augmentation of every epoch. Defaults to 0.
        pixel_range: str. "0_1" or "-1_1". Defaults to "0_1".
        augment: bool or None. Defaults to `training`.
    """
    augment = training if augment is None else augment
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return augment_and_batch(ds, batch_size, seed, pixel_range, augment, max_rotation_deg, crop_fraction)
