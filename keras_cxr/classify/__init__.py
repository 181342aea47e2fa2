"""Classify: the classifier backbones (ResNet18), the ImageNet weight converter, the tf.data
input pipeline and a compiled classifier reused across runs (`train.ClassifierSession`)."""

__all__ = ["LAST_CONV_LAYER", "build_resnet18"]


def __getattr__(name):
    # Keras is imported on first use, so that config validation (which reads the backbone names
    # in `classify.backbones`) does not start TensorFlow.
    if name in __all__:
        from keras_cxr.classify import resnet18

        return getattr(resnet18, name)
    raise AttributeError(f"module 'keras_cxr.classify' has no attribute {name!r}")
