"""FastGradConv2D computes the same outputs and gradients as keras.layers.Conv2D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cxr.classify import build_resnet18
from keras_cxr.kernels import Kernels, use
from keras_cxr.kernels.conv_input_grad import FastGradConv2D
from tests.conftest import assert_same_outputs_and_gradients


@pytest.mark.parametrize("shape, kernel, stride, filters", [
    ((3, 9, 9, 8), 3, 1, 5), ((3, 9, 9, 8), 3, 2, 5), ((3, 8, 8, 8), 3, 2, 5), ((2, 3, 3, 16), 3, 1, 16),
    ((2, 4, 4, 6), 3, 2, 7), ((2, 7, 6, 4), 1, 2, 3), ((2, 11, 11, 3), 7, 2, 4),
])
def test_gradients_equal_stock_conv(shape, kernel, stride, filters):
    x = tf.constant(np.random.default_rng(0).normal(size=shape).astype("float32"))
    stock = keras.layers.Conv2D(filters, kernel, strides=stride, use_bias=False)
    fast = FastGradConv2D(filters, kernel, strides=stride, use_bias=False)
    stock.build(shape)
    fast.build(shape)
    fast.set_weights(stock.get_weights())
    assert [w.name for w in fast.trainable_weights] == ["kernel"]
    assert_same_outputs_and_gradients(stock, fast, x, lambda y: tf.reduce_sum(tf.sin(y)))


def test_resnet18_gradients_equal_with_and_without_fast_path():
    x = tf.constant(np.random.default_rng(1).uniform(0, 1, (8, 32, 32, 1)).astype("float32"))
    y = tf.one_hot([0, 1] * 4, 2)
    with use(Kernels(fused_bn=True, conv_input_grad=False)):
        stock = build_resnet18(32)
    with use(Kernels(fused_bn=True, conv_input_grad=True)):
        fast = build_resnet18(32)
    fast.set_weights(stock.get_weights())
    grads = []
    for model in (stock, fast):
        with tf.GradientTape() as tape:
            loss = keras.losses.binary_crossentropy(y, model(x, training=True))
        grads.append(tape.gradient(loss, model.trainable_variables))
    # Norm-wise: 17 layers of backprop through batch statistics amplify float32 round-off in a
    # few elements whose sums cancel; the measured error is ~1e-6, a real bug would be O(1).
    for a, b in zip(*grads):
        assert float(tf.norm(a - b) / tf.norm(a)) < 1e-4


def test_fast_layer_round_trip(tmp_path):
    inp = keras.Input((8, 8, 2))
    model = keras.Model(inp, FastGradConv2D(3, 3, strides=2, name="c")(inp))
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(again.get_layer("c"), FastGradConv2D) and again.get_layer("c").fast_input_grad


def test_weights_load_across_gradient_paths(tmp_path):
    with use(Kernels(fused_bn=True, conv_input_grad=True)):
        trained_on_cpu = build_resnet18(32)
    trained_on_cpu.save_weights(tmp_path / "w.weights.h5")
    with use(Kernels(fused_bn=True, conv_input_grad=False)):
        built_on_gpu = build_resnet18(32)
    built_on_gpu.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(trained_on_cpu.weights, built_on_gpu.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_default_path_follows_the_cpu_not_the_timing(monkeypatch):
    """The rewrite changes float round-off, so a timing-based default made a cell's numbers
    depend on machine load: `auto` follows the CPU's features (x86-64 without AVX-512 takes the
    rewrite), and the calibration only informs benchmarks."""
    import platform

    import keras_cxr.kernels as kernels
    from keras_cxr.kernels.conv_input_grad import stock_input_grad_is_slow

    slow = stock_input_grad_is_slow()
    assert isinstance(slow, bool) and stock_input_grad_is_slow() is slow  # measured once per process
    layer = build_resnet18(32).get_layer("layer4_block2_conv1")
    assert isinstance(layer, FastGradConv2D) and layer.fast_input_grad is kernels.slow_stock_input_grad()
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    for flags, rewrite in ((("sse4_2", "avx2", "fma"), True), (("avx2", "avx512f", "avx512_bf16"), False), ((), False)):
        monkeypatch.setattr(kernels, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert kernels.resolve("auto").conv_input_grad is rewrite, flags
        assert kernels.resolve("conv_grad").conv_input_grad and not kernels.resolve("stock").conv_input_grad
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(kernels, "cpu_flags", lambda: frozenset())
    assert kernels.resolve("auto").conv_input_grad is False
