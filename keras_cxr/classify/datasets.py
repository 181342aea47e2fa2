"""The classifier's tf.data sets: rebalanced train (real + synthetic images, held in memory,
one-hot labels, per-sample loss weights), val and test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_cxr.data import read_manifest
from keras_cxr.data.pipeline import augment_and_batch, load_images
from keras_cxr.errors import KerasCXRError
from keras_cxr.resample import ResampledSet
from keras_cxr.resample.gan import generated_stream


@dataclass
class Splits:
    """Decoded uint8 images and labels of one manifest, loaded once and shared by every cell."""

    class_names: tuple
    train: tuple
    val: tuple
    test: tuple

    @classmethod
    def load(cls, manifest, image_size: int) -> "Splits":
        records, names = read_manifest(manifest)
        parts = {}
        for split in ("train", "val", "test"):
            rs = [r for r in records if r.split == split]
            missing = [names[c] for c in (0, 1) if not any(r.label == c for r in rs)]
            if missing:
                raise KerasCXRError(f"manifest {manifest} has no {split} images of class {', '.join(missing)}; "
                                    f"the classifier needs both classes in train, val and test")
            parts[split] = load_images(rs, image_size)
        return cls(names, parts["train"], parts["val"], parts["test"])


def train_dataset(splits: Splits, rs: ResampledSet, batch_size: int, seed: int, image_size: int,
                  max_rotation_deg: float = 10.0, crop_fraction: float = 0.9) -> tuple[tf.data.Dataset, int]:
    """(x [B, H, W, 1] in [0, 1], one-hot y [B, 2], sample weight [B]) batches; returns (ds, images per epoch)."""
    images, labels = splits.train
    x = images[rs.indices]
    y = labels[rs.indices]
    if rs.synthetic_images is not None:
        x = np.concatenate([x, rs.synthetic_images])
        y = np.concatenate([y, rs.synthetic_labels])
    weights = np.ones(len(y), np.float32) if rs.class_weight is None else \
        np.array([rs.class_weight[int(c)] for c in y], np.float32)
    real = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, 2), weights))
    real = real.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    total = len(x)
    ds = real
    if rs.generated is not None:
        g = rs.generated
        w = 1.0 if rs.class_weight is None else rs.class_weight[g.label]
        # The generated set, made once per cell from the SavedModel and held as uint8 (a few MB):
        # streaming it through Python every epoch made the demo's cDCGAN cell fit in 29.6 s against
        # 15.1 s (experiments/benchmarks/results/generated_in_memory.md). Same images, same order.
        made = np.stack(list(generated_stream(g.path, g.label, g.count, g.seed, image_size)()))
        synthetic = tf.data.Dataset.from_tensor_slices(made).map(
            lambda img: (img, tf.one_hot(g.label, 2), tf.constant(w, tf.float32)))
        # Interleave real and generated images in a seeded random order with exact counts.
        choice = np.concatenate([np.zeros(len(x), np.int64), np.ones(g.count, np.int64)])
        order = tf.data.Dataset.from_tensor_slices(choice).shuffle(len(choice), seed=seed + 1, reshuffle_each_iteration=True)
        ds = tf.data.Dataset.choose_from_datasets([real, synthetic], order)
        total += g.count
        ds = ds.apply(tf.data.experimental.assert_cardinality(total))  # lets Keras count steps
    ds = augment_and_batch(ds, batch_size, seed, "0_1", True, max_rotation_deg, crop_fraction)
    return ds, total


def eval_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((images, tf.one_hot(labels, 2)))
    return augment_and_batch(ds, batch_size, augment=False)
