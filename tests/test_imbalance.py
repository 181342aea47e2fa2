import pytest

from keras_cxr.data import Record, build_manifest, scan_dataset
from keras_cxr.errors import KerasCXRError


def records(train=(30, 30), test=(5, 7)):
    out = []
    for split, counts in (("train", train), ("test", test)):
        for label, n in enumerate(counts):
            out += [Record(f"/d/{split}/{label}/{i:03d}.png", label, split) for i in range(n)]
    return out


def counts(rs, split):
    return [sum(1 for r in rs if r.split == split and r.label == c) for c in (0, 1)]


def test_exact_counts():
    out, info = build_manifest(records(), minority_fraction=0.25, val_per_class=2, seed=0)
    assert info["before_val_carve"] == {"NORMAL": 30, "PNEUMONIA": 10}
    assert counts(out, "train") == [28, 8]
    assert counts(out, "val") == [2, 2]
    assert counts(out, "test") == [5, 7]


def test_test_split_untouched():
    rs = records()
    out, _ = build_manifest(rs, val_per_class=1)
    assert sorted(r.file for r in out if r.split == "test") == sorted(r.file for r in rs if r.split == "test")


def test_seeded_and_reproducible():
    a, _ = build_manifest(records(), seed=1)
    b, _ = build_manifest(records(), seed=1)
    c, _ = build_manifest(records(), seed=2)
    assert a == b
    assert a != c


def test_default_val_per_class_is_ten_percent_of_minority():
    out, info = build_manifest(records(train=(300, 300)))
    assert info["val_per_class"] == 10  # 10% of 100 pneumonia
    assert counts(out, "val") == [10, 10]


def test_normal_as_minority():
    out, info = build_manifest(records(train=(30, 30)), minority_class="NORMAL", val_per_class=1)
    assert info["before_val_carve"] == {"PNEUMONIA": 30, "NORMAL": 10}


@pytest.mark.parametrize("kwargs, message", [
    ({"minority_fraction": 0.0}, r"`minority_fraction` must be in \(0, 0.5\]. Received: minority_fraction=0.0"),
    ({"minority_fraction": 0.6}, r"`minority_fraction` must be in \(0, 0.5\]. Received: minority_fraction=0.6"),
    ({"minority_fraction": -1}, r"`minority_fraction` must be in \(0, 0.5\]"),
    ({"val_per_class": 10}, r"`val_per_class`=10 leaves no PNEUMONIA image for training"),
    ({"val_per_class": 0}, r"`val_per_class` must be >= 1"),
    ({"minority_class": "COVID"}, r"`minority_class` must be one of"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(KerasCXRError, match=message):
        build_manifest(records(), **kwargs)


def test_not_enough_minority_images():
    with pytest.raises(KerasCXRError, match=r"needs 30 PNEUMONIA train images .* only 5 exist"):
        build_manifest(records(train=(30, 5)), minority_fraction=0.5)


def test_kermany128_default(kermany128):
    scan = scan_dataset(kermany128)
    out, info = build_manifest(scan.records, scan.class_names)
    assert info["before_val_carve"] == {"NORMAL": 1341, "PNEUMONIA": 447}
    assert counts(out, "val") == [45, 45]
    assert counts(out, "train") == [1296, 402]
    assert counts(out, "test") == [234, 390]
