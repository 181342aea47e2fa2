import keras
import numpy as np
import pytest

from keras_cxr.explain.gradcam import gradcam_maps, lung_mask, lung_share
from keras_cxr.explain.memorisation import memorisation
from keras_cxr.evaluate.quality import frechet_distance, kernel_inception_distance, mmd2_unbiased, prdc


def _left_half_model(size=32):
    """A conv net that only sees the left half of its input (the right half is multiplied by 0)."""
    inp = keras.Input((size, size, 1))
    # Drop the right half, then pad it back with zeros: the convs never see it.
    x = keras.layers.Cropping2D(((0, 0), (0, size // 2)), name="left_only")(inp)
    x = keras.layers.ZeroPadding2D(((0, 0), (0, size // 2)), name="zero_right")(x)
    init = keras.initializers.RandomUniform(0.0, 0.1, seed=0)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", use_bias=False, kernel_initializer=init, name="c1")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", use_bias=False, kernel_initializer=init, name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="sigmoid", kernel_initializer=init, name="fc")(x)
    return keras.Model(inp, out)


def test_gradcam_maps_shape_and_range():
    images = np.random.default_rng(0).uniform(0, 1, (5, 32, 32, 1)).astype("float32")
    maps, preds = gradcam_maps(_left_half_model(), images, "c2")
    assert maps.shape == (5, 32, 32) and preds.shape == (5,)
    assert maps.min() >= 0 and maps.max() <= 1


def test_gradcam_finds_what_the_model_sees():
    images = np.random.default_rng(1).uniform(0.2, 1, (6, 32, 32, 1)).astype("float32")
    maps, _ = gradcam_maps(_left_half_model(), images, "c2")
    left = np.zeros((32, 32), bool)
    left[:, :16] = True
    share = lung_share(maps, left)
    assert np.all(share > 0.9), share  # the right half only gets the receptive-field spill at the border


def test_lung_mask_is_two_boxes():
    mask = lung_mask(64)
    assert 0.4 < mask.mean() < 0.6
    assert not mask[:, 31:33].any()  # mediastinum gap
    assert not mask[-8:].any() and not mask[:5].any()  # abdomen and neck excluded


def test_frechet_distance_zero_for_itself_and_grows_with_shift():
    a = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    d = [frechet_distance(a, a + s) for s in (0.5, 1.0, 2.0)]
    assert d == pytest.approx([8 * 0.25, 8 * 1.0, 8 * 4.0], rel=1e-4)  # ||shift||^2 exactly


def test_kid_is_unbiased_for_one_distribution():
    rng = np.random.default_rng(0)
    vals = [mmd2_unbiased(rng.normal(size=(50, 4)), rng.normal(size=(50, 4))) for _ in range(400)]
    sem = np.std(vals) / np.sqrt(len(vals))
    assert abs(np.mean(vals)) < 4 * sem  # unbiased: centred on zero (a biased estimator is > 0)
    assert min(vals) < 0
    mean, sd = kernel_inception_distance(rng.normal(size=(300, 4)), rng.normal(1.0, 1, size=(300, 4)))
    assert mean > 3 * sd > 0


def test_prdc_identical_and_disjoint():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3))
    same = prdc(a, a + 1e-9)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    far = prdc(a, a + 100)
    assert far["precision"] == 0.0 and far["recall"] == 0.0 and far["coverage"] == 0.0


def test_memorisation_flags_a_planted_copy():
    rng = np.random.default_rng(0)
    # Real images vary little around one template; the generator's own images are far noisier.
    train = rng.uniform(0.4, 0.6, (40, 16, 16))
    test = rng.uniform(0.4, 0.6, (20, 16, 16))
    generated = rng.uniform(0, 1, (30, 16, 16))
    generated[7] = train[12]
    r = memorisation(generated, train, test)
    assert r["near_copies"] == 1 and r["near_copy_indices"] == [7]
    assert r["nearest_train_index"][7] == 12 and r["generated_rmse"][7] == pytest.approx(0.0, abs=1e-6)


def test_near_copy_threshold_is_a_percentile_of_train_to_train_distances_without_duplicates():
    from keras_cxr.explain.memorisation import near_copy_threshold

    rng = np.random.default_rng(1)
    train = rng.uniform(0, 1, (50, 8, 8))
    train[3] = train[4]  # an exact duplicate pair: distance 0, left out
    flat = train.reshape(50, -1)
    d = np.sqrt(((flat[:, None] - flat[None]) ** 2).mean(-1))
    np.fill_diagonal(d, np.inf)
    nearest = d.min(1)
    assert near_copy_threshold(train) == pytest.approx(np.percentile(nearest[nearest > 0], 1.0), rel=1e-4)
    assert near_copy_threshold(train, 50) == pytest.approx(np.median(nearest[nearest > 0]), rel=1e-4)
