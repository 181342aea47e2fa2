import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score, recall_score

from keras_cxr.metrics import binary_metrics, metrics_from_confusion
from keras_cxr.pipeline.summary import bootstrap_ci, summarize


def test_known_confusion_matrix():
    tn, fp, fn, tp = 50, 10, 5, 35
    y_true = np.array([0] * (tn + fp) + [1] * (fn + tp))
    y_pred = np.array([0] * tn + [1] * fp + [0] * fn + [1] * tp)
    m = binary_metrics(y_true, y_pred, scores=y_pred.astype(float))
    assert m["confusion_matrix"] == [[50, 10], [5, 35]]
    assert m["precision"] == pytest.approx(35 / 45) == pytest.approx(precision_score(y_true, y_pred))
    assert m["recall"] == pytest.approx(35 / 40) == pytest.approx(recall_score(y_true, y_pred))
    assert m["specificity"] == pytest.approx(50 / 60)
    assert m["f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert metrics_from_confusion(m["confusion_matrix"])["f1"] == pytest.approx(m["f1"])


def test_paper_figure8_precision_does_not_fit_its_test_split():
    # FIDELITY.md: recall 0.842 and specificity 0.850 on 390 / 234 imply precision ~0.90, not 0.730.
    tp, tn = round(0.842 * 390), round(0.850 * 234)
    m = metrics_from_confusion([[tn, 234 - tn], [390 - tp, tp]])
    assert m["precision"] == pytest.approx(0.90, abs=0.01)


def test_degenerate_predictions_do_not_divide_by_zero():
    m = binary_metrics([0, 0, 1, 1], [0, 0, 0, 0])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0 and m["specificity"] == 1.0


def test_bootstrap_ci():
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    lo, hi = bootstrap_ci([0.1, 0.2, 0.3, 0.4, 0.5])
    assert 0.1 < lo < 0.3 < hi < 0.5
    assert all(np.isnan(bootstrap_ci([0.3])))


def _cell(method, seed, f1):
    m = {k: f1 for k in ("precision", "recall", "specificity", "f1", "roc_auc", "balanced_accuracy")}
    return {"method": method, "seed": seed, "metrics": m, "weights_init": "scratch"}


def test_paired_difference_to_baseline():
    cells = [_cell("baseline", s, 0.70 + 0.01 * s) for s in range(4)]
    cells += [_cell("oversample", s, 0.75 + 0.01 * s + 0.002 * (s % 2)) for s in range(4)]
    cells += [_cell("undersample", s, 0.70 + 0.01 * s + (0.02 if s % 2 else -0.02)) for s in range(4)]
    out = summarize(cells, ["baseline", "oversample", "undersample", "smote"], n_boot=2000)
    over = out["methods"]["oversample"]["vs_baseline"]["f1"]
    assert over["mean"] == pytest.approx(0.051) and over["ci_excludes_zero"]
    assert not out["methods"]["undersample"]["vs_baseline"]["f1"]["ci_excludes_zero"]
    assert out["missing"] == [f"smote seed {s}" for s in range(4)]


def test_paper_columns_only_for_the_papers_setting(tmp_path):
    from keras_cxr.data import build_manifest, write_manifest
    from keras_cxr.pipeline.paper import paper_setting_differences
    from keras_cxr.pipeline.summary import render_markdown
    from tests.test_imbalance import records, with_val

    def manifest(name, rs, classes=("NORMAL", "PNEUMONIA"), **kwargs):
        out, _ = build_manifest(rs, classes, minority_class=kwargs.pop("minority_class", classes[1]), **kwargs)
        write_manifest(tmp_path / name, out, classes)
        return tmp_path / name

    assert paper_setting_differences(manifest("paper.csv", records(train=(300, 300)))) == []
    ten = paper_setting_differences(manifest("ten.csv", records(train=(300, 300)), minority_fraction=0.1))
    assert ten == ["pneumonia is 10% of train + validation (the paper deletes pneumonia images to 25%)"]
    natural = paper_setting_differences(manifest("natural.csv", with_val(train=(10, 50)), natural=True, keep_val=True))
    assert natural and "pneumonia is 81%" in natural[0]  # (50 + 5) / (60 + 8)
    other = paper_setting_differences(manifest("other.csv", records(), classes=("benign", "malignant")))
    assert other == ["classes benign/malignant (the paper: NORMAL/PNEUMONIA)"]
    # The training must match too: the paper preset with ImageNet weights does, the quick one does not.
    from keras_cxr.config import load_preset

    paper_csv = manifest("paper2.csv", records(train=(300, 300)))
    assert paper_setting_differences(paper_csv, load_preset("paper"), imagenet=True) == []
    assert paper_setting_differences(paper_csv, load_preset("paper"), imagenet=False) == [
        "ResNet18 from scratch (Figure 8: ImageNet-initialised)"]
    assert paper_setting_differences(paper_csv, load_preset("tiny"), imagenet=True) == [
        "32x32 images (the paper: 128x128)", "classifier.backbone resnet18_w16 (the paper: resnet18)",
        "classifier.batch_size 16 (the paper: 32)", "classifier.epochs 1 (the paper: 5)"]

    summary = summarize([_cell("baseline", s, 0.7 + 0.01 * s) for s in range(3)], ["baseline"], n_boot=200)
    assert "| paper P |" in render_markdown(summary, "t", "c") and "0.782" in render_markdown(summary, "t", "c")
    md = render_markdown(summary, "t", "c", ten)
    assert "paper P" not in md and "0.782" not in md
    assert "The paper's columns are left out; this run's setting differs from the paper's: pneumonia is 10%" in md


def test_minimum_detectable_difference_and_calls():
    from keras_cxr.pipeline.summary import minimum_detectable_difference, render_markdown

    # (t_{0.975,4} + t_{0.8,4}) * 0.01 / sqrt(5) = (2.776 + 0.941) * 0.01 / 2.236
    assert minimum_detectable_difference(0.01, 5) == pytest.approx(0.016625, abs=1e-5)
    assert minimum_detectable_difference(0.01, 1) is None
    cells = [_cell("baseline", s, 0.70 + 0.01 * s) for s in range(5)]
    cells += [_cell("oversample", s, 0.75 + 0.01 * s + 0.002 * (s % 2)) for s in range(5)]
    cells += [_cell("undersample", s, 0.70 + 0.01 * s + (0.05 if s % 2 else -0.05)) for s in range(5)]
    cells += [_cell("smote", s, 0.60 + 0.01 * s) for s in range(5)]
    summary = summarize(cells, ["baseline", "oversample", "undersample", "smote"], n_boot=2000)
    md = render_markdown(summary, "t", "c")
    assert "| method | delta ROC AUC [95% CI] | p (t-test) | p (sign-flip) | p (Holm) | MDD | call |" in md
    # oversample: +0.05 with a tiny spread; smote: -0.10 exactly; undersample: +-0.05 around zero.
    assert "- Better than baseline: oversample." in md and "- Worse than baseline: smote." in md
    assert "- Cannot tell: undersample." in md
    over = summary["methods"]["oversample"]["vs_baseline"]["roc_auc"]
    assert over["p_holm"] == pytest.approx(min(1.0, 2 * over["p_t"]))  # Holm: 3 rows, smote's p is 0 (ranked first)
    assert summary["calls"] == {"endpoint": "roc_auc", "test": "two-sided paired t-test, Holm over rows", "alpha": 0.05}
    assert "| method | delta F1 | delta balanced accuracy | delta recall |" in md
    under = summary["methods"]["undersample"]["vs_baseline"]["f1"]
    assert under["mdd80"] == pytest.approx(minimum_detectable_difference(under["sd"], 5))


def test_imbalance_curve_from_two_folders(tmp_path):
    import json

    from keras_cxr.data import build_manifest, write_manifest
    from keras_cxr.pipeline.summary import write_results
    from keras_cxr.pipeline.imbalance_curve import curve_section
    from tests.test_imbalance import records

    folders = []
    for fraction, gain in ((0.25, 0.01), (0.10, 0.05)):  # rebalancing helps more at 10%
        folder = tmp_path / f"m{round(fraction * 100)}"
        out, _ = build_manifest(records(train=(300, 300)), minority_fraction=fraction)
        write_manifest(folder / "data" / "manifest.csv", out, ("NORMAL", "PNEUMONIA"))
        cells = [_cell("baseline", s, 0.70 + 0.01 * s) for s in range(3)]
        cells += [_cell("smote", s, 0.70 + 0.01 * s + gain + 0.002 * s) for s in range(3)]
        for c in cells:
            c.update(train_counts=[1, 1], best_epoch=1, timings_s={"train": 1.0})
            c["metrics"]["confusion_matrix"] = [[1, 0], [0, 1]]
        write_results(folder, cells, ["baseline", "smote"], [0, 1, 2], 200, "t", "c")
        folders.append(folder)
    (tmp_path / "report").mkdir()
    md, points = curve_section(folders, tmp_path / "report")
    assert (tmp_path / "report" / "imbalance_curve.png").stat().st_size > 1000
    assert [round(p["share"], 2) for p in points["smote"]] == [0.1, 0.25]  # sorted by share
    assert [round(p["f1"]["mean"], 3) for p in points["smote"]] == [0.052, 0.012]
    row = next(line for line in md if line.startswith("| smote |"))
    assert row.startswith("| smote | +0.052") and "+0.012" in row
    assert "baseline" not in points and json.dumps(points)  # report.json can hold it
