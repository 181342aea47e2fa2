"""`smote`, `borderline_smote`, `adasyn`: imbalanced-learn on flattened pixels, reshaped back to
images (the paper's companion study). These need the pixels: synthetic images live in memory."""

import numpy as np
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE

from keras_cxr.resample.base import ResampledSet

_SAMPLERS = {"smote": SMOTE, "borderline_smote": BorderlineSMOTE, "adasyn": ADASYN}


class PixelSMOTE:
    """SMOTE-family interpolation between minority images in pixel space.

    Args:
        kind: str. "smote", "borderline_smote" or "adasyn".
        sampling_strategy: imbalanced-learn semantics. Defaults to "auto" (balance).
        k_neighbors: int. Defaults to 5 (imbalanced-learn's default).
        seed: int. Defaults to 0.
    """

    def __init__(self, kind: str = "smote", sampling_strategy="auto", k_neighbors: int = 5, seed: int = 0):
        self.kind, self.sampling_strategy, self.k_neighbors, self.seed = kind, sampling_strategy, k_neighbors, seed

    def fit_resample(self, X, y) -> ResampledSet:
        images, labels = X, np.asarray(y)
        n, h, w = images.shape
        k = min(self.k_neighbors, int(np.bincount(labels).min()) - 1)
        kwargs = {"n_neighbors": k} if self.kind == "adasyn" else {"k_neighbors": k}
        sampler = _SAMPLERS[self.kind](sampling_strategy=self.sampling_strategy, random_state=self.seed, **kwargs)
        x, y = sampler.fit_resample(images.reshape(n, h * w).astype(np.float32), labels)
        # imbalanced-learn returns the originals first, then the synthetic rows.
        synthetic = np.clip(np.round(x[n:]), 0, 255).astype(np.uint8).reshape(-1, h, w)
        return ResampledSet(indices=np.arange(n), synthetic_images=synthetic, synthetic_labels=y[n:].astype(np.int32))
