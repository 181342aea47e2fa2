"""Settings for better conditional generators (issue 23), each off by default: a separate
discriminator learning rate (TTUR), resize-convolution upsampling, class-balanced real batches
and a moving average of the generator (EMA)."""

import keras
import numpy as np
import pytest

from keras_cxr.config import load_preset
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.generator import build_generator
from keras_cxr.gan.train import build_gan, real_batches
from keras_cxr.pipeline.checks import check


def test_the_paper_keeps_one_learning_rate_and_transposed_convolutions():
    g = load_preset("paper").gan
    assert g.d_learning_rate is None and g.upsample == "transpose"
    gan = build_gan("cdcgan", load_preset("tiny"))
    assert float(gan.d_optimizer.learning_rate) == float(gan.g_optimizer.learning_rate) == pytest.approx(2e-3)
    names = [layer.name for layer in gan.generator.layers]
    assert "up1_conv_transpose" in names and not any("resize" in n for n in names)


def test_ttur_gives_the_discriminator_its_own_learning_rate():
    gan = build_gan("dcgan", load_preset("tiny", ["gan.learning_rate=1e-4", "gan.d_learning_rate=4e-4"]))
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(4e-4)
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(1e-4)
    with pytest.raises(KerasCXRError, match=r"`gan.d_learning_rate` must be finite and > 0"):
        check(load_preset("tiny", ["gan.d_learning_rate=0"]))


def test_resize_upsampling_builds_the_same_shapes_without_transposed_convs():
    keras.utils.set_random_seed(0)
    gen = build_generator(32, 16, 8, conditional=True, embedding_dim=4, upsample="resize")
    layers = {type(layer).__name__ for layer in gen.layers}
    assert "Conv2DTranspose" not in layers and {"UpSampling2D", "Conv2D"} <= layers
    out = gen([np.random.default_rng(0).normal(size=(3, 16)).astype("float32"), np.array([0, 1, 1], "int32")])
    assert out.shape == (3, 32, 32, 1) and np.all(np.abs(out.numpy()) <= 1)
    # A nearest-neighbour resize followed by a 3x3 conv: every 2x2 block of the last resize starts
    # equal, so the block's outputs differ only through the conv's neighbourhood (no checkerboard
    # from uneven kernel overlap). Checked on the first block: its resize output repeats each value.
    resize = keras.Model(gen.inputs, gen.get_layer("up1_resize").output)
    r = resize([np.zeros((1, 16), "float32"), np.array([1], "int32")]).numpy()[0]
    np.testing.assert_array_equal(r[0::2, 0::2], r[1::2, 1::2])
    with pytest.raises(KerasCXRError, match=r"`gan.upsample` must be one of transpose, resize"):
        check(load_preset("tiny", ["gan.upsample=bilinear"]))


def test_a_resize_gan_trains_a_step():
    config = load_preset("tiny", ["gan.upsample=resize"])
    gan = build_gan("cdcgan", config)
    real = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 1)).astype("float32")
    before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    logs = gan.train_step((real, np.array([0, 1, 0, 1], "int32")))
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, gan.generator.trainable_weights))


def test_balanced_real_batches_draw_each_label_equally_and_dataset_draws_are_unchanged():
    labels = np.array([0] * 90 + [1] * 10, dtype=np.int64)  # 10% minority
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1).repeat(4, 1).repeat(4, 2)
    balanced = [lab.numpy() for _, lab in real_batches(images, labels, 8, 0, 50, seed=3, pixel_range="0_1", balanced=True)]
    assert all(np.bincount(b, minlength=2).tolist() == [4, 4] for b in balanced)
    odd = next(iter(real_batches(images, labels, 5, 0, 1, seed=3, pixel_range="0_1", balanced=True)))[1].numpy()
    assert np.bincount(odd, minlength=2).tolist() == [2, 3]
    # Images and labels stay paired: pixel value i is image i, whose label is labels[i].
    for x, lab in real_batches(images, labels, 8, 0, 5, seed=3, pixel_range="0_1", balanced=True):
        np.testing.assert_array_equal(labels[np.round(x.numpy()[:, 0, 0, 0] * 255).astype(int)], lab.numpy())
    # "dataset": the codes' uniform draw over all of train, as before (about 10% minority).
    drawn = np.concatenate([lab.numpy() for _, lab in real_batches(images, labels, 8, 0, 200, 3, "0_1")])
    assert 0.05 < drawn.mean() < 0.15
    import tensorflow as tf

    # The draw the step has always made (before `balanced` existed): stateless, keyed on (seed, 1, step).
    old = [tf.random.stateless_uniform([8], tf.random.experimental.stateless_fold_in(tf.constant([3, 1], tf.int64), tf.constant(step, tf.int64)),
                                       0, 100, dtype=tf.int64).numpy() for step in range(200)]
    np.testing.assert_array_equal(drawn, labels[np.concatenate(old)])
    with pytest.raises(KerasCXRError, match="`gan.real_sampling` must be one of dataset, balanced"):
        check(load_preset("tiny", ["gan.real_sampling=oversample"]))


