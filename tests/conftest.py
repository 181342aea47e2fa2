"""Shared fixtures: real images from the bundled sample, small Kermany-style trees built from
them, and the shared Kermany data when it is present beside the checkout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "keras_cxr" / "data" / "sample"
SHARED_DATA = Path(os.environ.get("KERAS_CXR_SHARED_DATA", REPO.parent / "shared" / "data"))
KERMANY128 = SHARED_DATA / "kermany128"


# The longest files (by `pytest --durations`) are handed out first, so that `make test`'s two
# xdist workers (`--dist loadfile`) finish together instead of one waiting on the matrix file.
LONGEST_FIRST = ("test_evaluate_all.py", "test_train_gan.py", "test_serving.py", "test_tracking.py",
                 "test_install.py", "test_classifier_cells.py", "test_calls.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def assert_same_outputs_and_gradients(stock, fast, x, loss, rtol=1e-4, atol=1e-5):
    """Two built layers with the same weights give the same outputs, and the same gradients of
    `loss(outputs)` with respect to the input and every trainable weight."""
    import numpy as np
    import tensorflow as tf

    results = []
    for layer in (stock, fast):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            value = loss(y)
        results.append((y, *tape.gradient(value, [x, *layer.trainable_weights])))
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def sample_files(split: str, cls: str, n: int) -> list[Path]:
    return sorted((SAMPLE / split / cls).glob("*.png"))[:n]


@pytest.fixture
def kermany_tree(tmp_path):
    """Builds ROOT/{train,test}/{NORMAL,PNEUMONIA} from real sample images; returns a builder."""

    def build(train=(30, 30), test=(6, 6), name="data") -> Path:
        root = tmp_path / name
        for split, (n0, n1) in (("train", train), ("test", test)):
            for cls, n in (("NORMAL", n0), ("PNEUMONIA", n1)):
                d = root / split / cls
                d.mkdir(parents=True)
                for f in sample_files(split, cls, n):
                    shutil.copy(f, d / f.name)
        return root

    return build


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A prepared manifest of the bundled sample (200 N / 66 P before the carve), once per module."""
    from keras_cxr.pipeline.cli import main

    out = tmp_path_factory.mktemp("prepared")
    assert main(["data", "prepare", "--val-per-class", "4", "--out", str(out)]) == 0
    return out / "manifest.csv"


@pytest.fixture
def kermany128():
    if not (KERMANY128 / "train").is_dir():
        pytest.skip(f"shared Kermany data not found at {KERMANY128} (set KERAS_CXR_SHARED_DATA)")
    return KERMANY128
