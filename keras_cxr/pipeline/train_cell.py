"""One matrix cell trained and tested: the method's resampler on the real train split, the
classifier (`keras_cxr.classify.train.ClassifierSession`) fitted with the best-validation
weights kept, its test and validation scores, its weights file and its record."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from keras_cxr.classify.datasets import Splits, eval_dataset, train_dataset
from keras_cxr.classify.train import ClassifierSession, EpochTimes, KeepBestWeights, seed_cell
from keras_cxr.config import Config
from keras_cxr.gan.record import GeneratorRecord
from keras_cxr.identity import folder_sha256
from keras_cxr.methods import get_method
from keras_cxr.metrics import binary_metrics
from keras_cxr.pipeline.provenance import provenance


def _generator_record(rs) -> dict | None:
    """Which generator a GAN cell's images came from, and what it was asked for."""
    if rs.generated is None:
        return None
    g = GeneratorRecord.read(rs.generated.path)
    record = {"path": rs.generated.path, "kind": g.kind, "alpha": g.alpha,
              "label": rs.generated.label, "count": rs.generated.count, "seed": rs.generated.seed,
              "sha256": folder_sha256(rs.generated.path), "export_epoch": g.export_epoch}
    if g.gan_seed is not None:  # a generator of its own seed (`classifier.generator_per_seed`)
        record["gan_seed"] = g.gan_seed
    if g.recipe:  # issue 23's conditional recipe (`cdcgan_plus_aNNN`)
        record["recipe"] = True
    return record


def train_classifier(method: str, seed: int, config: Config, splits: Splits, out_dir, models_dir=None,
                     imagenet_weights=None, verbose: int = 0, session: ClassifierSession | None = None) -> dict:
    """Trains and tests one cell; writes its weights to `<out>/weights/<method>__seed<S>.weights.h5`.

    Args:
        session: ClassifierSession. Reuse a compiled model across cells. Defaults to a new one.

    Returns:
        The cell's result dict (metrics, counts, config, timings, weights path), which
        `keras_cxr.pipeline.cells` writes as the cell's JSON.
    """
    c = config.classifier
    t0 = time.perf_counter()
    # Every random draw of the cell (resampling, shuffle, augmentation, weight init, generated
    # latents) is keyed on `seed` here, before any of them, so a cell's numbers never depend on
    # the cells run before it in the process (resume, --methods order, shards). Methods share
    # the seed's initial weights: paired comparisons differ only by the method.
    seed_cell(seed)
    images, labels = splits.train
    rs = get_method(method, config.gan.alphas).resampler(seed, config, models_dir).fit_resample(images, labels)
    resample_s = time.perf_counter() - t0
    ds, n_train = train_dataset(splits, rs, c.batch_size, seed, config.image_size, c.max_rotation_deg, c.crop_fraction)
    dataset_s = time.perf_counter() - t0 - resample_s
    session = session or ClassifierSession(config, imagenet_weights)
    model = session.reset(seed)
    best, epoch_times = KeepBestWeights(), EpochTimes()
    t1 = time.perf_counter()
    history = model.fit(ds, validation_data=eval_dataset(*splits.val, c.batch_size), epochs=c.epochs,
                        callbacks=[*session.callbacks, best, epoch_times], verbose=verbose, shuffle=False)
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