def _three_steps(config, record=None):
    gan = build_gan("cdcgan", config)
    rng = np.random.default_rng(0)
    for _ in range(3):
        real = rng.uniform(0, 1, (4, 32, 32, 1)).astype("float32")
        gan.train_step((real, np.array([0, 1, 0, 1], "int32")))
        if record is not None:
            record.append([w.numpy().copy() for w in gan.generator.weights])
    return gan


def test_ema_is_the_hand_computed_average_and_leaves_training_unchanged():
    decay = 0.25  # small, so three steps move the average measurably; the warm-up still caps step 1
    start = [w.numpy().copy() for w in build_gan("cdcgan", load_preset("tiny", [f"gan.ema={decay}"])).generator.weights]
    steps = []
    gan = _three_steps(load_preset("tiny", [f"gan.ema={decay}"]), steps)
    want = start
    for t, weights in enumerate(steps, start=1):  # avg_t = d_t avg_(t-1) + (1 - d_t) w_t from G's initial weights,
        d = min(decay, (1 + t) / (10 + t))  # here 2/11, then 0.25 twice
        want = [d * a + (1 - d) * w for a, w in zip(want, weights)]
    got = [w.numpy() for w in gan.ema_generator.weights]
    # Every weight, trainable or not (the paper's G has no BatchNorm; a G with it averages its statistics too).
    assert len(got) == len(want) == len(gan.generator.weights)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert gan.sampler is gan.ema_generator and not gan.ema_generator.trainable_weights
    # The average draws no random numbers and feeds nothing back: G and D train bit for bit as without it.
    plain = _three_steps(load_preset("tiny"))
    assert plain.ema_generator is None and plain.sampler is plain.generator
    for a, b in zip(plain.generator.weights + plain.discriminator.weights, gan.generator.weights + gan.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for bad in ("1", "-0.1"):
        with pytest.raises(KerasCXRError, match=r"`gan.ema` must be in \[0, 1\)"):
            check(load_preset("tiny", [f"gan.ema={bad}"]))


def test_projection_head_is_its_formula():
    import keras as k

    from keras_cxr.gan.discriminator import build_discriminator

    keras.utils.set_random_seed(0)
    d = build_discriminator(32, 8, conditional=True, head="projection")
    assert "image_label_concat" not in [layer.name for layer in d.layers]  # the image enters alone
    x = np.random.default_rng(1).uniform(0, 1, (5, 32, 32, 1)).astype("float32")
    y = np.array([0, 1, 1, 0, 1], "int32")
    d.get_layer("label_projection").embeddings.assign(np.random.default_rng(2).normal(size=(2, 128)).astype("float32") * 0.1)
    phi = k.Model(d.inputs, d.get_layer("flatten").output)([x, y]).numpy()
    w, b = (v.numpy() for v in d.get_layer("output_dense").weights)
    embed = d.get_layer("label_projection").embeddings.numpy()
    logit = phi @ w[:, 0] + b[0] + np.sum(embed[y] * phi, axis=1)
    np.testing.assert_allclose(d([x, y]).numpy()[:, 0], 1 / (1 + np.exp(-logit)), rtol=1e-5, atol=1e-6)
    with pytest.raises(KerasCXRError, match="`gan.discriminator_head` must be one of concat, projection"):
        check(load_preset("tiny", ["gan.discriminator_head=film"]))


def test_spectral_norm_divides_by_the_largest_singular_value_and_never_rewrites_the_kernel():
    from keras_cxr.gan.spectral_norm import SpectralNorm

    keras.utils.set_random_seed(0)
    layer = SpectralNorm(keras.layers.Dense(5))
    x = np.random.default_rng(0).normal(size=(3, 7)).astype("float32")
    layer(x)
    kernel = layer.layer.kernel.numpy().copy()
    for _ in range(60):  # one power iteration per training call converges on sigma
        out = layer(x, training=True)
    sigma = np.linalg.svd(kernel, compute_uv=False)[0]
    np.testing.assert_allclose(out.numpy(), x @ (kernel / sigma) + layer.layer.bias.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)
    u = layer.u.numpy().copy()
    layer(x)  # inference calls leave u as it is
    np.testing.assert_array_equal(layer.u.numpy(), u)


def test_a_projection_sn_gan_trains_and_g_update_leaves_d_trainable_weights_alone():
    config = load_preset("tiny", ["gan.discriminator_head=projection", "gan.spectral_norm=true"])
    gan = build_gan("cdcgan", config)
    assert any(type(layer).__name__ == "SpectralNorm" for layer in gan.discriminator.layers)
    real = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 1)).astype("float32")
    logs = gan.train_step((real, np.array([0, 1, 0, 1], "int32")))
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    before = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    gan.update_generator(4)
    for a, b in zip(before, gan.discriminator.trainable_weights):
        np.testing.assert_array_equal(a, b.numpy())
    paper = load_preset("paper").gan
    assert paper.discriminator_head == "concat" and paper.spectral_norm is False and paper.ema == 0
