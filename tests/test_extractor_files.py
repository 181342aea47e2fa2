"""The extractor cache's files: what an experiment copies from a split into each run folder."""

import json


def test_shared_extractors_copy_each_seeds_weights_then_its_record(tmp_path):
    """experiments share a split's extractors with each run folder: a record only beside its weights."""
    from keras_cxr.pipeline.extractor import share_extractors

    src = tmp_path / "split" / "extractor" / "abc123"
    (src / "weights").mkdir(parents=True)
    for seed in (0, 1):
        (src / "weights" / f"baseline__seed{seed}.weights.h5").write_bytes(b"w%d" % seed)
        (src / f"seed{seed}.json").write_text(json.dumps({"seed": seed}))
    share_extractors(tmp_path / "split", tmp_path / "run")
    dest = tmp_path / "run" / "extractor" / "abc123"
    assert sorted(p.name for p in dest.iterdir()) == ["seed0.json", "seed1.json", "weights"]
    assert (dest / "weights" / "baseline__seed1.weights.h5").read_bytes() == b"w1"
    (dest / "weights" / "baseline__seed1.weights.h5").write_bytes(b"kept")
    share_extractors(tmp_path / "split", tmp_path / "run")  # a ready copy is left alone
    assert (dest / "weights" / "baseline__seed1.weights.h5").read_bytes() == b"kept"


def test_a_record_without_its_weights_is_not_shared(tmp_path):
    """A fresh clone holds a split's extractor records but not their (ignored) weights: sharing
    must skip them, so the run folder trains its own instead of failing or trusting a bare record."""
    from keras_cxr.pipeline.extractor import share_extractors

    src = tmp_path / "split" / "extractor" / "abc123"
    src.mkdir(parents=True)
    (src / "seed0.json").write_text(json.dumps({"seed": 0}))
    share_extractors(tmp_path / "split", tmp_path / "run")
    assert not (tmp_path / "run" / "extractor" / "abc123" / "seed0.json").exists()
