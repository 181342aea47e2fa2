"""A flat image folder plus a CSV of labels becomes a manifest: RSNA Pneumonia's `patientId,...,Target`
(DICOM, one row per box) and CheXpert's `Path,...,Pneumonia` (nested paths, 1.0 / 0.0 / -1.0 / blank)."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_cxr.data import SAMPLE_DIR, read_manifest, scan_dataset
from keras_cxr.data.images import read_grayscale
from keras_cxr.data.labels import LabelTable
from keras_cxr.pipeline.cli import main
from tests.test_robustness import one_error_line

NORMAL = sorted((SAMPLE_DIR / "train" / "NORMAL").glob("*.png"))[:30]
PNEUMONIA = sorted((SAMPLE_DIR / "train" / "PNEUMONIA").glob("*.png"))[:20]


def write_csv(path: Path, header: list, rows: list) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def rsna(tmp_path):
    """RSNA layout: stage_2_train_images/<patientId>.dcm and stage_2_train_labels.csv, where a
    pneumonia patient has one row per box and a normal one a row with blank box columns."""
    pytest.importorskip("pydicom", reason="pydicom is the optional dicom extra")
    from tests.test_dicom import write_dicom

    images = tmp_path / "stage_2_train_images"
    images.mkdir()
    rows = []
    for i, source in enumerate(NORMAL + PNEUMONIA):
        pid = f"{i:04d}-{source.stem}"
        p = read_grayscale(source, size=None)
        write_dicom(images / f"{pid}.dcm", p, bits=8)
        if source in PNEUMONIA:
            rows += [[pid, 100, 120, 80, 90, 1], [pid, 400, 130, 70, 95, 1]]  # two boxes, two rows
        else:
            rows.append([pid, "", "", "", "", 0])
    labels = write_csv(tmp_path / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], rows)
    return images, labels


def test_rsna_style_dicom_folder_and_labels_become_a_manifest(rsna, tmp_path, capsys):
    images, labels = rsna
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(images), "--labels", str(labels), "--path-column", "patientId",
                 "--label-column", "Target", "--label-map", "1=PNEUMONIA,0=NORMAL", "--test-fraction", "0.2",
                 "--minority-fraction", "0.25", "--val-per-class", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"note: 20 row(s) of {labels} repeat an image already listed with the same label" in err, err
    records, names = read_manifest(out / "manifest.csv")
    assert names == ("NORMAL", "PNEUMONIA")
    test = [r for r in records if r.split == "test"]
    assert sorted(r.label for r in test) == [0] * 6 + [1] * 4  # 20% of 30 and of 20, stratified
    train_val = [r for r in records if r.split != "test"]
    assert sum(r.label for r in train_val) == 8  # 24 normal kept -> 8 pneumonia is 25%
    for r in records:  # each record's pixels are its source PNG's, and its label the CSV's
        source = (NORMAL + PNEUMONIA)[int(Path(r.file).stem[:4])]
        assert r.label == (source in PNEUMONIA)
        np.testing.assert_array_equal(read_grayscale(r.file, 32), read_grayscale(source, 32))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "labels" and summary["labels"]["label_map"] == {"1": "PNEUMONIA", "0": "NORMAL"}


def test_the_test_carve_is_seeded_and_keeps_duplicates_together(rsna, tmp_path):
    images, labels = rsna
    shutil.copy(images / f"0000-{NORMAL[0].stem}.dcm", images / "copy.dcm")  # a pixel-identical pair
    with open(labels, "a", newline="") as fh:
        csv.writer(fh).writerow(["copy", "", "", "", "", 0])
    table = LabelTable(str(labels), "patientId", "Target", (("1", "PNEUMONIA"), ("0", "NORMAL")), seed=3)
    splits = {seed: {Path(r.file).name: r.split for r in scan_dataset(images, labels=LabelTable(
        **{**table.__dict__, "seed": seed})).records} for seed in (3, 3, 4)}
    first = scan_dataset(images, labels=table)
    assert {Path(r.file).name: r.split for r in first.records} == splits[3]
    assert splits[3] != splits[4]
    for seed in (3, 4):
        assert splits[seed]["copy.dcm"] == splits[seed][f"0000-{NORMAL[0].stem}.dcm"]


def test_chexpert_style_paths_values_and_split_column(tmp_path, capsys):
    """Paths under the dataset's parent folder, float label values, uncertain and blank labels
    left out on request, and the split taken from a column (CheXpert's train / valid)."""
    root = tmp_path / "chexpert_parent"
    rows = []
    for i, source in enumerate(NORMAL[:16] + PNEUMONIA[:12]):
        rel = Path("CheXpert-v1.0-small") / ("valid" if i % 4 == 0 else "train") / f"patient{i:05d}" / "study1"
        (root / rel).mkdir(parents=True)
        shutil.copy(source, root / rel / "view1_frontal.png")
        value = "1.0" if source in PNEUMONIA else "0.0"
        rows.append([str(rel / "view1_frontal.png"), "Female", 60, "Frontal", value, rel.parts[1]])
    extra = root / "CheXpert-v1.0-small" / "train" / "patient09999" / "study1"
    extra.mkdir(parents=True)
    shutil.copy(NORMAL[20], extra / "view1_frontal.png")
    shutil.copy(NORMAL[21], extra / "view2_lateral.png")
    rows += [[str(extra.relative_to(root) / "view1_frontal.png"), "Male", 70, "Frontal", "-1.0", "train"],
             [str(extra.relative_to(root) / "view2_lateral.png"), "Male", 70, "Lateral", "", "train"]]
    labels = write_csv(root / "train.csv", ["Path", "Sex", "Age", "Frontal/Lateral", "Pneumonia", "Split"], rows)
    args = ["data", "summary", str(root), "--labels", str(labels), "--label-column", "Pneumonia",
            "--label-map", "1=PNEUMONIA,0=NORMAL", "--split-column", "Split"]
    assert main(args) == 2  # -1.0 and blank are not mapped: an error that names them and the way out
    line = one_error_line(capsys)
    assert "column 'Pneumonia' has values --label-map does not name: '-1.0' (1 row), '' (1 row)" in line, line
    assert "--skip-unmapped" in line
    assert main(args + ["--skip-unmapped"]) == 0
    captured = capsys.readouterr()
    assert "note: skipped 2 row(s)" in captured.err
    scan = scan_dataset(root, labels=LabelTable(str(labels), None, "Pneumonia", (("1", "PNEUMONIA"), ("0", "NORMAL")),
                                                True, "Split"))
    assert scan.counts() == {"train": [12, 9], "val": [4, 3]}, scan.counts()
    assert "train" in captured.out and "val" in captured.out


@pytest.mark.parametrize("extra, message", [
    (["--label-column", "Nope"], "has no column 'Nope' (--label-column); its columns: Path, Pneumonia"),
    (["--label-map", "1=PNEUMONIA,0=HEALTHY"], "--label-map names ['HEALTHY'], which are not among the class names"),
    (["--label-map", "1PNEUMONIA"], "--label-map takes VALUE=CLASS pairs"),
    (["--split-column", "Pneumonia"], "line 2: split '0' in column 'Pneumonia' is not one of train, val"),
    (["--test-fraction", "1.5"], "--test-fraction must be in (0, 1). Received: 1.5"),
])
def test_label_file_errors_are_one_line(tmp_path, capsys, extra, message):
    (tmp_path / "img").mkdir()
    rows = []
    for i, source in enumerate(NORMAL[:4] + PNEUMONIA[:4]):
        shutil.copy(source, tmp_path / "img" / f"{i}.png")
        rows.append([f"{i}.png", int(source in PNEUMONIA)])
    labels = write_csv(tmp_path / "labels.csv", ["Path", "Pneumonia"], rows)
    args = ["data", "prepare", str(tmp_path / "img"), "--labels", str(labels), "--label-map", "1=PNEUMONIA,0=NORMAL",
            "--out", str(tmp_path / "out")]
    assert main(args + extra) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_missing_files_and_options_without_labels_are_errors(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    labels = write_csv(tmp_path / "labels.csv", ["id", "Target"], [["a", 0], ["b", 1]])
    assert main(["data", "summary", str(tmp_path / "img"), "--labels", str(labels), "--label-map", "1=PNEUMONIA,0=NORMAL"]) == 2
    line = one_error_line(capsys)
    assert "lists 2 image(s) not found under" in line and ": a, b" in line, line
    assert main(["data", "summary", str(tmp_path / "img"), "--label-column", "Target"]) == 2
    assert "--label-column read a CSV of labels, and none was given: pass it with --labels FILE" in one_error_line(capsys)
    assert main(["data", "summary", str(tmp_path / "img")]) == 2  # a flat folder without --labels
    assert "for a flat folder with a CSV of labels: `data prepare" in one_error_line(capsys)
