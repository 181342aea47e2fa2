"""Resampling: one module per idea, all with `fit_resample(labels, images) -> ResampledSet`."""

from keras_cxr.resample.base import GeneratedSource, ResampledSet, oversampling_targets
from keras_cxr.resample.baseline import NoResampling
from keras_cxr.resample.class_weights import ClassWeights, balanced_class_weights
from keras_cxr.resample.gan import GANOversample
from keras_cxr.resample.random_sampling import RandomOversample, RandomUndersample
from keras_cxr.resample.smote import PixelSMOTE

__all__ = [
    "ClassWeights", "GANOversample", "GeneratedSource", "NoResampling", "PixelSMOTE", "RandomOversample",
    "RandomUndersample", "ResampledSet", "balanced_class_weights", "oversampling_targets",
]
