import numpy as np
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


def test_duplicate_groups_stay_in_one_of_train_or_val(kermany_tree):
    import shutil

    root = kermany_tree(train=(30, 30))
    first = sorted((root / "train" / "NORMAL").glob("*.png"))[0]
    shutil.copy(first, first.with_name("planted_copy.png"))  # a planted pixel-identical pair
    scan = scan_dataset(root)
    assert len(scan.duplicate_records) == 1 and len(scan.duplicate_records[0]) == 2
    apart = {"guarded": 0, "unguarded": 0}
    for seed in range(40):
        for how, groups in (("guarded", scan.duplicate_records), ("unguarded", None)):
            out, info = build_manifest(scan.records, val_per_class=4, seed=seed, duplicate_groups=groups)
            splits = {r.file: r.split for r in out}
            apart[how] += len({splits[f] for f in scan.duplicate_records[0]}) > 1
            assert info["val"] == {"NORMAL": 4, "PNEUMONIA": 4}  # the carve still hits its count
    assert apart["guarded"] == 0 and apart["unguarded"] > 0  # the check can fail without the guard


def test_duplicates_larger_than_the_carve_are_an_error():
    rs = records(train=(6, 6))
    groups = [[r.file for r in rs if r.split == "train" and r.label == 0]]  # all six NORMAL identical
    with pytest.raises(KerasCXRError, match="without splitting a group of pixel-identical images"):
        build_manifest(rs, minority_fraction=0.5, val_per_class=2, duplicate_groups=groups)


def test_kermany_duplicate_pair_not_split_by_seed_0(kermany128):
    from keras_cxr.config import DataConfig
    from keras_cxr.data import imbalanced_from_path

    records, _, _, scan = imbalanced_from_path(kermany128, DataConfig(seed=0))
    splits = {r.file: r.split for r in records}
    pair = [f for f in splits if "NORMAL2-IM-0587-0001-000" in f]
    assert len(pair) == 2 and len({splits[f] for f in pair}) == 1
    for group in scan.duplicate_records:
        kept = {splits[f] for f in group if f in splits}  # deleted minority images are absent
        assert not {"train", "val"} <= kept, group


def with_val(train=(40, 20), val=(3, 5), test=(5, 7)):
    out = records(train, test)
    out += [Record(f"/d/val/{label}/{i:03d}.png", label, "val") for label, n in enumerate(val) for i in range(n)]
    return out


def test_keep_val_and_natural_keep_the_published_split():
    rs = with_val()
    out, info = build_manifest(rs, keep_val=True, natural=True)
    assert sorted((r.file, r.split) for r in out) == sorted((r.file, r.split) for r in rs)
    assert (counts(out, "train"), counts(out, "val"), counts(out, "test")) == ([40, 20], [3, 5], [5, 7])
    assert info["minority_class"] == "PNEUMONIA" and info["deleted"] == {"PNEUMONIA": 0} and info["val_per_class"] is None


def test_natural_carves_and_finds_the_minority_in_the_data():
    # NORMAL is the smaller class here (as in PneumoniaMNIST): the configured minority_class is not used.
    out, info = build_manifest(with_val(train=(10, 50)), natural=True, minority_class="PNEUMONIA")
    assert info["minority_class"] == "NORMAL" and info["minority_fraction"] is None
    v = info["val_per_class"]
    assert v == 1  # 10% of the 13 NORMAL images (10 train + 3 val, merged), rounded
    assert counts(out, "val") == [v, v] and counts(out, "train") == [13 - v, 55 - v]


def test_keep_val_keeps_the_datasets_validation_and_still_deletes():
    out, info = build_manifest(with_val(), keep_val=True, minority_fraction=0.2)
    assert counts(out, "val") == [3, 5]  # as given, unbalanced
    assert counts(out, "train") == [40, 10]  # 10 / 50 = 0.2: deleted from train only


def test_keep_val_needs_a_val_split_and_carves_nothing():
    with pytest.raises(KerasCXRError, match="the dataset has no val split to keep"):
        build_manifest(records(), keep_val=True)
    out, info = build_manifest(with_val(), keep_val=True, natural=True, val_per_class=2)  # e.g. a preset's
    assert counts(out, "val") == [3, 5] and info["val_per_class"] is None


def test_the_official_pneumoniamnist_split_trains_as_published(tmp_path):
    """experiments/pneumoniamnist/rebuild.py rebuilds it from the shared copies; --keep-val --natural
    then keeps every image in its published split."""
    import runpy

    import numpy as np

    from keras_cxr.config import DataConfig
    from keras_cxr.data import imbalanced_from_path
    from tests.conftest import REPO, SHARED_DATA

    if not (SHARED_DATA / "pneumoniamnist").is_dir():
        pytest.skip(f"shared PneumoniaMNIST copies not found under {SHARED_DATA}")
    rebuild = runpy.run_path(str(REPO / "experiments" / "pneumoniamnist" / "rebuild.py"))["rebuild"]
    np.savez(tmp_path / "official.npz", **rebuild(SHARED_DATA))
    records, _, info, _ = imbalanced_from_path(tmp_path / "official.npz", DataConfig(keep_val=True, natural=True))
    assert (info["train"], info["val"], info["test"]) == (
        {"NORMAL": 1214, "PNEUMONIA": 3494}, {"NORMAL": 135, "PNEUMONIA": 389}, {"NORMAL": 234, "PNEUMONIA": 390})
    assert all(r.file.endswith(f"#{r.split}/{r.file.rsplit('/', 1)[1]}") for r in records)  # each row in its own split
    assert info["minority_class"] == "NORMAL"


def test_minority_label_has_one_definition_and_a_stated_tie_rule():
    from keras_cxr.data import minority_label
    from keras_cxr.resample.base import oversampling_targets

    assert minority_label([10, 3]) == 1 and minority_label([3, 10]) == 0
    assert minority_label([5, 5]) == 1  # a tie: label 1, the positive class
    # The resamplers' majority is the same rule's other label (argmax and argmin disagreed on a tie).
    assert oversampling_targets(np.array([0] * 5 + [1] * 5)) == {1: 0}
    with pytest.raises(Exception, match="exactly two labels"):
        minority_label([1, 2, 3])
