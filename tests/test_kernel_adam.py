"""FusedAdam updates variables exactly as keras.optimizers.Adam does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cxr.kernels.adam import FusedAdam


def _train(optimizer, steps=4):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer, "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 2)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=steps, verbose=0)
    return [w.numpy() for w in model.weights] + [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("kwargs", [{"learning_rate": 4e-3}, {"learning_rate": 2e-4, "beta_1": 0.5, "epsilon": 1e-3}])
def test_same_weights_and_moments_as_keras_adam(kwargs):
    stock, fused = _train(keras.optimizers.Adam(**kwargs)), _train(FusedAdam(**kwargs))
    assert len(stock) == len(fused)
    for a, b in zip(stock, fused):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(stock[0], _train(keras.optimizers.Adam(**kwargs), steps=1)[0])  # it did train


def test_fused_kernel_is_the_one_that_runs():
    var = keras.Variable(np.ones(3, "float32"))
    opt = FusedAdam(0.1)
    opt.build([var])
    graph = tf.function(lambda: opt.apply_gradients([(tf.ones(3), var)])).get_concrete_function().graph
    assert any(op.type == "ResourceApplyAdam" for op in graph.get_operations())
    unfused = FusedAdam(0.1, fused=False)
    unfused.build([var])
    graph = tf.function(lambda: unfused.apply_gradients([(tf.ones(3), var)])).get_concrete_function().graph
    assert not any(op.type == "ResourceApplyAdam" for op in graph.get_operations())


def test_mixed_float16_classifier_scales_its_loss():
    from keras_cxr.classify.train import ClassifierSession
    from keras_cxr.config import load_preset

    session = ClassifierSession(load_preset("tiny", ["classifier.precision=mixed_float16"]))
    model = session.model
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, FusedAdam)
    assert model.get_layer("layer1_block1_conv1").compute_dtype == "float16"
    assert model.get_layer("fc").compute_dtype == "float32"
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 1)).astype("float32")
    loss = model.train_on_batch(x, np.eye(2, dtype="float32")[[0, 1, 0, 1]])
    assert np.isfinite(np.asarray(loss)).all()
    assert keras.config.dtype_policy().name == "float32"
