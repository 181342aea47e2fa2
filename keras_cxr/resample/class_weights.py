"""`class_weights`: w_j = n / (c * n_j) in the loss (paper section 2), data unchanged."""

import numpy as np

from keras_cxr.resample.base import ResampledSet


def balanced_class_weights(labels) -> dict:
    """w_j = n / (c * n_j): n images, c classes, n_j images of class j."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=2)
    n, c = len(labels), len(counts)
    return {j: float(n / (c * counts[j])) for j in range(c)}


class ClassWeights:
    """Every real image once; the loss weighs class j by n / (c * n_j)."""

    def fit_resample(self, X, y) -> ResampledSet:
        return ResampledSet(indices=np.arange(len(y)), class_weight=balanced_class_weights(y))
