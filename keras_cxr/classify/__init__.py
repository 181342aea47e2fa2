"""Classify: the ResNet18, its ImageNet weight converter, and one training run per (method, seed)."""

from keras_cxr.classify.resnet18 import LAST_CONV_LAYER, build_resnet18

__all__ = ["LAST_CONV_LAYER", "build_resnet18"]
