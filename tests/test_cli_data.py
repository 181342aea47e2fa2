import json
import subprocess
import sys

import pytest

from keras_cxr.data import read_manifest
from keras_cxr.pipeline.cli import main
from tests.conftest import REPO
from tests.test_datasets import _break


def test_summary_of_kermany128(kermany128, capsys):
    assert main(["data", "summary", str(kermany128)]) == 0
    out = capsys.readouterr().out
    assert "train        1,341      3,875    5,216" in out
    assert "test           234        390      624" in out
    assert "duplicates: 30 groups of pixel-identical images (62 files, 32 redundant)" in out
    assert "train/NORMAL/NORMAL2-IM-0587-0001-0001.png = train/NORMAL/NORMAL2-IM-0587-0001-0002.png" in out


def test_summary_defaults_to_the_bundled_sample(capsys):
    assert main(["data", "summary"]) == 0
    out = capsys.readouterr().out
    assert "keras_cxr/data/sample" in out and "400" in out


def test_prepare_writes_manifest_and_summary(kermany_tree, tmp_path):
    root = kermany_tree()
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(root), "--val-per-class", "2", "--seed", "3", "--out", str(out)]) == 0
    records, names = read_manifest(out / "manifest.csv")
    assert names == ("NORMAL", "PNEUMONIA")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train"] == {"NORMAL": 28, "PNEUMONIA": 8}
    assert len(records) == 30 + 10 + 12


@pytest.mark.parametrize("case", ["missing train", "unknown class", "empty class", "one class only",
                                  "non-image file", "zero-byte file", "truncated file"])
def test_prepare_bad_data_exits_nonzero_and_writes_nothing(kermany_tree, tmp_path, capsys, case):
    root = _break(kermany_tree(), case)
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(root), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (out / "manifest.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["--minority-fraction", "0"], "`minority_fraction` must be in (0, 0.5]"),
    (["--minority-fraction", "0.7"], "Received: minority_fraction=0.7"),
    (["--val-per-class", "500"], "`val_per_class`=500"),
])
def test_prepare_bad_parameters(kermany_tree, tmp_path, capsys, args, message):
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(kermany_tree()), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_prepare_skip_corrupt_lists_skipped(kermany_tree, tmp_path):
    root = _break(kermany_tree(), "zero-byte file")
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(root), "--skip-corrupt", "--val-per-class", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [s["file"].rsplit("/", 1)[-1] for s in summary["skipped"]] == ["zero.png"]


def test_module_entry_point_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "keras_cxr", "data", "summary", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "data path does not exist" in proc.stderr


def test_written_files_are_world_readable(kermany_tree, tmp_path):
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(kermany_tree()), "--val-per-class", "1", "--out", str(out)]) == 0
    assert (out / "manifest.csv").stat().st_mode & 0o044 == 0o044


def test_prepared_folder_is_reused_by_evaluate_all_only_with_same_settings(tmp_path):
    from keras_cxr.config import load_preset
    from keras_cxr.errors import KerasCXRError
    from keras_cxr.pipeline.prepared import prepare_manifest

    assert main(["data", "prepare", "--out", str(tmp_path / "data")]) == 0
    assert prepare_manifest(load_preset("quick"), tmp_path) == tmp_path / "data" / "manifest.csv"
    with pytest.raises(KerasCXRError, match="prepared from other data or data settings"):
        prepare_manifest(load_preset("quick", ["data.seed=7"]), tmp_path)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_thread_cap_is_a_clear_error(monkeypatch, capsys, value):
    monkeypatch.setenv("KERAS_CXR_THREADS", value)
    assert main(["data", "summary"]) == 2
    assert f"KERAS_CXR_THREADS must be a positive integer. Received: {value!r}" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["data", "prepare"],
    ["train-gan", "--model", "dcgan"],
    ["train-classifier", "--method", "baseline"],
    ["evaluate-all"],
])
def test_every_manifest_building_command_takes_the_data_options(command):
    from keras_cxr.pipeline.cli import _config, build_parser

    args = build_parser().parse_args([*command, "--preset", "tiny", "--out", "x", "--minority-class", "NORMAL",
                                      "--minority-fraction", "0.1", "--keep-val"])
    data = _config(args).data
    assert (data.minority_class, data.minority_fraction, data.keep_val, data.natural, data.val_per_class) == \
        ("NORMAL", 0.1, True, False, 4)  # the rest from the tiny preset
    args = build_parser().parse_args([*command, "--out", "x", "--natural", "--val-per-class", "9"])
    data = _config(args).data
    assert (data.natural, data.val_per_class, data.minority_fraction) == (True, 9, 0.25)


def test_data_prepare_and_the_training_commands_build_the_same_manifest(tmp_path):
    from keras_cxr.config import load_preset
    from keras_cxr.pipeline.prepared import prepare_manifest

    for preset in ("tiny", "quick"):
        assert main(["data", "prepare", "--preset", preset, "--out", str(tmp_path / preset)]) == 0
        built = prepare_manifest(load_preset(preset), tmp_path / f"{preset}-matrix")
        assert built.read_bytes() == (tmp_path / preset / "manifest.csv").read_bytes(), preset
    assert (tmp_path / "tiny" / "manifest.csv").read_bytes() != (tmp_path / "quick" / "manifest.csv").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--natural", "--minority-fraction", "0.1"], "--minority-fraction does not apply with --natural. Received: --minority-fraction 0.1"),
    (["--keep-val", "--val-per-class", "3"], "--val-per-class does not apply with --keep-val. Received: --val-per-class 3"),
    (["--keep-val"], "has no val split to keep"),
])
def test_data_option_conflicts_are_one_line(tmp_path, capsys, args, message):
    assert main(["data", "prepare", "--out", str(tmp_path / "p"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "p").exists()


def test_a_data_option_beside_a_built_manifest_is_refused(tiny_data, tmp_path, capsys):
    assert main(["train-classifier", "--method", "baseline", "--preset", "tiny", "--manifest", str(tiny_data),
                 "--minority-fraction", "0.1", "--out", str(tmp_path / "o")]) == 2
    assert "manifest options (--minority-fraction) apply when a manifest is built from --data; --manifest" \
        in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
