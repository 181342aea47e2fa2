"""A resumed run or a reused cell is checked against what it was made from: the images' bytes
(not their path) and the settings that change its numbers. Real tiny runs through the CLI."""

import json
import shutil

import pytest

from keras_cxr.config import load_preset
from keras_cxr.pipeline.cli import main
from keras_cxr.pipeline.gan_run import train_gan
from tests.test_robustness import one_error_line

pytestmark = pytest.mark.slow


def _swap_bytes(files) -> None:
    """Gives every file the bytes of the next one: same names, same count, other pixels."""
    files = sorted(files)
    blobs = [f.read_bytes() for f in files]
    for f, blob in zip(files, blobs[1:] + blobs[:1]):
        f.write_bytes(blob)


def test_cells_are_reused_only_with_the_data_and_settings_they_were_made_from(tmp_path, kermany_tree, capsys,
                                                                            monkeypatch):
    data = kermany_tree()
    out = tmp_path / "out"
    # A kill between the manifest's two files (older versions wrote manifest.csv first) left a
    # manifest without its summary: every rerun used to fail with "No such file or directory".
    (out / "data").mkdir(parents=True)
    (out / "data" / "manifest.csv").write_text("file,label,class,split\n")
    monkeypatch.chdir(tmp_path)
    base = ["evaluate-all", "--preset", "tiny", "--methods", "baseline", "--out", "out", "--quiet"]
    assert main(base + ["--data", "./data", "--seeds", "0"]) == 0
    first = json.loads((out / "cells" / "baseline__seed0.json").read_text())
    assert first["identity"]["classifier"]["epochs"] == 1 and len(first["identity"]["data_sha256"]) == 64

    capsys.readouterr()  # the same data by another path is the same data
    assert main(base + ["--data", str(data), "--seeds", "0"]) == 0
    assert "1 already done, 0 to run" in capsys.readouterr().out

    line_args = base + ["--data", str(data), "--seeds", "0", "1", "--set", "classifier.epochs=2"]
    capsys.readouterr()
    assert main(line_args) == 2
    line = one_error_line(capsys)
    assert "1 finished cell(s)" in line and "baseline seed 0: classifier.epochs: 1 -> 2" in line, line
    assert "Rerun with --rebuild" in line
    assert not (out / "cells" / "baseline__seed1.json").exists()  # refused before any cell ran

    assert main(line_args + ["--rebuild"]) == 0
    assert "rebuild: 1 cell(s)" in capsys.readouterr().out
    for seed in (0, 1):
        cell = json.loads((out / "cells" / f"baseline__seed{seed}.json").read_text())
        assert cell["identity"]["classifier"]["epochs"] == 2 and len(cell["history"]["loss"]) == 2

    listed = [line.split(",")[0] for line in (out / "data" / "manifest.csv").read_text().splitlines()[1:]]
    _swap_bytes([p for p in (data / "train" / "NORMAL").iterdir() if str(p.resolve()) in listed])
    capsys.readouterr()
    assert main(line_args) == 2
    line = one_error_line(capsys)
    assert "changed since it was prepared" in line and "would mix old and new pixels" in line, line


def test_a_gan_run_does_not_resume_on_changed_images(tmp_path, kermany_tree, capsys):
    data = kermany_tree()
    config = load_preset("tiny", ["gan.dcgan_epochs=2", "gan.batch_size=4"])
    train_gan("dcgan", config, tmp_path / "out", data=data, verbose=0, max_epochs=1)
    # Same file names and counts, other pixels: the old check (counts and paths) let this resume.
    _swap_bytes((data / "train" / "PNEUMONIA").iterdir())
    capsys.readouterr()
    argv = ["train-gan", "--model", "dcgan", "--preset", "tiny", "--set", "gan.dcgan_epochs=2", "--set", "gan.batch_size=4", "--data", str(data),
            "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "was started with other data or settings (train_sha256:" in line and "would mix them" in line, line
    assert not (tmp_path / "out" / "dcgan" / "done.json").exists()
    shutil.rmtree(tmp_path / "out")
