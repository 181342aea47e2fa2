"""Resampling: one module per idea, each with imbalanced-learn's `fit_resample(X, y)`, X the train
images [N, H, W] uint8 and y their labels, returning a `ResampledSet` (indices into X, synthetic
images or a generator to stream from, class weights) rather than copied pixels."""

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
