"""Crashes and bad input lose nothing: checkpoint fallback, no temporary litter, one writer per
run folder, and one `error:` line (exit 2, nothing written) for every error a user can cause,
tried on real filesystems (a full and a read-only tmpfs), real files and the real CLI."""

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest

from keras_cxr.config import load_preset
from keras_cxr.pipeline.cli import main
from keras_cxr.pipeline.gan_run import train_gan
from tests.conftest import REPO, SAMPLE

pytestmark = pytest.mark.slow


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@contextlib.contextmanager
def tmpfs(path, size="64k", read_only=False):
    """A real small (or read-only) filesystem; skipped where this process may not mount."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# -- checkpoints and temporaries ------------------------------------------------------------

def test_corrupt_newest_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path, tiny_data, capsys):
    config = load_preset("tiny", ["gan.dcgan_epochs=3"])
    full = tmp_path / "full"
    train_gan("dcgan", config, full, manifest=tiny_data, verbose=0)
    cut = tmp_path / "cut"
    train_gan("dcgan", config, cut, manifest=tiny_data, verbose=0, max_epochs=2)
    newest = cut / "dcgan" / "checkpoints" / "epoch-0002.npz"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a write cut short
    # Litter of a kill mid-write: a checkpoint temporary and a half-exported SavedModel folder.
    (cut / "dcgan" / "checkpoints" / ".epoch-0003.npz.x1y2.tmp").write_bytes(b"half")
    (cut / "models" / "dcgan" / ".1.a1b2.tmp" / "variables").mkdir(parents=True)
    capsys.readouterr()
    assert main(["train-gan", "--model", "dcgan", "--preset", "tiny", "--set", "gan.dcgan_epochs=3",
                 "--manifest", str(tiny_data), "--out", str(cut), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "epoch-0002.npz is unreadable" in captured.err and "set it aside as epoch-0002.npz.corrupt" in captured.err
    assert "resuming after epoch 1 of 3" in captured.out
    assert (cut / "dcgan" / "checkpoints" / "epoch-0002.npz.corrupt").is_file()
    assert not list(cut.rglob(".*.tmp"))
    with np.load(full / "dcgan" / "checkpoints" / "epoch-0003.npz") as a, \
            np.load(cut / "dcgan" / "checkpoints" / "epoch-0003.npz") as b:
        for k in a.files:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_truncated_log_row_is_dropped_on_resume(tmp_path, tiny_data):
    config = load_preset("tiny", ["gan.dcgan_epochs=2"])
    train_gan("dcgan", config, tmp_path, manifest=tiny_data, verbose=0, max_epochs=1)
    with open(tmp_path / "dcgan" / "log.csv", "a") as fh:
        fh.write("1")  # a kill in the middle of appending epoch 1x's row
    train_gan("dcgan", config, tmp_path, manifest=tiny_data, verbose=0)
    rows = (tmp_path / "dcgan" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2"]


# -- one writer per folder -------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from keras_cxr.pipeline.locks import run_lock
    with run_lock(sys.argv[1], name=sys.argv[2], what=sys.argv[3]):
        print("held", flush=True)
        time.sleep(600)
""")


def _kill_once_found_alive(holder, monkeypatch):
    """The holder dies right after the lock code has found it alive and refused to take its
    lock, not after a fixed delay that a busy machine can outlast before the lock is reached.
    The real lock code runs; this only watches its refusals."""
    from keras_cxr.pipeline import locks

    take = locks._try_take

    def take_or_kill_the_live_holder(folder, name, me):
        try:
            return take(folder, name, me)
        except locks.LockBusy:
            holder.kill()
            raise

    monkeypatch.setattr(locks, "_try_take", take_or_kill_the_live_holder)


