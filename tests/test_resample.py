import numpy as np
import pytest

from keras_cxr.errors import KerasCXRError
from keras_cxr.resample import (ClassWeights, GANOversample, NoResampling, PixelSMOTE, RandomOversample,
                                RandomUndersample, balanced_class_weights, oversampling_targets)

LABELS = np.array([0] * 12 + [1] * 4)


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (16, 8, 8), dtype=np.uint8)


def test_class_weights_formula():
    w = balanced_class_weights(LABELS)  # n / (c * n_j) = 16 / (2 * 12), 16 / (2 * 4)
    assert w == pytest.approx({0: 16 / 24, 1: 2.0})
    rs = ClassWeights().fit_resample(np.zeros((16, 8, 8), np.uint8), LABELS)
    assert rs.class_weight == pytest.approx({0: 2 / 3, 1: 2.0}) and rs.class_counts(LABELS) == [12, 4]


@pytest.mark.parametrize("resampler, counts", [
    (NoResampling(), [12, 4]),
    (RandomUndersample(seed=0), [4, 4]),
    (RandomOversample(seed=0), [12, 12]),
    (PixelSMOTE("smote", k_neighbors=3, seed=0), [12, 12]),
    (PixelSMOTE("borderline_smote", k_neighbors=3, seed=0), [12, 12]),
    (GANOversample("models/dcgan/1", seed=0), [12, 12]),
])
def test_exact_counts(resampler, counts, images):
    rs = resampler.fit_resample(images, LABELS)
    assert rs.class_counts(LABELS) == counts


def test_adasyn_balances_approximately(images):
    rs = PixelSMOTE("adasyn", k_neighbors=3, seed=0).fit_resample(images, LABELS)
    n0, n1 = rs.class_counts(LABELS)
    assert n0 == 12 and abs(n1 - 12) <= 2


def test_smote_images_are_images_between_minority_images(images):
    rs = PixelSMOTE("smote", k_neighbors=3, seed=0).fit_resample(images, LABELS)
    assert rs.synthetic_images.shape == (8, 8, 8) and rs.synthetic_images.dtype == np.uint8
    assert set(rs.synthetic_labels.tolist()) == {1}
    lo, hi = images[LABELS == 1].min(axis=0), images[LABELS == 1].max(axis=0)
    assert np.all(rs.synthetic_images >= lo) and np.all(rs.synthetic_images <= hi)


def test_undersample_keeps_all_minority_and_is_seeded(images):
    a = RandomUndersample(seed=1).fit_resample(images, LABELS).indices
    b = RandomUndersample(seed=1).fit_resample(images, LABELS).indices
    c = RandomUndersample(seed=2).fit_resample(images, LABELS).indices
    assert set(range(12, 16)) <= set(a.tolist())
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_gan_oversample_streams_not_stores(images):
    rs = GANOversample("models/cdcgan_a050/1", seed=4).fit_resample(images, LABELS)
    assert rs.synthetic_images is None
    assert (rs.generated.label, rs.generated.count, rs.generated.seed) == (1, 8, 4)


@pytest.mark.parametrize("strategy, expected", [("auto", {1: 8}), (0.5, {1: 2}), ({1: 10}, {1: 6})])
def test_sampling_strategy_semantics(strategy, expected):
    assert oversampling_targets(LABELS, strategy) == expected


@pytest.mark.parametrize("strategy, message", [  # imbalanced-learn's own checks, in our error's shape
    (0.1, r"`sampling_strategy`: .*Received: sampling_strategy=0.1"),
    (1.5, r"`sampling_strategy`: .*Received: sampling_strategy=1.5"),
    ("majority", r"`sampling_strategy`: .*Received: sampling_strategy='majority'"),
])
def test_bad_sampling_strategy(strategy, message):
    with pytest.raises(KerasCXRError, match=message):
        oversampling_targets(LABELS, strategy)
