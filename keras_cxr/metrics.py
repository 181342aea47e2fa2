"""Every metric of a run derived from one confusion matrix (pneumonia = class 1 = positive)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def binary_metrics(y_true, y_pred, scores=None) -> dict:
    """Precision, recall (sensitivity), specificity, F1, accuracy, balanced accuracy, ROC AUC.

    Args:
        y_true: int array. True labels, 1 = positive (pneumonia).
        y_pred: int array. Predicted labels.
        scores: float array or None. Positive-class scores for ROC AUC.

    Returns:
        dict with the metrics and `confusion_matrix` [[TN, FP], [FN, TP]] (scikit-learn order).
    """
    cm = confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    out = {
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "balanced_accuracy": (recall + specificity) / 2,
        "roc_auc": None,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
    if scores is not None and len(set(np.asarray(y_true).tolist())) == 2:
        out["roc_auc"] = float(roc_auc_score(y_true, scores))
    return out


def metrics_from_confusion(cm) -> dict:
    """The same metrics recomputed from a stored [[TN, FP], [FN, TP]] (for consistency checks)."""
    (tn, fp), (fn, tp) = cm
    y_true = [0] * (tn + fp) + [1] * (fn + tp)
    y_pred = [0] * tn + [1] * fp + [0] * fn + [1] * tp
    return binary_metrics(y_true, y_pred)
