"""Transitional conditioning (`gan.transition`, Shahbazi et al. 2022): the label weight's schedule,
G and D ignoring labels at weight 0 and equal to the plain cDCGAN at 1, and a whole run that fades
the labels in, resumes to the same weights and exports a fully conditional generator."""

import csv

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


def test_a_run_fades_the_labels_in_resumes_to_the_same_weights_and_exports_fully_conditional(tmp_path, tiny_data):
    from keras_cxr.gan.export import load_generator
    from keras_cxr.pipeline.gan_run import train_gan

    config = load_preset("tiny", ["gan.cdcgan_epochs=3", "gan.transition=[1,2]", "gan.ema=0.9"])
    full = train_gan("cdcgan", config, tmp_path / "full", manifest=tiny_data, verbose=0)
    train_gan("cdcgan", config, tmp_path / "cut", manifest=tiny_data, verbose=0, max_epochs=1)
    train_gan("cdcgan", config, tmp_path / "cut", manifest=tiny_data, verbose=0)
    run = tmp_path / "full" / "cdcgan_a050"
    rows = list(csv.DictReader(open(run / "log.csv")))
    steps = int(float(rows[0]["images_per_s"]) * float(rows[0]["epoch_s"]) + 0.5) // 8  # images per epoch / batch
    # Epoch means of lambda: 0 in epoch 1, then k / S for the S steps of epoch 2, then 1.
    want = [0.0, (steps - 1) / (2 * steps), 1.0]
    np.testing.assert_allclose([float(r["label_weight"]) for r in rows], want, rtol=1e-5)
    for name in ("full", "cut"):
        with np.load(sorted((tmp_path / name / "cdcgan_a050" / "checkpoints").glob("*.npz"))[-1]) as z:
            arrays = {k: z[k] for k in z.files}
        if name == "full":
            reference = arrays
            gates = [k for k in arrays if arrays[k].shape == () and k != "epoch" and arrays[k] == 1.0]
            assert {k.split("/")[0] for k in gates} >= {"g", "d", "g_ema"}  # every gate ends fully in
        for k in reference:
            np.testing.assert_allclose(arrays[k], reference[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # The exported generator is the fully conditional one: its two labels make different images.
    import tensorflow as tf

    generate = load_generator(full["export_dir"])[0].signatures["generate"]
    a, b = (generate(num_images=tf.constant(4), label=tf.constant(c), seed=tf.constant(0, tf.int64))["images"].numpy()
            for c in (0, 1))  # the same latents (same seed), the two labels
    assert not np.allclose(a, b)
