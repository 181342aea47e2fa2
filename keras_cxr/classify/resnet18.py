"""ResNet18 (He et al. 2016; BasicBlock [2, 2, 2, 2], 64-128-256-512) as one flat functional model.

`width` scales every stage (16 gives 16-32-64-128): the same blocks and layer names at a
sixteenth of the multiply-adds, which the `tiny` (test) preset uses to check wiring, not learning.

Layer names follow torchvision's state-dict keys (`conv1`, `bn1`, `layer2_block1_conv1`,
`layer2_block1_downsample_conv`, ...), so Grad-CAM can address `layer4_block2_relu2` and the
converter maps ImageNet weights one to one. Padding is explicit and symmetric, as in PyTorch
(Keras "same" pads stride-2 convs asymmetrically), so converted weights give torchvision's numbers.
Head: Dense(2, sigmoid) trained with binary cross-entropy on one-hot labels (paper 4.1). The
current kernels (`keras_cxr.kernels.use`) choose the residual convs' input-gradient path and batch
norm's kernel; the layer classes are the same either way, so weight files load across settings.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_cxr.classify.backbones import MIN_IMAGE_SIZE
from keras_cxr.errors import KerasCXRError
from keras_cxr.kernels import current
from keras_cxr.kernels.batch_norm import FusedBatchNormalization
from keras_cxr.kernels.conv_input_grad import FastGradConv2D

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WIDTH = 64  # the paper's (and torchvision's) first-stage filters
STAGES = ((1, 1), (2, 2), (4, 2), (8, 2))  # (filters as a multiple of width, first stride); 2 blocks each
BN_EPSILON = 1e-5  # PyTorch's default
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1


def _bn(name, fused=True):
    return FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name, fused=fused)


def _conv(filters, kernel, stride, name, fast_input_grad=None):
    if fast_input_grad is None:  # the stem: few channels, where the stock kernel is fast
        return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=name)
    # Residual stages always use FastGradConv2D, whichever gradient path it takes, so weight
    # files (keyed by layer class) load on CPU and GPU machines alike.
    return FastGradConv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=name,
                          fast_input_grad=fast_input_grad)


def _basic_block(x, filters, stride, prefix, fast, fused_bn):
    shortcut = x
    y = keras.layers.ZeroPadding2D(1, name=f"{prefix}_pad1")(x)
    y = _conv(filters, 3, stride, f"{prefix}_conv1", fast)(y)
    y = _bn(f"{prefix}_bn1", fused_bn)(y)
    y = keras.layers.ReLU(name=f"{prefix}_relu1")(y)
    y = keras.layers.ZeroPadding2D(1, name=f"{prefix}_pad2")(y)
    y = _conv(filters, 3, 1, f"{prefix}_conv2", fast)(y)
    y = _bn(f"{prefix}_bn2", fused_bn)(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, stride, f"{prefix}_downsample_conv", fast)(x)
        shortcut = _bn(f"{prefix}_downsample_bn", fused_bn)(shortcut)
    y = keras.layers.Add(name=f"{prefix}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{prefix}_relu2")(y)


def build_resnet18(image_size: int = 128, num_classes: int = 2, name: str = "resnet18",
                   width: int = WIDTH) -> keras.Model:
    """Builds ResNet18 for grayscale input in [0, 1].

    The gray channel is replicated to RGB and normalised with the ImageNet mean and std
    (torchvision's convention; paper section 3 "normalize"), so scratch and ImageNet-initialised
    models share one graph.

    Args:
        image_size: int. Input side (>= 28). Defaults to 128 (paper).
        num_classes: int. Units of the sigmoid head. Defaults to 2 (paper 4.1).
        name: str. Defaults to "resnet18".
        width: int. Filters of the stem and the first stage; the later stages double it.
            Defaults to 64 (ResNet18; ImageNet weights exist only for it).

    Returns:
        keras.Model: `image` [B, H, W, 1] -> `fc` [B, num_classes] sigmoid probabilities.
    """
    if image_size < MIN_IMAGE_SIZE:
        raise KerasCXRError(f"`image_size` must be >= {MIN_IMAGE_SIZE} for ResNet18. Received: image_size={image_size}")
    if width < 1:
        raise KerasCXRError(f"`width` must be >= 1. Received: width={width}")
    kernels = current()  # residual convs' gradient path and batch norm's kernel (keras_cxr.kernels.use)
    fast_input_grad, fused_bn = kernels.conv_input_grad, kernels.fused_bn
    image = keras.Input((image_size, image_size, 1), name="image")
    x = keras.layers.Concatenate(name="gray_to_rgb")([image, image, image])
    x = keras.layers.Normalization(
        mean=IMAGENET_MEAN, variance=np.square(IMAGENET_STD).tolist(), name="imagenet_normalize")(x)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = _conv(width, 7, 2, "conv1")(x)
    x = _bn("bn1", fused_bn)(x)
    x = keras.layers.ReLU(name="relu")(x)
    # Zero padding equals PyTorch's -inf padding here: the input is >= 0 after the ReLU.
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    for stage, (multiple, stride) in enumerate(STAGES, start=1):
        for block in (1, 2):
            x = _basic_block(x, multiple * width, stride if block == 1 else 1, f"layer{stage}_block{block}",
                              fast_input_grad, fused_bn)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    out = keras.layers.Dense(num_classes, activation="sigmoid", name="fc", dtype="float32")(x)  # float32 under mixed precision
    return keras.Model(image, out, name=name)


LAST_CONV_LAYER = "layer4_block2_relu2"  # Grad-CAM target: output of the last conv block
