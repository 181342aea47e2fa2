"""Transitional conditioning (`gan.transition`, Shahbazi et al. 2022): the label weight's schedule,
G and D ignoring labels at weight 0 and equal to the plain cDCGAN at 1. A whole run that fades the
labels in, resumes to the same weights and ends fully conditional: tests/test_train_gan.py."""

import keras
import numpy as np
import pytest

from keras_cxr.config import load_preset
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.discriminator import build_discriminator
from keras_cxr.gan.generator import build_generator
from keras_cxr.gan.train import build_gan
from keras_cxr.gan.transition import ConditionGate, check_steps, label_weight
from keras_cxr.pipeline.checks import check


def test_the_label_weight_rises_from_zero_to_one_between_start_and_end():
    got = [float(label_weight(t, 3, 6)) for t in (0, 2, 3, 4, 5, 6, 100)]
    np.testing.assert_allclose(got, [0, 0, 0, 1 / 3, 2 / 3, 1, 1], rtol=1e-6)
    with pytest.raises(KerasCXRError, match="0 <= start < end"):
        check_steps(4, 4)
    assert load_preset("paper").gan.transition == () and load_preset("quick").gan.transition == ()
    check(load_preset("tiny", ["gan.cdcgan_epochs=4", "gan.transition=[1,4]"]))
    for bad in ("[2,1]", "[0,5]", "[3]", "[-1,2]"):
        with pytest.raises(KerasCXRError, match=r"`gan.transition` must be empty \(off\) or \[start, end\]"):
            check(load_preset("tiny", ["gan.cdcgan_epochs=4", f"gan.transition={bad}"]))


def _twins(build, **kwargs):
    """The same network built with and without label gates, from the same seed."""
    keras.utils.set_random_seed(0)
    plain = build(**kwargs)
    keras.utils.set_random_seed(0)
    gated = build(transitional=True, **kwargs)
    return plain, gated


def _set_gates(model, weight):
    gates = [layer for layer in model.layers if isinstance(layer, ConditionGate)]
    assert len(gates) == 1
    gates[0].weight.assign(weight)


@pytest.mark.parametrize("network", ["generator", "concat", "projection"])
def test_at_weight_zero_the_labels_are_ignored_and_at_one_it_is_the_plain_cdcgan(network):
    rng = np.random.default_rng(0)
    if network == "generator":
        plain, gated = _twins(build_generator, image_size=32, latent_dim=16, filters=8, conditional=True, embedding_dim=4)
        x = rng.normal(size=(4, 16)).astype("float32")
    else:
        plain, gated = _twins(build_discriminator, image_size=32, filters=8, conditional=True, head=network)
        x = rng.uniform(0, 1, (4, 32, 32, 1)).astype("float32")
        if network == "projection":  # a zero-initialised projection would hide the label either way
            embeddings = rng.normal(size=(2, 128)).astype("float32") * 0.1
            for m in (plain, gated):
                m.get_layer("label_projection").embeddings.assign(embeddings)
    zeros, ones = np.zeros(4, "int32"), np.ones(4, "int32")
    np.testing.assert_allclose(gated([x, zeros]).numpy(), plain([x, zeros]).numpy(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(plain([x, zeros]).numpy(), plain([x, ones]).numpy())
    _set_gates(gated, 0.0)
    np.testing.assert_array_equal(gated([x, zeros]).numpy(), gated([x, ones]).numpy())
    assert len(gated.weights) == len(plain.weights) + 1  # the gate's weight, nothing else


def test_a_gated_gan_needs_its_schedule_and_a_schedule_needs_gates():
    config = load_preset("tiny", ["gan.transition=[1,2]"])
    gan = build_gan("cdcgan", config)  # no steps per epoch: restore and export only
    real = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 1)).astype("float32")
    with pytest.raises(KerasCXRError, match="label gates but no transition schedule"):
        gan.train_step((real, np.array([0, 1, 0, 1], "int32")))
    plain = build_gan("cdcgan", load_preset("tiny"))
    from keras_cxr.gan.gan import GAN

    with pytest.raises(KerasCXRError, match="needs a cDCGAN whose G and D were built with transitional=True"):
        GAN(plain.generator, plain.discriminator, 100, True, 0.5, transition=(0, 4))
    assert build_gan("dcgan", config, steps_per_epoch=3).transition is None  # a DCGAN has no labels
