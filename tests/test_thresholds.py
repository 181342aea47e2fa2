"""Threshold controls: the baseline's own scores with only the threshold moved, no training."""

import json

import numpy as np
import pytest

from keras_cxr.data import read_manifest
from keras_cxr.evaluate.thresholds import best_validation_threshold, logit_adjusted_threshold
from keras_cxr.methods import method_names
from keras_cxr.pipeline.cli import main


def test_the_thresholds():
    scores, labels = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.9]), np.array([0, 0, 0, 1, 1, 1])
    assert best_validation_threshold(scores, labels) == pytest.approx(0.35)  # separates them perfectly
    assert best_validation_threshold(np.array([0.2, 0.8]), np.array([0, 1])) == pytest.approx(0.5)  # tie: nearest 0.5
    # 402 pneumonia among 1,698: predict pneumonia above the prior, 0.2367
    assert logit_adjusted_threshold([1296, 402]) == pytest.approx(402 / 1698)
    assert logit_adjusted_threshold([100, 100]) == pytest.approx(0.5)


def test_controls_are_not_default_rows():
    assert "logit_adjustment" not in method_names() and "baseline_threshold" in method_names(extra=True)


def test_controls_in_the_matrix_reuse_the_baseline_cell(tmp_path):
    out = tmp_path / "m"
    assert main(["evaluate-all", "--preset", "tiny", "--seeds", "0", "--methods", "baseline_threshold",
                 "logit_adjustment", "--out", str(out), "--quiet"]) == 0
    cells = {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    assert set(cells) == {"baseline__seed0", "baseline_threshold__seed0", "logit_adjustment__seed0"}  # source run too
    base = cells["baseline__seed0"]
    records, _ = read_manifest(out / "data" / "manifest.csv")
    test_labels = np.array([r.label for r in records if r.split == "test"])
    val_labels = np.array([r.label for r in records if r.split == "val"])
    assert len(base["val_scores"]) == len(val_labels)
    scores = np.array(base["test_scores"])
    for name, threshold in (("logit_adjustment", logit_adjusted_threshold(base["train_counts"])),
                            ("baseline_threshold", best_validation_threshold(base["val_scores"], val_labels))):
        cell = cells[f"{name}__seed0"]
        assert cell["threshold"] == pytest.approx(threshold) and cell["test_scores"] == base["test_scores"]
        assert cell["metrics"]["roc_auc"] == base["metrics"]["roc_auc"]  # the same scores
        pred = scores >= threshold
        tp = int((pred & (test_labels == 1)).sum())
        assert cell["metrics"]["confusion_matrix"][1][1] == tp and cell["timings_s"]["train"] == 0.0
        assert cell["identity"]["method"] == name
    # Rerun: nothing to do, the controls reused as they are.
    assert main(["evaluate-all", "--preset", "tiny", "--seeds", "0", "--methods", "baseline", "baseline_threshold",
                 "logit_adjustment", "--out", str(out), "--quiet"]) == 0
    md = (out / "results.md").read_text()
    assert "| baseline_threshold |" in md and "| logit_adjustment |" in md


def test_threshold_controls_are_a_holm_family_of_their_own():
    from keras_cxr.evaluate.stats import holm
    from keras_cxr.pipeline.summary import METRICS, summarize

    rng = np.random.default_rng(0)
    cells = []
    for s in range(5):
        base = 0.8 + rng.normal(0, 0.01)
        for m, shift in (("baseline", 0.0), ("oversample", 0.01), ("smote", 0.02), ("logit_adjustment", 0.0)):
            value = base + shift + (0.0 if m in ("baseline", "logit_adjustment") else rng.normal(0, 0.005))
            cells.append({"method": m, "seed": s, "metrics": {k: value for k in METRICS}, "weights_init": "scratch"})
    rows = summarize(cells, ["baseline", "oversample", "smote", "logit_adjustment"], n_boot=50)["methods"]
    auc = {m: rows[m]["vs_baseline"]["roc_auc"] for m in ("oversample", "smote", "logit_adjustment")}
    # The rebalancing rows are adjusted over the two of them only; the control (same scores as
    # the baseline: every difference 0, p = 1) neither joins nor weakens their family.
    want = holm({m: auc[m]["p_t"] for m in ("oversample", "smote")})
    assert {m: auc[m]["p_holm"] for m in ("oversample", "smote")} == want
    assert auc["logit_adjustment"]["p_t"] == auc["logit_adjustment"]["p_holm"] == 1.0
