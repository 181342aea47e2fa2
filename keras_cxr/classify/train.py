"""One (method, seed) cell: rebalance, train the classifier, test. `evaluate.cells` writes its JSON."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np

from keras_cxr.classify.backbones import backbone, build_classifier
from keras_cxr.classify.datasets import Splits, eval_dataset, train_dataset
from keras_cxr.config import Config
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.export import read_meta
from keras_cxr.identity import folder_sha256
from keras_cxr.io_utils import atomic_path
from keras_cxr.kernels import resolve
from keras_cxr.kernels.adam import FusedAdam
from keras_cxr.methods import get_method
from keras_cxr.metrics import binary_metrics
from keras_cxr.precision import dtype_policy
from keras_cxr.provenance import provenance


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


def _generator_record(rs) -> dict | None:
    """Which generator a GAN cell's images came from, and what it was asked for."""
    if rs.generated is None:
        return None
    meta = read_meta(rs.generated.path)
    record = {"path": rs.generated.path, "kind": meta.get("kind"), "alpha": meta.get("alpha"),
              "label": rs.generated.label, "count": rs.generated.count, "seed": rs.generated.seed,
              "sha256": folder_sha256(rs.generated.path), "export_epoch": meta.get("export_epoch")}
    if "gan_seed" in meta:  # a generator of its own seed (`classifier.generator_per_seed`)
        record["gan_seed"] = meta["gan_seed"]
    return record


class ClassifierSession:
    """One compiled classifier reused by every cell of a matrix.

    Tracing ResNet18's train, validation and predict functions costs ~15 s on a CPU, more than
    training a small cell. Each cell instead resets the model to the seeded initial weights a
    fresh model would get, and the optimizer to its initial state, so results equal those of a
    freshly built model while the traced functions are reused.
    """

    def __init__(self, config: Config, imagenet_weights=None):
        c = config.classifier
        self.config, self.imagenet_weights = config, imagenet_weights
        self.kernels = resolve(config.kernels)
        if imagenet_weights and backbone(c.backbone).load_imagenet is None:
            raise KerasCXRError(f"backbone {c.backbone!r} has no ImageNet weight loader; use --weights scratch")
        with dtype_policy(c.precision):  # compile wraps Adam in loss scaling under mixed_float16
            self.model = build_classifier(config, kernels=self.kernels).model
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
        keras.utils.set_random_seed(seed)
        if seed not in self._initial:
            fresh = build_classifier(self.config, kernels=self.kernels).model
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


def train_classifier(method: str, seed: int, config: Config, splits: Splits, out_dir, models_dir=None,
                     imagenet_weights=None, verbose: int = 0, session: ClassifierSession | None = None) -> dict:
    """Trains and tests one cell; writes its weights to `<out>/weights/<method>__seed<S>.weights.h5`.

    Args:
        session: ClassifierSession. Reuse a compiled model across cells. Defaults to a new one.

    Returns:
        The cell's result dict (metrics, counts, config, timings, weights path), which
        `keras_cxr.evaluate.cells` writes as the cell's JSON.
    """
    c = config.classifier
    t0 = time.perf_counter()
    # Every random draw of the cell (resampling, shuffle, augmentation, weight init, generated
    # latents) is keyed on `seed` here, before any of them, so a cell's numbers never depend on
    # the cells run before it in the process (resume, --methods order, shards). Methods share
    # the seed's initial weights: paired comparisons differ only by the method.
    keras.utils.set_random_seed(seed)
    images, labels = splits.train
    rs = get_method(method, config.gan.alphas).resampler(seed, config, models_dir).fit_resample(labels, images)
    resample_s = time.perf_counter() - t0
    ds, n_train = train_dataset(splits, rs, c.batch_size, seed, config.image_size, c.max_rotation_deg, c.crop_fraction)
    dataset_s = time.perf_counter() - t0 - resample_s
    session = session or ClassifierSession(config, imagenet_weights)
    model = session.reset(seed)
    best, epoch_times = KeepBestWeights(), EpochTimes()
    t1 = time.perf_counter()
    history = model.fit(ds, validation_data=eval_dataset(*splits.val, c.batch_size), epochs=c.epochs,
                        callbacks=[best, epoch_times], verbose=verbose, shuffle=False)
    train_s = time.perf_counter() - t1
    scores, metrics = _test(model, splits, c.batch_size)
    val_scores = _scores(model, splits.val, c.batch_size)[0]  # what a threshold control tunes on
    test_s = time.perf_counter() - t1 - train_s
    weights_path = Path(out_dir) / "weights" / f"{method}__seed{seed}.weights.h5"
    session.save_weights(weights_path)
    weights_s = time.perf_counter() - t1 - train_s - test_s
    return {
        "method": method, "seed": seed, "preset": config.name, "image_size": config.image_size,
        "kernels": config.kernels,
        # What `kernels` resolved to on this machine: the paths differ in float round-off only.
        "kernels_used": sorted(k for k, on in dataclasses.asdict(session.kernels).items() if on),
        "weights_init": "imagenet" if imagenet_weights else "scratch",
        "metrics": metrics,
        "test_scores": [round(float(v), 6) for v in scores],  # P(pneumonia) per test image, manifest order
        "val_scores": [round(float(v), 6) for v in val_scores],  # the same for validation
        "train_counts_before": np.bincount(labels, minlength=2).tolist(),  # before resampling
        "train_counts": rs.class_counts(labels), "train_images_per_epoch": n_train,
        "generator": _generator_record(rs),
        "class_weight": rs.class_weight, "best_epoch": best.best_epoch, "best_val_accuracy": best.best,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "timings_s": {"resample": round(resample_s, 2), "dataset": round(dataset_s, 2), "train": round(train_s, 2),
                      "epochs": epoch_times.epochs, "test": round(test_s, 2), "weights": round(weights_s, 2),
                      "total": round(time.perf_counter() - t0, 2)},
        "weights": str(weights_path), "classifier_config": config.to_dict()["classifier"],
        "provenance": provenance(),
    }


def _scores(model, split: tuple, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(P(pneumonia), the two sigmoid outputs) per image of a split, manifest order."""
    probs = model.predict(eval_dataset(*split, batch_size), verbose=0)
    return probs[:, 1] / np.maximum(probs.sum(axis=1), 1e-12), probs  # two independent sigmoids -> P(pneumonia)


def _test(model, splits: Splits, batch_size: int) -> tuple[np.ndarray, dict]:
    """P(pneumonia) per test image, and the metrics of the argmax predictions."""
    scores, probs = _scores(model, splits.test, batch_size)
    return scores, binary_metrics(splits.test[1], probs.argmax(axis=1), scores)