def _holder(folder, name=".lock", what="train-gan dcgan"):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), name, what], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_and_a_dead_holder_is_taken_over(tmp_path, tiny_data, capsys, monkeypatch):
    args = ["train-gan", "--model", "dcgan", "--preset", "tiny", "--set", "gan.dcgan_epochs=1",
            "--manifest", str(tiny_data), "--out", str(tmp_path), "--quiet"]
    holder = _holder(tmp_path / "dcgan")
    try:
        assert main(args) == 2
        line = one_error_line(capsys)
        assert f"pid {holder.pid}" in line and "train-gan dcgan" in line
        assert not (tmp_path / "dcgan" / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(args) == 0  # the lock of a killed process is stale
    assert "took over the stale lock" in capsys.readouterr().err
    assert not (tmp_path / "dcgan" / ".lock").exists()

    # evaluate-all locks per cell: a cell another process holds is waited for (other cells run
    # meanwhile) and taken over when that process dies.
    out = tmp_path / "matrix"
    holder = _holder(out / "cells", name=".baseline__seed0.lock", what="evaluate-all cell baseline__seed0")
    _kill_once_found_alive(holder, monkeypatch)
    assert main(["evaluate-all", "--preset", "tiny", "--out", str(out), "--methods", "baseline",
                 "--seeds", "0", "--quiet"]) == 0
    holder.wait()
    captured = capsys.readouterr()
    assert f"waiting: {out / 'cells'} is in use by another evaluate-all cell baseline__seed0 process (pid {holder.pid}" \
        in captured.out
    assert "took over the stale lock" in captured.err
    assert (out / "cells" / "baseline__seed0.json").exists()


def test_another_machines_lock_holds_while_its_heartbeat_is_fresh(tmp_path, monkeypatch):
    from keras_cxr.pipeline.locks import LockBusy, run_lock

    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"pid": 1, "host": "node-17.cluster", "started": "5", "what": "evaluate-all cell x"}))
    monkeypatch.setenv("KERAS_CXR_LOCK_STALE_S", "60")
    with pytest.raises(LockBusy, match="pid 1 on node-17.cluster"):
        with run_lock(tmp_path):
            pass
    os.utime(lock, (time.time() - 61, time.time() - 61))  # its heartbeat stopped a minute ago
    with run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_a_waiting_lock_takes_over_when_the_holder_finishes(tmp_path, capsys, monkeypatch):
    from keras_cxr.pipeline.locks import run_lock

    holder = _holder(tmp_path, what="train-gan dcgan")
    _kill_once_found_alive(holder, monkeypatch)
    with run_lock(tmp_path, wait=True) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    holder.wait()
    assert f"waiting: {tmp_path} is in use by another train-gan dcgan process (pid {holder.pid}" in capsys.readouterr().out


def test_lock_of_a_reused_pid_is_stale(tmp_path):
    from keras_cxr.pipeline.locks import run_lock

    # Our own pid with another process start time: the holder died and the pid was reused.
    (tmp_path / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                                "started": "1", "what": "train-gan"}))
    with run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["started"] != "1"
    assert not (tmp_path / ".lock").exists()


# -- bad input: one line, exit 2, nothing written --------------------------------------------

