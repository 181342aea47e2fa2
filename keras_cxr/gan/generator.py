"""DCGAN generator (Balde [2], paper 4.4), optionally conditioned on a label (paper 4.5).

z -> Dense(8*8*F) -> LeakyReLU(0.2) -> Reshape(8, 8, F) -> n x [Conv2DTranspose(F, 4, stride 2,
same) -> LeakyReLU(0.2)] -> Conv2D(1, 5, same, tanh). No BatchNorm (Balde's code). Conditional:
label -> Embedding(num_classes, embedding_dim), concatenated with z before the Dense (paper 4.5
text). `upsample="resize"` makes each block a nearest-neighbour 2x resize then Conv2D(F, 3,
same), which cannot make the checkerboard a stride-2 transposed conv with a kernel of 4 can
(Odena et al. 2016, "Deconvolution and Checkerboard Artifacts"). `transitional` scales the label
embedding by a `ConditionGate` (transitional conditioning, `keras_cxr.gan.transition`). The output conv computes with
`SingleFilterConv2D`'s CPU kernels when the current kernels say so (`keras_cxr.kernels.use`;
same numbers, ~4x faster training pass on CPU; the same layer class either way).
"""

from __future__ import annotations

import math

import keras

from keras_cxr.gan.settings import UPSAMPLING, check_image_size, one_of, positive
from keras_cxr.gan.transition import ConditionGate
from keras_cxr.kernels import current
from keras_cxr.kernels.gan_output_conv import SingleFilterConv2D

BASE_SIDE = 8  # Dense -> Reshape(8, 8, filters): the paper's first feature map


def num_upsampling_blocks(image_size: int) -> int:
    """4 at 128x128 (8->16->32->64->128); one fewer per halving of the image side."""
    check_image_size(image_size)
    return int(math.log2(image_size // BASE_SIDE))


def build_generator(
    image_size: int = 128,
    latent_dim: int = 100,
    filters: int = 128,
    conditional: bool = False,
    num_classes: int = 2,
    embedding_dim: int = 50,
    name: str | None = None,
    upsample: str = "transpose",
    transitional: bool = False,
) -> keras.Model:
    """Builds the DCGAN generator (the architecture: this module's docstring).

    Args:
        image_size: int. Output side, a power of two >= 16. Defaults to 128 (paper).
        latent_dim: int. Size of z. Defaults to 100.
        filters: int. Channels F of the Dense map and every transposed conv. Defaults to 128.
        conditional: bool. Add the `label` input and embedding head. Defaults to False.
        num_classes: int. Labels the embedding knows. Defaults to 2.
        embedding_dim: int. Defaults to 50 (Brownlee [4], paper 4.5).
        name: str. Defaults to "generator" or "conditional_generator".
        upsample: str. "transpose" (the paper's Conv2DTranspose) or "resize" (against the
            checkerboard). Defaults to "transpose".
        transitional: bool. Scale the label embedding by a `ConditionGate` (transitional
            conditioning, `keras_cxr.gan.transition`). No effect without `conditional`.
            Defaults to False.

    Returns:
        keras.Model with inputs `latent` [B, latent_dim] (and `label` [B] int32), output
        [B, image_size, image_size, 1] in [-1, 1].
    """
    for key, value in (("latent_dim", latent_dim), ("filters", filters), ("embedding_dim", embedding_dim)):
        positive(key, value)
    one_of("upsample", upsample, UPSAMPLING)
    blocks = num_upsampling_blocks(image_size)
    latent = keras.Input(shape=(latent_dim,), name="latent")
    x = latent
    if conditional:
        label = keras.Input(shape=(), dtype="int32", name="label")
        embedded = keras.layers.Embedding(num_classes, embedding_dim, name="label_embedding")(label)
        if transitional:
            embedded = ConditionGate(name="label_gate")(embedded)
        x = keras.layers.Concatenate(name="latent_label_concat")([latent, embedded])
    x = keras.layers.Dense(BASE_SIDE * BASE_SIDE * filters, name="project_dense")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="project_leaky_relu")(x)
    x = keras.layers.Reshape((BASE_SIDE, BASE_SIDE, filters), name="project_reshape")(x)
    for i in range(1, blocks + 1):
        if upsample == "transpose":
            x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"up{i}_conv_transpose")(x)
        else:
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_resize")(x)
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"up{i}_conv")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"up{i}_leaky_relu")(x)
    # float32 under any mixed-precision policy: tanh outputs are what D and the exports see.
    images = SingleFilterConv2D(1, 5, padding="same", activation="tanh", name="output_conv",
                                fast_kernels=current().gan_output_conv, dtype="float32")(x)
    name = name or ("conditional_generator" if conditional else "generator")
    return keras.Model([latent, label] if conditional else latent, images, name=name)
