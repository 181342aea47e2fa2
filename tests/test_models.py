"""Layer stacks and shapes per FIDELITY.md (build only, no training)."""

import keras
import numpy as np
import pytest

from keras_cxr.errors import KerasCXRError
from keras_cxr.gan import build_discriminator, build_generator


def stack(model):
    return [(layer.name, type(layer).__name__, tuple(layer.output.shape[1:])) for layer in model.layers]


def test_paper_generator_128():
    g = build_generator()
    assert stack(g) == [
        ("latent", "InputLayer", (100,)),
        ("project_dense", "Dense", (8192,)),
        ("project_leaky_relu", "LeakyReLU", (8192,)),
        ("project_reshape", "Reshape", (8, 8, 128)),
        ("up1_conv_transpose", "Conv2DTranspose", (16, 16, 128)),
        ("up1_leaky_relu", "LeakyReLU", (16, 16, 128)),
        ("up2_conv_transpose", "Conv2DTranspose", (32, 32, 128)),
        ("up2_leaky_relu", "LeakyReLU", (32, 32, 128)),
        ("up3_conv_transpose", "Conv2DTranspose", (64, 64, 128)),
        ("up3_leaky_relu", "LeakyReLU", (64, 64, 128)),
        ("up4_conv_transpose", "Conv2DTranspose", (128, 128, 128)),
        ("up4_leaky_relu", "LeakyReLU", (128, 128, 128)),
        ("output_conv", "SingleFilterConv2D", (128, 128, 1)),
    ]
    assert g.count_params() == 1_879_681
    for i in range(1, 5):
        conv = g.get_layer(f"up{i}_conv_transpose")
        assert (conv.kernel_size, conv.strides, conv.padding) == ((4, 4), (2, 2), "same")
        assert g.get_layer(f"up{i}_leaky_relu").negative_slope == pytest.approx(0.2)
    out = g.get_layer("output_conv")
    assert (out.kernel_size, out.activation.__name__) == ((5, 5), "tanh")
    assert not any("BatchNormalization" in type(layer).__name__ for layer in g.layers)


def test_paper_discriminator_128():
    d = build_discriminator()
    convs = [layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [tuple(c.output.shape[1:]) for c in convs] == [(64, 64, 128), (32, 32, 128), (16, 16, 128), (8, 8, 128), (4, 4, 128)]
    assert all(c.kernel_size == (5, 5) and c.strides == (2, 2) for c in convs)
    assert [type(layer).__name__ for layer in d.layers][-2:] == ["Flatten", "Dense"]
    assert d.get_layer("output_dense").activation.__name__ == "sigmoid"
    assert d.count_params() == 1_644_289
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in d.layers)


def test_balde_discriminator_switch():
    d = build_discriminator(variant="balde")
    convs = [layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs[0].strides == (1, 1) and all(c.strides == (2, 2) for c in convs[1:])
    assert tuple(convs[-1].output.shape[1:]) == (8, 8, 128)
    assert d.get_layer("dropout").rate == pytest.approx(0.4)


def test_conditional_heads():
    g = build_generator(conditional=True)
    assert [i.name for i in g.inputs] == ["latent", "label"]
    assert g.get_layer("label_embedding").output.shape[1:] == (50,)
    assert g.get_layer("latent_label_concat").output.shape[1:] == (150,)
    assert g.count_params() == 1_879_681 + 2 * 50 + 50 * 8192
    d = build_discriminator(conditional=True)
    assert [i.name for i in d.inputs] == ["image", "label"]
    assert d.get_layer("label_dense").output.shape[1:] == (128 * 128,)
    assert d.get_layer("image_label_concat").output.shape[1:] == (128, 128, 2)
    out = d([np.zeros((3, 128, 128, 1), "float32"), np.array([0, 1, 1], "int32")])
    assert out.shape == (3, 1)


@pytest.mark.parametrize("size, up, down", [(128, 4, 5), (64, 3, 4), (32, 2, 3), (16, 1, 2)])
def test_other_sizes_change_only_block_counts(size, up, down):
    g = build_generator(size, filters=8)
    d = build_discriminator(size, filters=8)
    assert sum(isinstance(layer, keras.layers.Conv2DTranspose) for layer in g.layers) == up
    assert sum(isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose)
               for layer in d.layers) == down
    assert tuple(g.output.shape[1:]) == (size, size, 1)
    assert tuple(d.get_layer(f"down{down}_conv").output.shape[1:3]) == (4, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": 100}, r"`image_size` must be a power of two >= 16 for the GANs .*Received: image_size=100"),
    ({"image_size": 8}, r"Received: image_size=8"),
    ({"latent_dim": 0}, r"`latent_dim` must be >= 1. Received: latent_dim=0"),
])
def test_generator_bad_arguments(kwargs, message):
    with pytest.raises(KerasCXRError, match=message):
        build_generator(**kwargs)


def test_discriminator_bad_variant():
    with pytest.raises(KerasCXRError, match=r"`variant` must be one of paper, balde. Received: variant='x'"):
        build_discriminator(variant="x")


@pytest.mark.parametrize("conditional", [False, True])
def test_save_reload_round_trip(tmp_path, conditional):
    for model in (build_generator(32, filters=8, conditional=conditional),
                  build_discriminator(32, filters=8, conditional=conditional, variant="balde")):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        again = keras.saving.load_model(path)
        assert stack(again) == stack(model)
        for a, b in zip(model.weights, again.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
