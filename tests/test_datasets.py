import shutil

import numpy as np
import pytest
from PIL import Image

from keras_cxr.data import scan_dataset
from keras_cxr.data.images import ImageError
from keras_cxr.errors import KerasCXRError
from tests.conftest import SAMPLE


def test_bundled_sample_counts():
    scan = scan_dataset(SAMPLE)
    assert scan.counts() == {"train": [200, 100], "test": [50, 50]}
    assert scan.modes == {"L": 400} and scan.sizes == {"128x128": 400}
    assert scan.duplicates == []


def test_duplicates_are_grouped(kermany_tree):
    root = kermany_tree()
    src = sorted((root / "train" / "NORMAL").iterdir())[0]
    shutil.copy(src, root / "train" / "NORMAL" / "copy_a.png")
    Image.open(src).convert("RGB").save(root / "train" / "NORMAL" / "copy_b.jpeg", quality=100)
    scan = scan_dataset(root)
    assert len(scan.duplicates) == 1
    assert sorted(scan.duplicates[0]) == sorted([f"train/NORMAL/{src.name}", "train/NORMAL/copy_a.png"])


def test_kermany128_counts(kermany128):
    scan = scan_dataset(kermany128)
    assert scan.counts() == {"train": [1341, 3875], "test": [234, 390]}
    assert len(scan.duplicates) == 30
    assert sum(len(g) - 1 for g in scan.duplicates) == 32


def _break(root, case):
    if case == "missing train":
        shutil.rmtree(root / "train")
    elif case == "unknown class":
        (root / "train" / "COVID").mkdir()
    elif case == "empty class":
        for f in (root / "test" / "NORMAL").iterdir():
            f.unlink()
    elif case == "one class only":
        shutil.rmtree(root / "test" / "PNEUMONIA")
    elif case == "non-image file":
        (root / "train" / "NORMAL" / "notes.txt").write_text("hello")
    elif case == "zero-byte file":
        (root / "train" / "PNEUMONIA" / "zero.png").write_bytes(b"")
    elif case == "truncated file":
        f = sorted((root / "train" / "NORMAL").iterdir())[0]
        f.write_bytes(f.read_bytes()[:300])
    return root


@pytest.mark.parametrize("case, message", [
    ("missing train", r"missing train/ folder under .*data"),
    ("unknown class", r"unknown class folder .*COVID"),
    ("empty class", r"class folder is empty: .*test/NORMAL"),
    ("one class only", r"split 'test' has no PNEUMONIA folder"),
    ("non-image file", r"not an image file .*notes.txt"),
    ("zero-byte file", r"empty image file \(0 bytes\): .*zero.png"),
    ("truncated file", r"corrupt or truncated image: .*train/NORMAL"),
])
def test_bad_layouts_name_the_culprit(kermany_tree, case, message):
    root = _break(kermany_tree(), case)
    with pytest.raises(KerasCXRError, match=message):
        scan_dataset(root)


def test_skip_corrupt_lists_and_continues(kermany_tree):
    root = _break(_break(kermany_tree(), "non-image file"), "zero-byte file")
    scan = scan_dataset(root, skip_corrupt=True)
    assert sorted(f.split("/")[-1] for f, _ in scan.skipped) == ["notes.txt", "zero.png"]
    assert scan.counts()["train"] == [30, 30]


def test_unreadable_without_skip_is_image_error(kermany_tree):
    root = _break(kermany_tree(), "zero-byte file")
    with pytest.raises(ImageError, match="--skip-corrupt"):
        scan_dataset(root)


def test_class_names_are_configurable(kermany_tree):
    root = kermany_tree()
    for split in ("train", "test"):
        (root / split / "NORMAL").rename(root / split / "healthy")
        (root / split / "PNEUMONIA").rename(root / split / "sick")
    scan = scan_dataset(root, class_names=("healthy", "sick"))
    assert scan.counts()["train"] == [30, 30]


def test_extra_normal_folder_joins_train(kermany_tree, tmp_path):
    root = kermany_tree()
    extra = tmp_path / "nih"
    extra.mkdir()
    for f in sorted((SAMPLE / "test" / "NORMAL").iterdir())[10:15]:
        shutil.copy(f, extra / f.name)
    assert scan_dataset(root, extra_normal=extra).counts()["train"] == [35, 30]


def test_npz_medmnist_layout(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8) for s, n in (("train", 10), ("test", 4))}
    arrays["train_labels"] = np.array([[0]] * 6 + [[1]] * 4, dtype=np.uint8)
    arrays["test_labels"] = np.array([[0], [1], [0], [1]], dtype=np.uint8)
    path = tmp_path / "mini.npz"
    np.savez(path, **arrays)
    scan = scan_dataset(path)
    assert scan.counts() == {"train": [6, 4], "test": [2, 2]}
    assert scan.records[0].file.endswith("mini.npz#train/0")


@pytest.mark.parametrize("drop, message", [
    ("train_labels", r"has no `train_labels` array"),
    ("test_labels", r"has `test_\*` arrays but no `test_labels`"),
])
def test_npz_missing_keys(tmp_path, drop, message):
    arrays = {"train_images": np.zeros((4, 28, 28), np.uint8), "train_labels": np.array([0, 1, 0, 1]),
              "test_images": np.zeros((2, 28, 28), np.uint8), "test_labels": np.array([0, 1])}
    del arrays[drop]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(KerasCXRError, match=message):
        scan_dataset(path)


def test_shared_pneumoniamnist_npz_loads():
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "pneumoniamnist" / "aksufatih_snn-medmnist" / "pneumoniamnist.npz"
    if not path.exists():
        pytest.skip(f"shared PneumoniaMNIST not found at {path}")
    scan = scan_dataset(path)
    assert scan.counts() == {"train": [1214, 1214], "val": [135, 135], "test": [234, 234]}
