"""Every bad input we know of, through the real CLI in a fresh process: the exit status, the
lines on stderr, and whether anything was written.

    python experiments/robustness/bad_inputs.py      # as root: mounts two small tmpfs folders

Writes experiments/robustness/results/bad_inputs.md. The full and read-only filesystems are real
tmpfs mounts (needs root; skipped with a note otherwise).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "keras_cxr" / "data" / "sample"
RESULTS = REPO / "experiments" / "robustness" / "results"
# As a user runs it: no TF_CPP_MIN_LOG_LEVEL of ours (setting one would let TensorFlow's notices through).
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


# TensorFlow's C++ start-up notices, printed before its logging is configured, whatever
# TF_CPP_MIN_LOG_LEVEL says; silencing them is a separate issue, so they are counted apart.
TF_NOTICE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl|To enable the following instructions)")


def run(args, cwd=REPO):
    proc = subprocess.run([sys.executable, "-m", "keras_cxr", *args], capture_output=True, text=True, env=ENV, cwd=cwd)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    ours = [line for line in lines if not TF_NOTICE.match(line)]
    return proc.returncode, ours, len(lines) - len(ours)


def bomb_png(path: Path, side: int = 20000) -> None:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def manifest(path: Path, rows) -> Path:
    path.write_text("file,label,class,split\n" + "".join(f"{f},{lab},{c},{s}\n" for f, lab, c, s in rows))
    return path


def mount_tmpfs(path: Path, opts: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


def main() -> None:
    w = Path(tempfile.mkdtemp(prefix="bad_inputs_"))
    normal = sorted((SAMPLE / "train" / "NORMAL").glob("*.png"))[:2]
    pneumonia = sorted((SAMPLE / "train" / "PNEUMONIA").glob("*.png"))[:2]
    code, _, _ = run(["data", "prepare", "--val-per-class", "4", "--out", str(w / "prepared")])
    assert code == 0
    good = w / "prepared" / "manifest.csv"
    (w / "a_file").write_text("x")
    bomb = w / "bomb"
    shutil.copytree(SAMPLE, bomb, ignore=shutil.ignore_patterns("*.md"))
    bomb_png(bomb / "train" / "NORMAL" / "huge.png")
    (w / "garbage" / "1").mkdir(parents=True)
    (w / "garbage" / "1" / "saved_model.pb").write_bytes(b"\x08\x96\x01 not a SavedModel")
    (w / "truncated" / "1").mkdir(parents=True)
    real_pb = next(REPO.glob("experiments/results/quick/models/dcgan/1/saved_model.pb"))
    (w / "truncated" / "1" / "saved_model.pb").write_bytes(real_pb.read_bytes()[:2000])
    gan = ["train-gan", "--model", "cdcgan", "--preset", "tiny", "--manifest", str(good)]
    cases = [
        ("`--out` under a regular file", gan + ["--out", str(w / "a_file" / "run")]),
        ("`--out` is a regular file (evaluate-all)", ["evaluate-all", "--preset", "tiny", "--out", str(w / "a_file")]),
        ("GAN learning rate NaN", gan + ["--set", "gan.learning_rate=.nan", "--out", str(w / "o1")]),
        ("GAN learning rate 0", gan + ["--set", "gan.learning_rate=0", "--out", str(w / "o2")]),
        ("GAN learning rate inf", gan + ["--set", "gan.learning_rate=.inf", "--out", str(w / "o3")]),
        ("GAN beta_1 = 1", gan + ["--set", "gan.beta_1=1.0", "--out", str(w / "o4")]),
        ("classifier beta_2 = -0.1", ["evaluate-all", "--preset", "tiny", "--set", "classifier.beta_2=-0.1",
                                      "--out", str(w / "o5")]),
        ("manifest lists a missing file",
         ["train-gan", "--model", "dcgan", "--preset", "tiny", "--out", str(w / "o6"), "--manifest",
          str(manifest(w / "m1.csv", [(w / "nope.png", 0, "NORMAL", "train"), (pneumonia[0], 1, "PNEUMONIA", "train")]))]),
        ("manifest: one label, two class names",
         ["train-gan", "--model", "dcgan", "--preset", "tiny", "--out", str(w / "o7"), "--manifest",
          str(manifest(w / "m2.csv", [(normal[0], 0, "NORMAL", "train"), (normal[1], 0, "PNEUMONIA", "train"),
                                      (pneumonia[0], 1, "PNEUMONIA", "train")]))]),
        ("manifest: cDCGAN without label 1 in train",
         ["train-gan", "--model", "cdcgan", "--preset", "tiny", "--out", str(w / "o8"), "--manifest",
          str(manifest(w / "m3.csv", [(normal[0], 0, "NORMAL", "train"), (normal[1], 0, "NORMAL", "train"),
                                      (pneumonia[0], 1, "PNEUMONIA", "test")]))]),
        ("manifest: classifier without PNEUMONIA in val",
         ["train-classifier", "--method", "baseline", "--preset", "tiny", "--out", str(w / "o9"), "--manifest",
          str(manifest(w / "m4.csv", [(normal[0], 0, "NORMAL", "train"), (pneumonia[0], 1, "PNEUMONIA", "train"),
                                      (normal[1], 0, "NORMAL", "val"), (normal[0], 0, "NORMAL", "test"),
                                      (pneumonia[1], 1, "PNEUMONIA", "test")]))]),
        ("image over Pillow's decompression-bomb limit", ["data", "prepare", str(bomb), "--out", str(w / "o10")]),
        ("garbage saved_model.pb", ["generate", "--generator", str(w / "garbage" / "1"), "--n", "2", "--out", str(w / "o11")]),
        ("truncated saved_model.pb", ["generate", "--generator", str(w / "truncated" / "1"), "--n", "2", "--out", str(w / "o12")]),
        ("generator folder without saved_model.pb", ["generate", "--generator", str(w), "--n", "2", "--out", str(w / "o13")]),
        ("GAN methods at 28x28 (not a power of two)", ["evaluate-all", "--preset", "tiny", "--set", "image_size=28",
                                                       "--out", str(w / "o14")]),
        ("`--shard auto` outside a cluster", ["evaluate-all", "--preset", "tiny", "--shard", "auto", "--out", str(w / "o15")]),
        ("`--keep-val` on data without a val split", ["data", "prepare", "--keep-val", "--out", str(w / "o16")]),
        ("`--natural` with `--minority-fraction`", ["data", "prepare", "--natural", "--minority-fraction", "0.1",
                                                    "--out", str(w / "o17")]),
        ("`--minority-fraction` beside `--manifest`", ["train-classifier", "--method", "baseline", "--preset", "tiny",
                                                       "--manifest", str(good), "--minority-fraction", "0.1",
                                                       "--out", str(w / "o18")]),
    ]
    notes = []
    if mount_tmpfs(w / "full", "size=24k"):
        cases.append(("full disk (24 KiB tmpfs)", ["data", "prepare", "--out", str(w / "full" / "prepared")]))
        cases.append(("disk full mid-run (160 KiB tmpfs)", gan + ["--set", "gan.cdcgan_epochs=3", "--out", str(w / "full2"),
                                                                  "--quiet"]))
        mount_tmpfs(w / "full2", "size=160k")
    else:
        notes.append("full-disk cases skipped: cannot mount a tmpfs (needs root)")
    if mount_tmpfs(w / "ro", "size=64k,ro"):
        cases.append(("read-only `--out` (read-only tmpfs)", gan + ["--out", str(w / "ro" / "run")]))
    else:
        notes.append("read-only case skipped: cannot mount a tmpfs (needs root)")

    rows = []
    try:
        for name, args in cases:
            out = Path(args[args.index("--out") + 1])
            existed = out.exists()
            code, err, notices = run(args)
            litter = sorted(str(p.relative_to(w)) for p in w.rglob(".*.tmp"))
            one_line = len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in "\n".join(err)
            wrote = (not existed and out.exists() and any(out.rglob("*"))) if name != "disk full mid-run (160 KiB tmpfs)" else None
            rows.append((name, code, one_line, wrote, litter, err, notices))
            print(f"{name}: exit {code}, {err[-1] if err else '(no stderr)'}", flush=True)
    finally:
        for m in ("full", "full2", "ro"):
            subprocess.run(["umount", "-l", str(w / m)], capture_output=True)

    lines = ["# Bad input through the real CLI", "",
             "`python experiments/robustness/bad_inputs.py`: each case in a fresh `python -m keras_cxr` process "
             "(this project's 2-core CPU machine). Paths shortened to `W/` (the scratch folder).", "",
             "| case | exit | one `error:` line | wrote into `--out` | temporaries left | keras_cxr's stderr | TensorFlow start-up notices |",
             "|---|---|---|---|---|---|---|"]
    for name, code, one_line, wrote, litter, err, notices in rows:
        shown = " / ".join(err).replace(str(w), "W").replace(str(REPO) + "/", "").replace("|", "\\|")
        lines.append(f"| {name} | {code} | {'yes' if one_line else 'NO'} | "
                     f"{'-' if wrote is None else ('YES' if wrote else 'no')} | {', '.join(litter) or 'none'} | `{shown}` | {notices} |")
    lines += ["", "`wrote` is `-` for the mid-run full disk: by then the run had legitimately started (config, "
              "manifest, log rows); what matters there is no temporaries and a resumable folder.",
              "The last column counts the lines TensorFlow's C++ runtime prints while it starts (oneDNN, CUDA "
              "and CPU-feature notices, before its logging is configured); the CLI holds them back unless "
              "`--verbose` or the user's own TF_CPP_MIN_LOG_LEVEL asks for them."] + notes
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bad_inputs.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'bad_inputs.md'}")
    shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
