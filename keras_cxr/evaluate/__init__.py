"""Evaluate: metrics from one confusion matrix, the (method, seed) matrix, and its summary."""

from keras_cxr.evaluate.metrics import binary_metrics

__all__ = ["binary_metrics"]
