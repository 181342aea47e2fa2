"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cxr.classify import build_resnet18
from keras_cxr.classify.fast_bn import FusedBatchNormalization


@pytest.mark.parametrize("shape", [(8, 5, 5, 3), (4, 1, 1, 6), (1, 2, 3, 4)])
def test_training_pass_equals_stock_layer(shape):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, size=shape).astype("float32"))
    stock = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
    fused = FusedBatchNormalization(epsilon=1e-5, momentum=0.9)
    stock.build(shape)
    fused.build(shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in stock.get_weights()]
    weights[3] = np.abs(weights[3]) + 0.5  # moving variance > 0
    for layer in (stock, fused):
        layer.set_weights(weights)
    results = []
    for layer in (stock, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.sin(y) * tf.range(shape[-1], dtype=tf.float32))
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y, *grads, layer.moving_mean, layer.moving_variance, layer(x, training=False)))
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=2e-5)


def test_resnet18_uses_it_and_trains_like_stock():
    model = build_resnet18(32)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 20 and all(isinstance(layer, FusedBatchNormalization) for layer in bns)
    x = tf.constant(np.random.default_rng(1).uniform(0, 1, (8, 32, 32, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True))
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in tape.gradient(loss, model.trainable_variables))
