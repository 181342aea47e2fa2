"""What every resampler returns, and imbalanced-learn's `sampling_strategy` for our own ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_cxr.data.imbalance import minority_label
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


def oversampling_targets(labels: np.ndarray, sampling_strategy="auto") -> dict:
    """{class: images to add}, with imbalanced-learn's over-sampling semantics.

    "auto" / "not majority": every class up to the majority count; float r: the minority up to
    r * majority (binary only); dict {class: wanted count}.
    """
    counts = np.bincount(labels, minlength=2)
    majority = 1 - minority_label(counts)
    if sampling_strategy in ("auto", "not majority", "all", "minority"):
        return {c: int(counts[majority] - counts[c]) for c in range(len(counts)) if c != majority}
    if isinstance(sampling_strategy, float):
        if not 0 < sampling_strategy <= 1:
            raise KerasCXRError(f"`sampling_strategy` must be in (0, 1] as a float. Received: sampling_strategy={sampling_strategy}")
        minority = 1 - majority
        wanted = int(round(sampling_strategy * counts[majority]))
        if wanted < counts[minority]:
            raise KerasCXRError(
                f"`sampling_strategy`={sampling_strategy} asks for fewer minority images ({wanted}) than exist ({counts[minority]})")
        return {minority: wanted - int(counts[minority])}
    if isinstance(sampling_strategy, dict):
        out = {}
        for c, wanted in sampling_strategy.items():
            if wanted < counts[c]:
                raise KerasCXRError(f"`sampling_strategy` asks for {wanted} images of class {c}, fewer than the {counts[c]} present")
            out[int(c)] = int(wanted - counts[c])
        return out
    raise KerasCXRError(f"`sampling_strategy` must be 'auto', a float or a dict. Received: sampling_strategy={sampling_strategy!r}")
