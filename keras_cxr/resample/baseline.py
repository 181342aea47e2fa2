"""`baseline`: the imbalanced train set as it is."""

import numpy as np

from keras_cxr.resample.base import ResampledSet


class NoResampling:
    """Uses every real train image once, unweighted."""

    def fit_resample(self, X, y) -> ResampledSet:
        return ResampledSet(indices=np.arange(len(y)))
