"""Threshold controls: the baseline's own model with only its decision threshold moved.

A rebalanced train set moves where a classifier puts its threshold; these rows show what the
imbalanced baseline gets from that alone, with no training:
- `baseline_threshold`: the threshold on P(pneumonia) that maximises accuracy on the balanced
  validation set (its balanced accuracy), chosen on validation, applied to test;
- `logit_adjustment` (Menon et al. 2021, "Long-tail learning via logit adjustment", post hoc,
  tau = 1): subtract tau * log(prior) from each class's log-probability, which for two classes
  predicts pneumonia when P(pneumonia) > the train split's pneumonia share.
Both keep the baseline's scores, so their ROC AUC is the baseline's: they move F1, recall and
specificity only.
"""

from __future__ import annotations

import numpy as np

from keras_cxr.errors import KerasCXRError
from keras_cxr.metrics import binary_metrics


def best_validation_threshold(scores, labels) -> float:
    """The threshold t (predict 1 when score >= t) with the highest balanced accuracy on
    validation; ties go to the one nearest 0.5 (the untuned threshold), then the lower."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    candidates = np.unique(np.concatenate([scores, [0.5]]))
    best, best_t = -1.0, 0.5
    for t in sorted(candidates, key=lambda t: (abs(t - 0.5), t)):
        pred = scores >= t
        tpr = pred[labels == 1].mean() if (labels == 1).any() else 0.0
        tnr = (~pred[labels == 0]).mean() if (labels == 0).any() else 0.0
        score = (tpr + tnr) / 2
        if score > best + 1e-12:
            best, best_t = score, float(t)
    return best_t


def logit_adjusted_threshold(train_counts, tau: float = 1.0) -> float:
    """Post-hoc logit adjustment's threshold on P(pneumonia): predict 1 when
    log p1 - tau log pi1 > log p0 - tau log pi0, i.e. p1 / p0 > (pi1 / pi0)^tau."""
    n0, n1 = train_counts
    odds = (n1 / n0) ** tau
    return odds / (1 + odds)


def derive_cell(method: str, source: dict, test_labels, val_labels) -> dict:
    """The control's cell from its source (the baseline cell of the same seed): the same scores,
    weights and counts, the metrics at the moved threshold."""
    scores = np.asarray(source["test_scores"], dtype=np.float64)
    if method == "baseline_threshold":
        if "val_scores" not in source:
            raise KerasCXRError(f"the baseline cell of seed {source['seed']} records no validation scores (it was made "
                                f"before they were recorded): rerun it with --rebuild to derive {method}")
        threshold = best_validation_threshold(source["val_scores"], val_labels)
    elif method == "logit_adjustment":
        threshold = logit_adjusted_threshold(source["train_counts"])
    else:
        raise KerasCXRError(f"unknown threshold control {method!r}")
    metrics = binary_metrics(np.asarray(test_labels), (scores >= threshold).astype(int), scores)
    # Threshold-free, so the source's: computed from its unrounded scores (a cell keeps 6 decimals).
    metrics["roc_auc"] = source["metrics"]["roc_auc"]
    keep = ("seed", "preset", "image_size", "kernels", "weights_init", "test_scores", "train_counts_before",
            "train_counts", "train_images_per_epoch", "class_weight", "best_epoch", "best_val_accuracy", "weights",
            "classifier_config", "provenance")
    return {"method": method, **{k: source[k] for k in keep if k in source}, "metrics": metrics,
            "threshold": threshold, "derived_from": {"method": source["method"], "seed": source["seed"]},
            "generator": None, "history": {}, "timings_s": {"train": 0.0, "total": 0.0}}
