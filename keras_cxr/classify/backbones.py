"""The classifier networks, by name (`classifier.backbone`), and the one builder every stage uses.

Training, Grad-CAM and the feature extractor of the quality metrics all call `build_classifier`,
so they agree on the network and on which layers hold the features and the Grad-CAM target.
ResNet18 (paper 4.1) is the backbone; `resnet18_w16` is the same network at a quarter of its
width, for the `tiny` (test) preset. Another backbone is one entry in `BACKBONES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from keras_cxr.errors import KerasCXRError


@dataclass(frozen=True)
class Backbone:
    """How to build one network and where its named layers are.

    Args:
        build: callable (image_size) -> keras.Model, `image` [B, H, W, 1] in [0, 1]
            -> `fc` [B, 2] sigmoid probabilities.
        feature_layer: str. Penultimate layer whose output is the image's feature vector.
        gradcam_layer: str. Layer Grad-CAM explains (the last conv block's output).
        load_imagenet: callable (model, path) or None. Loads converted ImageNet weights.
    """

    build: Callable[..., Any]
    feature_layer: str
    gradcam_layer: str
    load_imagenet: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Classifier:
    """A built network with the names of its feature and Grad-CAM layers."""

    model: Any
    feature_layer: str
    gradcam_layer: str


def _resnet18() -> Backbone:
    from keras_cxr.classify.convert import load_imagenet_weights
    from keras_cxr.classify.resnet18 import LAST_CONV_LAYER, build_resnet18

    return Backbone(lambda size: build_resnet18(size), "avgpool", LAST_CONV_LAYER,
                    load_imagenet_weights)


def _resnet18_w16() -> Backbone:
    from keras_cxr.classify.resnet18 import LAST_CONV_LAYER, build_resnet18

    # No ImageNet weights: they exist for the full width only.
    return Backbone(lambda size: build_resnet18(size, width=16), "avgpool", LAST_CONV_LAYER)


# Name -> a function returning the Backbone (imports Keras only when a network is built).
BACKBONES: dict[str, Callable[[], Backbone]] = {"resnet18": _resnet18, "resnet18_w16": _resnet18_w16}


MIN_IMAGE_SIZE = 28  # MedMNIST's side: ResNet18's layer4 is still a 1x1 map


def check(config) -> None:
    """`classifier.backbone` names a known network, and `image_size` is one it takes."""
    check_name(config.classifier.backbone)
    if config.image_size < MIN_IMAGE_SIZE:
        raise KerasCXRError(f"`image_size` must be >= {MIN_IMAGE_SIZE}. Received: image_size={config.image_size}")


def check_name(name: str) -> None:
    if name not in BACKBONES:
        raise KerasCXRError(f"`classifier.backbone` must be one of {', '.join(BACKBONES)}. Received: backbone={name!r}")


def backbone(name: str) -> Backbone:
    check_name(name)
    return BACKBONES[name]()


def build_classifier(config=None, *, image_size: int | None = None, backbone_name: str | None = None) -> Classifier:
    """The preset's classifier network, freshly initialised (Keras' global seed decides the weights).

    Args:
        config: Config. Supplies `image_size`, `classifier.backbone` and `kernels` (unless a
            `keras_cxr.kernels.use` scope is active).
        image_size, backbone_name: override or replace `config` (the report rebuilds a cell's
            network from what the cell recorded).
    """
    import contextlib

    from keras_cxr.kernels import preset

    image_size = image_size or config.image_size
    spec = backbone(backbone_name or (config.classifier.backbone if config else "resnet18"))
    with preset(config.kernels) if config is not None else contextlib.nullcontext():
        return Classifier(spec.build(image_size), spec.feature_layer, spec.gradcam_layer)
