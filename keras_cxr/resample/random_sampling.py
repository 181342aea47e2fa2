"""`undersample` / `oversample`: random deletion of the majority or duplication of the minority
(paper 4.2), by imbalanced-learn on image indices (no pixels copied)."""

import numpy as np
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler

from keras_cxr.resample.base import ResampledSet


class _IndexSampler:
    sampler_cls = None

    def __init__(self, sampling_strategy="auto", seed: int = 0):
        self.sampling_strategy = sampling_strategy
        self.seed = seed

    def fit_resample(self, X, y) -> ResampledSet:
        sampler = self.sampler_cls(sampling_strategy=self.sampling_strategy, random_state=self.seed)
        # On image indices, not pixels: the sampler picks rows, the pipeline reads the images.
        idx, _ = sampler.fit_resample(np.arange(len(y)).reshape(-1, 1), np.asarray(y))
        return ResampledSet(indices=np.sort(idx[:, 0]))


class RandomUndersample(_IndexSampler):
    """Deletes majority images at random until the classes are balanced ('auto')."""

    sampler_cls = RandomUnderSampler


class RandomOversample(_IndexSampler):
    """Duplicates minority images at random until the classes are balanced ('auto')."""

    sampler_cls = RandomOverSampler
