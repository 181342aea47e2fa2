"""Resampling: one module per idea, each with imbalanced-learn's `fit_resample(X, y)`, X the train
images [N, H, W] uint8 and y their labels, returning a `ResampledSet` (indices into X, synthetic
images or a generator to stream from, class weights) rather than copied pixels.

The names below are imported on first use: imbalanced-learn takes ~1.5 s to import, and checking
a preset (`check`) needs none of it."""

from keras_cxr.errors import KerasCXRError

_WHERE = {
    "GeneratedSource": "base", "ResampledSet": "base", "oversampling_targets": "base", "NoResampling": "baseline",
    "ClassWeights": "class_weights", "balanced_class_weights": "class_weights", "GANOversample": "gan",
    "RandomOversample": "random_sampling", "RandomUndersample": "random_sampling", "PixelSMOTE": "smote",
}
__all__ = sorted(_WHERE) + ["check"]


def check(config) -> None:
    """The `resample` section: SMOTE's neighbours."""
    k = config.resample.smote_k_neighbors
    if k < 1:
        raise KerasCXRError(f"`resample.smote_k_neighbors` must be >= 1. Received: smote_k_neighbors={k}")


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"keras_cxr.resample.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'keras_cxr.resample' has no attribute {name!r}")