def _bomb_png(path, side=20000):
    """A PNG whose header claims side x side pixels (over Pillow's decompression-bomb limit)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _manifest(path, rows):
    path.write_text("file,label,class,split\n" + "".join(f"{f},{lab},{cls},{split}\n" for f, lab, cls, split in rows))
    return path


def test_bad_inputs_give_one_error_line_and_write_nothing(tmp_path, tiny_data, kermany_tree, capsys):
    normal = sorted((SAMPLE / "train" / "NORMAL").glob("*.png"))[:2]
    pneumonia = sorted((SAMPLE / "train" / "PNEUMONIA").glob("*.png"))[:2]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    bomb_root = kermany_tree(name="bomb")
    _bomb_png(bomb_root / "train" / "NORMAL" / "huge.png")
    garbage_model = tmp_path / "garbage" / "1"
    garbage_model.mkdir(parents=True)
    (garbage_model / "saved_model.pb").write_bytes(b"\x08\x96\x01 this is not a SavedModel")
    dir_model = tmp_path / "dir_pb" / "1"
    (dir_model / "saved_model.pb").mkdir(parents=True)
    missing = _manifest(tmp_path / "missing.csv", [(tmp_path / "nope.png", 0, "NORMAL", "train"),
                                                   (pneumonia[0], 1, "PNEUMONIA", "train")])
    contradict = _manifest(tmp_path / "contradict.csv", [(normal[0], 0, "NORMAL", "train"),
                                                         (normal[1], 0, "PNEUMONIA", "train"),
                                                         (pneumonia[0], 1, "PNEUMONIA", "train")])
    one_label = _manifest(tmp_path / "one_label.csv", [(normal[0], 0, "NORMAL", "train"),
                                                       (normal[1], 0, "NORMAL", "train"),
                                                       (pneumonia[0], 1, "PNEUMONIA", "test")])
    gan = ["train-gan", "--model", "cdcgan", "--preset", "tiny", "--manifest", str(tiny_data)]
    cases = {
        "--out under a file": (gan + ["--out", str(a_file / "sub")], "a_file exists and is not a folder"),
        "--out is a file": (["evaluate-all", "--preset", "tiny", "--out", str(a_file)], "exists and is not a folder"),
        "learning rate NaN": (gan + ["--set", "gan.learning_rate=.nan"], "must be float (not NaN). Received: learning_rate=nan"),
        "learning rate 0": (gan + ["--set", "gan.learning_rate=0"], "`gan.learning_rate` must be finite and > 0"),
        "beta_1 = 1": (gan + ["--set", "gan.beta_1=1.0"], "`gan.beta_1` must be in [0, 1)"),
        "classifier beta_2 < 0": (["evaluate-all", "--preset", "tiny", "--set", "classifier.beta_2=-0.1"],
                                  "`classifier.beta_2` must be in [0, 1)"),
        "manifest with a missing file": (["train-gan", "--model", "dcgan", "--preset", "tiny", "--manifest", str(missing)],
                                         "lists 1 image file(s) that do not exist"),
        "class names contradict labels": (["train-gan", "--model", "dcgan", "--preset", "tiny", "--manifest",
                                           str(contradict)], "label 0 is class 'PNEUMONIA' here but 'NORMAL' on line 2"),
        "cDCGAN without label 1 in train": (["train-gan", "--model", "cdcgan", "--preset", "tiny", "--manifest",
                                             str(one_label)], "a cDCGAN learns both labels"),
        "decompression bomb": (["data", "prepare", str(bomb_root)], "image too large to decode safely"),
        "garbage saved_model.pb": (["generate", "--generator", str(garbage_model), "--n", "2"],
                                   "cannot load the generator SavedModel"),
        "saved_model.pb is a folder": (["generate", "--generator", str(dir_model), "--n", "2"],
                                       "no saved_model.pb file"),
        "GAN methods at a size that is not a power of two": (
            ["evaluate-all", "--preset", "tiny", "--set", "image_size=28"],
            "`image_size` must be a power of two >= 16 for the GANs (the classifier alone takes any size >= 28). "
            "Received: image_size=28"),
        "train-gan at 48x48": (gan + ["--set", "image_size=48"], "Received: image_size=48"),
        "--shard auto outside a cluster": (["evaluate-all", "--preset", "tiny", "--shard", "auto"],
                                           "--shard auto needs SLURM_ARRAY_TASK_ID"),
        "--keep-val without a val split": (["evaluate-all", "--preset", "tiny", "--keep-val"],
                                           "has no val split to keep"),
    }
    seen = {}
    for name, (args, expected) in cases.items():
        out = tmp_path / "outs" / name.replace(" ", "_")
        if "--out" not in args:
            args = args + ["--out", str(out)]
        capsys.readouterr()
        assert main(args) == 2, name
        line = one_error_line(capsys)
        assert expected in line, (name, line)
        assert out == a_file or not out.exists(), f"{name}: wrote {out}"
        seen[name] = line
    assert len(seen) == len(cases)


def test_full_and_read_only_filesystems(tmp_path, tiny_data, capsys):
    with tmpfs(tmp_path / "full", size="24k") as full:
        assert main(["data", "prepare", "--val-per-class", "4", "--out", str(full / "prepared")]) == 2
        assert "No space left on device" in one_error_line(capsys)
        assert not list(full.rglob("*.tmp")) and not (full / "prepared" / "manifest.csv").exists()
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        assert main(["train-gan", "--model", "dcgan", "--preset", "tiny", "--manifest", str(tiny_data),
                     "--out", str(ro / "run")]) == 2
        assert f"{ro} is not writable" in one_error_line(capsys)


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["generate", "--generator", str(tmp_path / "missing"), "--n", "2", "--out", str(tmp_path / "o"),
                 "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: not a SavedModel folder")


def test_train_gan_full_disk_mid_run_leaves_no_temporaries(tmp_path, tiny_data, capsys):
    with tmpfs(tmp_path / "small", size="160k") as small:
        code = main(["train-gan", "--model", "cdcgan", "--preset", "tiny", "--set", "gan.cdcgan_epochs=3",
                     "--manifest", str(tiny_data), "--out", str(small), "--quiet"])
        assert code == 2
        assert "No space left on device" in one_error_line(capsys)
        assert not list(small.rglob(".*.tmp"))
        shutil.rmtree(small / "cdcgan_a050" / "tensorboard", ignore_errors=True)
