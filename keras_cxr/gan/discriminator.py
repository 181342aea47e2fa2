"""DCGAN discriminator (paper 4.4; Balde's variant one switch away), optionally conditional.

"paper" (paper 4.4 text): n x [Conv2D(F, 5, stride 2, same) -> LeakyReLU(0.2)] -> Flatten ->
Dense(1, sigmoid). "balde" (Balde's code [2]): the first conv has stride 1 and a Dropout sits
before the Dense. Conditional (Brownlee [4], paper Figure 4): label -> Embedding(num_classes,
embedding_dim) -> Dense(H*W) -> Reshape(H, W, 1), concatenated with the image as a second
channel. The "projection" head (Miyato & Koyama 2018) instead: D(x, y) = sigmoid(psi(phi(x)) +
<embed(y), phi(x)>), phi the flattened conv features, psi the Dense(1), embed an
Embedding(num_classes, dim phi); the image enters alone. `spectral_norm` wraps every conv and
Dense in `SpectralNorm` (Miyato et al. 2018). `transitional` scales the label's way in (the image
plane, or the projection term) by a `ConditionGate` (`keras_cxr.gan.transition`).
"""

from __future__ import annotations

import math

import keras

from keras_cxr.gan.settings import HEADS, VARIANTS, check_image_size, one_of, positive
from keras_cxr.gan.spectral_norm import SpectralNorm
from keras_cxr.gan.transition import ConditionGate


def num_downsampling_blocks(image_size: int) -> int:
    """5 at 128x128 (128->64->32->16->8->4); one fewer per halving of the image side."""
    check_image_size(image_size)
    return int(math.log2(image_size)) - 2


def build_discriminator(
    image_size: int = 128,
    filters: int = 128,
    conditional: bool = False,
    variant: str = "paper",
    num_classes: int = 2,
    embedding_dim: int = 50,
    dropout: float = 0.4,
    head: str = "concat",
    spectral_norm: bool = False,
    transitional: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds the DCGAN discriminator (the architectures: this module's docstring).

    Args:
        image_size: int. Input side, a power of two >= 16. Defaults to 128 (paper).
        filters: int. Channels F of every conv. Defaults to 128.
        conditional: bool. Add the `label` input and its image-plane head. Defaults to False.
        variant: str. "paper" or "balde". Defaults to "paper".
        num_classes: int. Defaults to 2.
        embedding_dim: int. Defaults to 50.
        dropout: float. Dropout rate of the "balde" variant. Defaults to 0.4.
        head: str. Conditional D's label input: "concat" (the paper's, Brownlee's image plane) or
            "projection". No effect without `conditional`. Defaults to "concat".
        spectral_norm: bool. Defaults to False (the paper).
        transitional: bool. Scale the label's input (the image plane, or the projection term) by
            a `ConditionGate` (`keras_cxr.gan.transition`). No effect without `conditional`.
            Defaults to False.
        name: str. Defaults to "discriminator" or "conditional_discriminator".

    Returns:
        keras.Model with inputs `image` [B, H, W, 1] (and `label` [B] int32), output [B, 1]
        probability that the image is real.
    """
    one_of("variant", variant, VARIANTS)
    positive("filters", filters)
    one_of("head", head, HEADS)

    def sn(layer):
        return SpectralNorm(layer, name=f"{layer.name}_sn", dtype=layer.dtype_policy) if spectral_norm else layer

    projection = conditional and head == "projection"
    image = keras.Input(shape=(image_size, image_size, 1), name="image")
    label = keras.Input(shape=(), dtype="int32", name="label") if conditional else None
    x = image if not conditional or projection else \
        _label_plane(image, label, image_size, num_classes, embedding_dim, transitional)
    for i in range(1, num_downsampling_blocks(image_size) + 1):
        stride = 1 if (variant == "balde" and i == 1) else 2
        x = sn(keras.layers.Conv2D(filters, 5, strides=stride, padding="same", name=f"down{i}_conv"))(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"down{i}_leaky_relu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if variant == "balde":
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    prob = _output(x, sn, label if projection else None, num_classes, transitional)
    name = name or ("conditional_discriminator" if conditional else "discriminator")
    return keras.Model([image, label] if conditional else image, prob, name=name)


def _label_plane(image, label, image_size: int, num_classes: int, embedding_dim: int, gated: bool):
    """Brownlee's conditional input: label -> Embedding -> Dense(H*W) -> (H, W, 1), a second channel."""
    y = keras.layers.Embedding(num_classes, embedding_dim, name="label_embedding")(label)
    y = keras.layers.Dense(image_size * image_size, name="label_dense")(y)
    y = keras.layers.Reshape((image_size, image_size, 1), name="label_reshape")(y)
    if gated:
        y = ConditionGate(name="label_gate")(y)
    return keras.layers.Concatenate(name="image_label_concat")([image, y])


def _output(features, sn, label, num_classes: int, gated: bool):
    """D's probability: Dense(1, sigmoid), or with a `label` the projection head. float32 under any
    mixed-precision policy: the BCE loss needs probabilities near 0 and 1."""
    if label is None:
        return sn(keras.layers.Dense(1, activation="sigmoid", name="output_dense", dtype="float32"))(features)
    logit = sn(keras.layers.Dense(1, name="output_dense", dtype="float32"))(features)
    return _projection(logit, features, label, num_classes, gated)


def _projection(logit, features, label, num_classes: int, gated: bool):
    """sigmoid(logit + <embed(label), features>): the projection discriminator's output."""
    embedded = keras.layers.Embedding(num_classes, features.shape[-1], name="label_projection")(label)
    projected = keras.layers.Dot(axes=1, name="projection_dot", dtype="float32")([embedded, features])
    if gated:
        projected = ConditionGate(name="label_gate", dtype="float32")(projected)
    logit = keras.layers.Add(name="projection_add")([logit, projected])
    return keras.layers.Activation("sigmoid", name="output_sigmoid", dtype="float32")(logit)
