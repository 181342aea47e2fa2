"""What every resampler returns, and imbalanced-learn's `sampling_strategy` for our own ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_cxr.errors import KerasCXRError


@dataclass(frozen=True)
class GeneratedSource:
    """Images to stream from an exported generator: `count` images of `label`, from `seed`."""

    path: str
    label: int
    count: int
    seed: int


@dataclass
class ResampledSet:
    """A rebalanced train set, described without copying pixels where it can be helped.

    Args:
        indices: int array. Real train images to use, by index (repeats = duplicates).
        synthetic_images: uint8 [M, H, W] or None. In-memory synthetic images (SMOTE family).
        synthetic_labels: int32 [M] or None.
        generated: GeneratedSource or None. Synthetic images streamed from a SavedModel.
        class_weight: dict or None. Per-class loss weights ({0: w0, 1: w1}).
    """

    indices: np.ndarray
    synthetic_images: np.ndarray | None = None
    synthetic_labels: np.ndarray | None = None
    generated: GeneratedSource | None = None
    class_weight: dict | None = None

    def class_counts(self, labels: np.ndarray) -> list[int]:
        """Images per class the classifier will see each epoch."""
        counts = np.bincount(labels[self.indices], minlength=2)
        if self.synthetic_labels is not None:
            counts = counts + np.bincount(self.synthetic_labels, minlength=2)
        if self.generated is not None:
            counts[self.generated.label] += self.generated.count
        return counts.tolist()


def oversampling_targets(y: np.ndarray, sampling_strategy="auto") -> dict:
    """{class: images to add}: an over-sampling `sampling_strategy` ("auto", a float ratio, a
    dict of wanted counts) read by imbalanced-learn's own `check_sampling_strategy`."""
    from imblearn.utils import check_sampling_strategy  # imported on use: ~1.5 s

    try:
        targets = check_sampling_strategy(sampling_strategy, np.asarray(y), "over-sampling")
    except ValueError as exc:
        raise KerasCXRError(f"`sampling_strategy`: {exc} Received: sampling_strategy={sampling_strategy!r}") from None
    return {int(c): int(n) for c, n in targets.items()}
