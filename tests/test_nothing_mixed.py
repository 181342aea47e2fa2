"""Nothing silently mixed: every bad argument is one `error:` line before anything is written,
seeds are a set, generators are checked before use, and archives are capped. (The resume and
reuse checks that need trained cells and runs are in test_identity.py.)"""

import json
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from keras_cxr.gan.export import export_generator
from keras_cxr.gan.generator import build_generator
from keras_cxr.gan.record import GeneratorRecord
from keras_cxr.pipeline.cli import main
from tests.conftest import sample_files
from tests.test_robustness import one_error_line

META = {"kind": "dcgan", "alpha": None, "generated_label": 1, "image_size": 32, "latent_dim": 100,
        "pixel_range": "0_1", "preset": "tiny", "max_images": 64, "class_names": ["NORMAL", "PNEUMONIA"],
        "minority_label": 1, "majority_label": 0}


def refused(capsys, argv, out) -> str:
    """Runs the CLI; asserts exit 2, one error line and nothing at `out`; returns the line."""
    capsys.readouterr()
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert not out.exists(), f"{out} was written"
    return line


# -- settings and seeds -----------------------------------------------------------------------

@pytest.mark.parametrize("extra, says", [
    (["--seeds", "0", "1", "1"], "must name each seed once; [1] appear more than once"),
    (["--seeds", "0", "0"], "must name each seed once"),
    (["--seeds", "-1"], "`classifier.seeds` must be an integer in [0, 4294967295]. Received: classifier.seeds=-1"),
    (["--set", "classifier.seeds=[1.7]"], "`seeds` in"),
    (["--set", "classifier.max_rotation_deg=.nan"], "must be float (not NaN). Received: max_rotation_deg=nan"),
    (["--set", "gan.alphas=[0.5"], "--set gan.alphas=[0.5: the value is not valid YAML"),
    (["--set", "gan.seed=!!python/object/apply:os.system [echo hi]"], "the value is not valid YAML"),
])
def test_bad_settings_are_one_line_before_anything_is_written(tmp_path, capsys, extra, says):
    out = tmp_path / "out"
    line = refused(capsys, ["evaluate-all", "--preset", "tiny", *extra, "--out", str(out)], out)
    assert says in line, line


def test_train_gan_negative_seed_leaves_nothing_to_block_a_retry(tmp_path, capsys, tiny_data):
    out = tmp_path / "out"
    line = refused(capsys, ["train-gan", "--model", "dcgan", "--preset", "tiny", "--manifest", str(tiny_data),
                            "--seed", "-1", "--out", str(out)], out)
    assert "`gan.seed` must be an integer in [0, 4294967295]. Received: gan.seed=-1" in line


def test_plain_npy_as_weights_is_one_line(tmp_path, capsys, tiny_data):
    np.save(tmp_path / "w.npy", np.zeros(3))
    out = tmp_path / "out"
    line = refused(capsys, ["train-classifier", "--method", "baseline", "--preset", "tiny", "--manifest",
                            str(tiny_data), "--weights", "imagenet-file", str(tmp_path / "w.npy"), "--out", str(out)], out)
    assert "is one bare array, not a weights file" in line


# -- manifests of .npz rows -------------------------------------------------------------------

@pytest.mark.parametrize("row, says", [
    ("train/99999", "index 99999 is outside `train_images`"),
    ("nosuch/0", "must end in #<train|val|test>/<index >= 0>"),
    ("train/-1", "must end in #<train|val|test>/<index >= 0>"),
    ("val/0", "has no `val_images` array"),
])
def test_npz_manifest_rows_are_checked(tmp_path, capsys, row, says):
    rng = np.random.default_rng(0)
    npz = tmp_path / "d.npz"
    np.savez(npz, train_images=rng.integers(0, 255, (8, 28, 28), dtype=np.uint8), train_labels=np.arange(8) % 2,
             test_images=rng.integers(0, 255, (4, 28, 28), dtype=np.uint8), test_labels=np.arange(4) % 2)
    rows = [(f"{npz}#train/{i}", i % 2, "train") for i in range(6)] + [(f"{npz}#{row}", 0, "train")]
    rows += [(f"{npz}#test/{i}", i % 2, "test") for i in range(4)] + [(f"{npz}#train/{i}", i % 2, "val") for i in (6, 7)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label,class,split\n" + "".join(
        f"{f},{lab},{['NORMAL', 'PNEUMONIA'][lab]},{s}\n" for f, lab, s in rows))
    out = tmp_path / "out"
    line = refused(capsys, ["train-classifier", "--method", "baseline", "--preset", "tiny", "--set", "image_size=28",
                            "--manifest", str(manifest), "--out", str(out)], out)
    assert says in line and "line 8" in line, line


# -- generators checked before use --------------------------------------------------------------

