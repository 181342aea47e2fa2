"""Training the classifier: one compiled ResNet18 reused across runs (`ClassifierSession`), the
paper's best-validation-accuracy weights (`KeepBestWeights`) and per-epoch timings. One matrix
cell around them (resampling, testing, its record) is `keras_cxr.pipeline.train_cell`."""

from __future__ import annotations

import random
import time
from pathlib import Path

import keras
import numpy as np

from keras_cxr.classify.backbones import backbone, build_classifier
from keras_cxr.config import Config
from keras_cxr.errors import KerasCXRError
from keras_cxr.io_utils import atomic_path
from keras_cxr.kernels import preset, use
from keras_cxr.kernels.adam import FusedAdam
from keras_cxr.precision import dtype_policy, resolve


def seed_cell(seed: int) -> None:
    """Sets Python's, NumPy's and TensorFlow's global seeds to `seed`, as
    `keras.utils.set_random_seed` does, but keeps TensorFlow's kernel cache.

    `tf.random.set_seed` ends by clearing every cached kernel, so that stateful random ops run
    eagerly restart their streams; every traced function is then instantiated again on its next
    call. For the classifier's train, validation and predict functions that is about 3 s a cell on
    2 cores, half of a tiny cell (experiments/benchmarks/results/seed_cache.md). A cell runs no
    stateful random op: its shuffles and augmentation seeds are tf.data ops built after this call,
    which read their seed pair (global, op) from the global seed set here, and the rest is
    stateless or NumPy draws keyed on `seed`. So the cell's numbers are those after
    `keras.utils.set_random_seed` (tested: `test_seed_cell_matches_set_random_seed`, and the
    matrix identity check).
    """
    from tensorflow.python.eager import context  # the eager global seed has no public setter that keeps the cache

    random.seed(seed)
    np.random.seed(seed)
    ctx = context.context()
    if not (hasattr(ctx, "_seed") and hasattr(ctx, "_rng")):  # a TensorFlow whose context differs: the slow, sure way
        keras.utils.set_random_seed(seed)
        return
    ctx._seed, ctx._rng = seed, random.Random(seed)  # what context._set_global_seed does, less its cache clear


class KeepBestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation accuracy (paper 4.1), restored at
    the end of training; ties keep the earlier epoch."""

    def __init__(self):
        super().__init__()
        self.best, self.best_epoch, self.weights = -1.0, None, None

    def on_epoch_end(self, epoch, logs=None):
        acc = float(logs["val_accuracy"])
        if acc > self.best:
            self.best, self.best_epoch, self.weights = acc, epoch + 1, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


class EpochTimes(keras.callbacks.Callback):
    """Wall seconds of each epoch's training steps and of its validation, for the cell's record:
    where a cell's time goes (experiments/benchmarks/cell_profile.py reads it)."""

    def __init__(self):
        super().__init__()
        self.epochs: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._val = time.perf_counter(), 0.0

    def on_test_begin(self, logs=None):
        self._val_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._val += time.perf_counter() - self._val_start

    def on_epoch_end(self, epoch, logs=None):
        total = time.perf_counter() - self._start
        self.epochs.append({"train": round(total - self._val, 2), "val": round(self._val, 2)})


class ClassifierSession:
    """One compiled classifier reused by every cell of a matrix.

    Tracing ResNet18's train, validation and predict functions costs ~15 s on a CPU, more than
    training a small cell. Each cell instead resets the model to the seeded initial weights a
    fresh model would get, and the optimizer to its initial state, so results equal those of a
    freshly built model while the traced functions are reused.
    """

    def __init__(self, config: Config, imagenet_weights=None, callbacks: tuple = ()):
        """`callbacks`: Keras callbacks every cell's `fit` gets besides its own (a profiler, a
        progress display); they must not touch the model, or cells stop being reproducible."""
        c = config.classifier
        self.config, self.imagenet_weights, self.callbacks = config, imagenet_weights, tuple(callbacks)
        if imagenet_weights and backbone(c.backbone).load_imagenet is None:
            raise KerasCXRError(f"backbone {c.backbone!r} has no ImageNet weight loader; use --weights scratch")
        with preset(config.kernels) as kernels, dtype_policy(resolve(c.precision, "classifier")):  # (loss scaling under mixed_float16)
            self.kernels = kernels
            self.model = build_classifier(config).model
        self.model.compile(
            optimizer=FusedAdam(c.learning_rate, beta_1=c.beta_1, beta_2=c.beta_2, fused=self.kernels.fused_adam),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        self.model.optimizer.build(self.model.trainable_variables)
        self._optimizer_init = [v.numpy() for v in self.model.optimizer.variables]
        self._initial: dict[int, list] = {}  # seed -> initial weights: built once per seed (~0.5 s each)
        self._inference = None  # the uncompiled twin `save_weights` writes from, built once

    def reset(self, seed: int) -> keras.Model:
        """The model with seed `seed`'s initial weights (ImageNet body if given) and a fresh optimizer.

        The weights a fresh build under `set_random_seed(seed)` gets are built once per seed and
        kept: the matrix's methods share each seed's initial weights. Nothing a cell does after
        this draws from Keras' global random state (its shuffles, augmentation and generated
        latents are keyed on the seed), so a kept copy trains exactly as a new build would
        (tested: `test_reused_session_equals_fresh_model`)."""
        seed_cell(seed)
        if seed not in self._initial:
            keras.utils.set_random_seed(seed)  # Keras' initializers draw from its seed generator
            with use(self.kernels):
                fresh = build_classifier(self.config).model
            if self.imagenet_weights:
                backbone(self.config.classifier.backbone).load_imagenet(fresh, self.imagenet_weights)
            self._initial[seed] = fresh.get_weights()
        self.model.set_weights(self._initial[seed])
        for v, init in zip(self.model.optimizer.variables, self._optimizer_init):
            v.assign(init)
        return self.model

    def save_weights(self, path: Path) -> None:
        """Writes the model's weights from an uncompiled twin: a compiled model's save_weights also
        stores the Adam slots (twice the model's size), which inference and Grad-CAM never need."""
        if self._inference is None:
            self._inference = build_classifier(self.config).model
        self._inference.set_weights(self.model.get_weights())
        with atomic_path(path) as tmp:
            tmp_h5 = tmp.with_name(tmp.name + ".weights.h5")
            self._inference.save_weights(tmp_h5)
            tmp_h5.replace(tmp)
