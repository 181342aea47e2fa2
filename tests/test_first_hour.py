"""A newcomer's data as it arrives: folder debris from a Mac or a Windows share is skipped with one
note, an unknown image type is still an error, and advice names options the command can use."""

import json
import shutil

from keras_cxr.pipeline.cli import main
from keras_cxr.pipeline.report import _manifest_of
from tests.test_robustness import one_error_line


def _add_debris(root) -> int:
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "__MACOSX" / "train" / "NORMAL").mkdir(parents=True)
    (root / "__MACOSX" / "train" / "NORMAL" / "._a.png").write_bytes(b"\0\5\26\7")
    (root / "train" / "NORMAL" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "train" / "PNEUMONIA" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (root / "test" / "NORMAL" / "._IM-0001.png").write_bytes(b"\0\5\26\7")
    return 5


def test_folder_debris_is_skipped_with_one_note(kermany_tree, capsys):
    root = kermany_tree()
    clean = capsys.readouterr() and main(["data", "summary", str(root)])
    counts = capsys.readouterr().out
    debris = _add_debris(root)
    assert clean == 0 and main(["data", "summary", str(root)]) == 0
    captured = capsys.readouterr()
    assert captured.out == counts.replace(str(root), str(root))  # the same images, the same summary
    notes = [line for line in captured.err.splitlines() if line.strip()]
    assert notes == [f"note: skipped {debris} hidden or system file(s) under {root} (.DS_Store, Thumbs.db, "
                     f"desktop.ini, __MACOSX/ and the like)"], notes


def test_an_unknown_image_type_is_still_an_error(kermany_tree, capsys):
    root = kermany_tree()
    shutil.copy(next((root / "train" / "NORMAL").glob("*.png")), root / "train" / "NORMAL" / "scan.tiff")
    assert main(["data", "summary", str(root)]) == 2
    assert "not an image file" in one_error_line(capsys)


def test_unknown_class_folders_point_to_an_option_the_command_takes(kermany_tree, tmp_path, capsys):
    root = kermany_tree()
    for split in ("train", "test"):
        (root / split / "PNEUMONIA").rename(root / split / "COVID")
    assert main(["evaluate-all", "--preset", "tiny", "--data", str(root), "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert f"`data prepare {root} --class-names A,B --minority-class B --out DIR`" in line, line
    assert "with --manifest" in line, line
    assert main(["data", "prepare", str(root), "--class-names", "NORMAL,COVID", "--minority-class", "COVID",
                 "--val-per-class", "2", "--out", str(tmp_path / "prepared")]) == 0  # the advice works


def test_report_finds_a_manifest_given_with_manifest(tmp_path):
    given = tmp_path / "elsewhere" / "manifest.csv"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text(json.dumps({"manifest": str(given), "summary": {}, "cells": []}))
    assert _manifest_of(tmp_path / "out") == given
    (tmp_path / "out" / "data").mkdir()
    (tmp_path / "out" / "data" / "manifest.csv").write_text("")
    assert _manifest_of(tmp_path / "out") == tmp_path / "out" / "data" / "manifest.csv"