class _Fake(tf.Module):
    """A SavedModel with keras_cxr's `generate` signature whose output is whatever `make` says."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64)])
    def generate(self, num_images, label, seed):
        return {"images": self.make(num_images)}


def _fake_generator(path, make=None, signature=None, meta=META):
    module = _Fake(make) if make else signature
    tf.saved_model.save(module, str(path), signatures={"generate": module.generate, "serving_default": module.generate})
    (path / "assets.extra").mkdir(exist_ok=True)
    (path / "assets.extra" / "keras_cxr.json").write_text(json.dumps(meta))
    return path


BAD_OUTPUTS = {
    "non-finite pixels": lambda n: tf.fill([n, 32, 32, 1], float("nan")),
    "flat images": lambda n: tf.fill([n, 32, 32, 1], 0.5),
    "of shape (32, 32, 3)": lambda n: tf.random.uniform([n, 32, 32, 3]),
    "of shape (16, 16, 1)": lambda n: tf.random.uniform([n, 16, 16, 1]),
    "pixels outside [0, 1]": lambda n: tf.random.uniform([n, 32, 32, 1]) * 3 - 1,
}


@pytest.mark.parametrize("problem", sorted(BAD_OUTPUTS))
def test_a_bad_generator_is_refused_by_generate(tmp_path, capsys, problem):
    gen = _fake_generator(tmp_path / "g" / "1", BAD_OUTPUTS[problem])
    out = tmp_path / "out"
    line = refused(capsys, ["generate", "--generator", str(gen), "--n", "4", "--label", "1", "--out", str(out)], out)
    assert problem in line and "it is not used" in line, line


def test_a_nan_generator_never_trains_a_cell(tmp_path, capsys, tiny_data):
    """The audit's case: NaN output became black 'pneumonia' images and a cell reported F1 0.657."""
    models = tmp_path / "models"
    _fake_generator(models / "dcgan" / "1", BAD_OUTPUTS["non-finite pixels"])
    capsys.readouterr()
    assert main(["train-classifier", "--method", "dcgan", "--preset", "tiny", "--manifest", str(tiny_data),
                 "--models", str(models), "--out", str(tmp_path / "out")]) == 2
    assert "makes non-finite pixels (NaN or inf) for label 1: it is not used" in one_error_line(capsys)
    assert not (tmp_path / "out" / "cells").exists()


class _Foreign(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 7], tf.float32)])
    def generate(self, x):
        return {"y": x * 2}


def test_foreign_signature_and_foreign_metadata_are_one_line(tmp_path, capsys):
    foreign = _fake_generator(tmp_path / "f" / "1", signature=_Foreign())
    line = refused(capsys, ["generate", "--generator", str(foreign), "--n", "2", "--out", str(tmp_path / "o1")],
                   tmp_path / "o1")
    assert "its `generate` signature takes (x float32)" in line, line
    no_meta = _fake_generator(tmp_path / "n" / "1", BAD_OUTPUTS["flat images"], meta={"name": "x"})
    line = refused(capsys, ["generate", "--generator", str(no_meta), "--n", "2", "--label", "1",
                            "--out", str(tmp_path / "o2")], tmp_path / "o2")
    assert "is not a keras_cxr generator: its assets.extra/keras_cxr.json lacks kind" in line, line


def test_generate_seed_out_of_range_is_one_line(tmp_path, capsys):
    gen = build_generator(32, 100, 8, conditional=False)
    path = export_generator(gen, tmp_path / "g" / "1", GeneratorRecord.from_json(META))
    line = refused(capsys, ["generate", "--generator", str(path), "--n", "2", "--label", "1",
                            "--seed", "9223372036854775000", "--out", str(tmp_path / "o")], tmp_path / "o")
    assert "`seed` must be an integer in [0, 4294967295]" in line


def test_serving_default_refuses_a_batch_over_its_bound(tmp_path):
    from keras_cxr.gan.export import MAX_SERVING_BATCH

    gen = build_generator(32, 100, 8, conditional=False)
    serve = tf.saved_model.load(str(export_generator(gen, tmp_path / "g" / "1", GeneratorRecord.from_json(META)))).signatures["serving_default"]
    assert serve(latent=tf.zeros([MAX_SERVING_BATCH, 100]))["images"].shape[0] == MAX_SERVING_BATCH
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"at most {MAX_SERVING_BATCH} latents"):
        serve(latent=tf.zeros([MAX_SERVING_BATCH + 1, 100]))


# -- archives ---------------------------------------------------------------------------------

def test_compression_bomb_is_refused_before_extracting(tmp_path, capsys):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("chest_xray/train/NORMAL/zeros.png", b"\0" * (64 << 20))  # 64 MiB -> ~64 KiB
    dest = tmp_path / "dest"
    capsys.readouterr()
    assert main(["data", "fetch", "kermany", "--dest", str(dest), "--url", bomb.as_uri()]) == 2
    line = one_error_line(capsys)
    assert "a compression bomb, not an image archive" in line, line
    assert not list(dest.glob("*_extracted"))


def test_extract_caps_on_bytes_and_files(tmp_path, capsys):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sample_files("train", "NORMAL", 4):
            zf.write(f, f"chest_xray/train/NORMAL/{f.name}")
    for option, value, says in (("--max-files", "3", "4 files to extract, over the cap of 3"),
                                ("--max-extract-bytes", "1000", "over the cap of 1,000 (--max-extract-bytes)")):
        dest = tmp_path / option
        capsys.readouterr()
        assert main(["data", "fetch", "kermany", "--dest", str(dest), "--url", archive.as_uri(), option, value]) == 2
        assert says in one_error_line(capsys)
        assert not list(dest.glob("*_extracted"))
