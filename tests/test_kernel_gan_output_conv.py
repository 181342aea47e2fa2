"""SingleFilterConv2D (the generator's output conv) computes what keras.layers.Conv2D computes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cxr.gan import build_generator
from keras_cxr.kernels import Kernels, use
from keras_cxr.kernels.gan_output_conv import SingleFilterConv2D
from tests.conftest import assert_same_outputs_and_gradients


@pytest.mark.parametrize("shape, kernel", [((3, 9, 9, 8), 5), ((2, 16, 12, 4), 3), ((2, 5, 5, 3), 5), ((1, 8, 8, 2), 1)])
def test_outputs_and_gradients_equal_stock_conv(shape, kernel):
    keras.utils.set_random_seed(0)  # the layers' init: not whatever the tests before left behind
    x = tf.constant(np.random.default_rng(0).normal(size=shape).astype("float32"))
    stock = keras.layers.Conv2D(1, kernel, padding="same", activation="tanh")
    fast = SingleFilterConv2D(1, kernel, padding="same", activation="tanh")
    stock.build(shape)
    fast.build(shape)
    fast.set_weights([w + 0.1 for w in stock.get_weights()])  # nonzero bias too
    stock.set_weights(fast.get_weights())
    assert [w.name for w in fast.trainable_weights] == ["kernel", "bias"]
    # atol 1e-4: weight-gradient elements are sums of ~200 terms of size ~10 that cancel to ~1e-2,
    # so float32 round-off alone reaches 2e-5 there (seen with other initial weights).
    assert_same_outputs_and_gradients(stock, fast, x, lambda y: tf.reduce_sum(tf.sin(3 * y)), atol=1e-4)


@pytest.mark.parametrize("kwargs", [{"filters": 2}, {"strides": 2}, {"padding": "valid"}, {"kernel_size": 4}])
def test_fast_kernels_refuse_other_convs(kwargs):
    args = {"filters": 1, "kernel_size": 5, "padding": "same", **kwargs}
    with pytest.raises(ValueError, match="SingleFilterConv2D"):
        SingleFilterConv2D(**args)
    SingleFilterConv2D(**args, fast_kernels=False)  # the stock path takes any Conv2D


def test_generator_same_images_and_gradients_with_either_path(tmp_path):
    with use(Kernels(gan_output_conv=False)):
        stock = build_generator(32, latent_dim=8, filters=8, conditional=True)
    with use(Kernels(gan_output_conv=True)):
        fast = build_generator(32, latent_dim=8, filters=8, conditional=True)
    stock.save_weights(tmp_path / "g.weights.h5")
    fast.load_weights(tmp_path / "g.weights.h5")  # same layer class, so weights move across paths
    z = tf.constant(np.random.default_rng(1).normal(size=(4, 8)).astype("float32"))
    labels = tf.constant([0, 1, 0, 1])
    results = []
    for g in (stock, fast):
        with tf.GradientTape() as tape:
            images = g([z, labels], training=True)
            loss = tf.reduce_mean(tf.square(images - 0.3))
        results.append((images, *tape.gradient(loss, g.trainable_variables)))
    for a, b in zip(*results):
        np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), rtol=1e-4, atol=1e-6)


def test_round_trip_keeps_the_path(tmp_path):
    with use(Kernels(gan_output_conv=True)):
        g = build_generator(16, latent_dim=4, filters=4)
    g.save(tmp_path / "g.keras")
    again = keras.saving.load_model(tmp_path / "g.keras")
    layer = again.get_layer("output_conv")
    assert isinstance(layer, SingleFilterConv2D) and layer.fast_kernels
    z = np.random.default_rng(2).normal(size=(2, 4)).astype("float32")
    np.testing.assert_allclose(again.predict(z, verbose=0), g.predict(z, verbose=0), atol=1e-6)
