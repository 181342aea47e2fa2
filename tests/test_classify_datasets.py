"""`classify.datasets.train_dataset`: one epoch holds exactly the resampled set, with its labels and
per-sample loss weights, whether the extra images are in memory (SMOTE) or streamed from a
generator SavedModel (GAN methods)."""

import numpy as np
import pytest

from keras_cxr.classify.datasets import Splits, train_dataset
from keras_cxr.resample import GeneratedSource, ResampledSet

SIZE = 32


def _splits(n0=12, n1=4):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n0 + n1, SIZE, SIZE), dtype=np.uint8)
    labels = np.array([0] * n0 + [1] * n1)
    return Splits(("NORMAL", "PNEUMONIA"), (images, labels), (images[:2], labels[:2]), (images[:2], labels[:2]))


def _one_epoch(ds):
    xs, ys, ws = [], [], []
    for x, y, w in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
        ws.append(w.numpy())
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def test_real_repeats_and_in_memory_synthetic_images_with_class_weights():
    splits = _splits()
    synthetic = np.full((2, SIZE, SIZE), 7, np.uint8)
    rs = ResampledSet(indices=np.array([0, 1, 2, 12, 12, 13]), synthetic_images=synthetic,
                      synthetic_labels=np.array([1, 1]), class_weight={0: 0.5, 1: 2.0})
    ds, total = train_dataset(splits, rs, 3, seed=0, image_size=SIZE, max_rotation_deg=0.0, crop_fraction=1.0)
    x, y, w = _one_epoch(ds)
    assert total == len(y) == 8
    assert y.sum(axis=1).tolist() == [1.0] * 8  # one-hot
    label = y.argmax(axis=1)
    assert np.bincount(label).tolist() == [3, 5]
    assert (w[label == 0] == 0.5).all() and (w[label == 1] == 2.0).all()


def test_generated_images_stream_in_with_their_label_and_weight(tmp_path):
    from keras_cxr.config import load_preset
    from keras_cxr.gan.export import export_generator
    from keras_cxr.gan.record import GeneratorRecord
    from keras_cxr.gan.train import build_gan

    config = load_preset("tiny", [f"image_size={SIZE}"])
    gan = build_gan("cdcgan", config, alpha=0.5)  # untrained: only shapes, labels and counts matter here
    path = export_generator(gan.generator, tmp_path / "cdcgan_a050" / "1",
                            GeneratorRecord("cdcgan", config.gan.latent_dim, "0_1", SIZE))
    splits = _splits()
    rs = ResampledSet(indices=np.arange(16), generated=GeneratedSource(str(path), 1, 8, 0), class_weight={0: 1.0, 1: 3.0})
    ds, total = train_dataset(splits, rs, 5, seed=0, image_size=SIZE)
    epochs = [_one_epoch(ds) for _ in range(2)]
    for x, y, w in epochs:
        label = y.argmax(axis=1)
        assert total == len(label) == 24
        assert np.bincount(label).tolist() == [12, 12]  # 4 real + 8 generated pneumonia
        assert (w[label == 0] == 1.0).all() and (w[label == 1] == 3.0).all()
        assert x.shape == (24, SIZE, SIZE, 1) and 0.0 <= x.min() and x.max() <= 1.0
    # Real and generated images are interleaved in a new order each epoch.
    assert not np.array_equal(epochs[0][1], epochs[1][1])


@pytest.mark.parametrize("bad_size", [64])
def test_generator_of_another_size_is_refused(tmp_path, bad_size):
    from keras_cxr.config import load_preset
    from keras_cxr.errors import KerasCXRError
    from keras_cxr.gan.export import export_generator
    from keras_cxr.gan.record import GeneratorRecord
    from keras_cxr.gan.train import build_gan

    config = load_preset("tiny", [f"image_size={bad_size}"])
    path = export_generator(build_gan("dcgan", config).generator, tmp_path / "dcgan" / "1",
                            GeneratorRecord("dcgan", config.gan.latent_dim, "0_1", bad_size, minority_label=1))
    rs = ResampledSet(indices=np.arange(16), generated=GeneratedSource(str(path), 1, 8, 0))
    with pytest.raises(KerasCXRError, match=f"makes {bad_size}x{bad_size} images; the classifier expects {SIZE}x{SIZE}"):
        train_dataset(_splits(), rs, 5, seed=0, image_size=SIZE)


def test_pipeline_settings_cannot_change_a_batch(monkeypatch):
    """`parallel_calls` and `pipeline_options` are chosen for speed alone because they cannot
    change a batch: two epochs of augmented batches, with real and in-memory synthetic images and
    loss weights, are identical with the autotuner off (the library) or on, and with one thread
    or AUTOTUNE."""
    import tensorflow as tf

    import keras_cxr.data.pipeline as pipeline

    assert pipeline.pipeline_options().autotune.enabled is False
    splits = _splits(40, 10)
    rs = ResampledSet(indices=np.arange(50), synthetic_images=np.full((6, SIZE, SIZE), 9, np.uint8),
                      synthetic_labels=np.ones(6, int), class_weight={0: 0.6, 1: 3.0})
    library = pipeline.parallel_calls, pipeline.pipeline_options
    arms = {"library": library, "autotuner": (library[0], tf.data.Options), "one": (lambda: 1, library[1])}
    epochs = {}
    for arm, (threads, options) in arms.items():
        monkeypatch.setattr(pipeline, "parallel_calls", threads)
        monkeypatch.setattr(pipeline, "pipeline_options", options)
        ds, _ = train_dataset(splits, rs, 4, seed=3, image_size=SIZE)
        epochs[arm] = [_one_epoch(ds) for _ in range(2)]
    for arm in ("autotuner", "one"):
        for mine, theirs in zip(epochs["library"], epochs[arm]):
            for a, b in zip(mine, theirs):
                np.testing.assert_array_equal(a, b)
    assert not np.array_equal(epochs["library"][0][0], epochs["library"][1][0])  # epoch 2 reshuffled, re-augmented
