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


@pytest.fixture
def kermany128():
    if not (KERMANY128 / "train").is_dir():
        pytest.skip(f"shared Kermany data not found at {KERMANY128} (set KERAS_CXR_SHARED_DATA)")
    return KERMANY128
