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


def fake_generator(path: Path, kind: str) -> Path:
    """A SavedModel with keras_cxr's metadata whose `generate` is hostile: NaN, flat, RGB or
    wrong-size output, or a foreign signature (`x` in, `y` out)."""
    import json

    import tensorflow as tf

    outputs = {"nan": lambda n: tf.fill([n, 32, 32, 1], float("nan")), "flat": lambda n: tf.fill([n, 32, 32, 1], 0.5),
               "rgb": lambda n: tf.random.uniform([n, 32, 32, 3]), "small": lambda n: tf.random.uniform([n, 16, 16, 1])}
    module = tf.Module()
    if kind == "foreign":
        module.generate = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None, 7], tf.float32)])
    else:
        make = outputs[kind]
        module.generate = tf.function(lambda num_images, label, seed: {"images": make(num_images)}, input_signature=[
            tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64)])
    tf.saved_model.save(module, str(path), signatures={"generate": module.generate})
    (path / "assets.extra").mkdir()
    (path / "assets.extra" / "keras_cxr.json").write_text(json.dumps(
        {"kind": "dcgan", "generated_label": 1, "image_size": 32, "latent_dim": 100, "pixel_range": "0_1",
         "class_names": ["NORMAL", "PNEUMONIA"], "minority_label": 1}))
    return path


def npz_manifest(w: Path, name: str, row: str) -> Path:
    """A manifest of a small .npz whose seventh train row is `row` (e.g. train/99999)."""
    import numpy as np

    npz = w / "d.npz"
    if not npz.exists():
        rng = np.random.default_rng(0)
        np.savez(npz, train_images=rng.integers(0, 255, (8, 28, 28), dtype=np.uint8), train_labels=np.arange(8) % 2,
                 test_images=rng.integers(0, 255, (4, 28, 28), dtype=np.uint8), test_labels=np.arange(4) % 2)
    names = ("NORMAL", "PNEUMONIA")
    rows = [(f"{npz}#train/{i}", i % 2, names[i % 2], "train") for i in range(6)] + [(f"{npz}#{row}", 0, "NORMAL", "train")]
    rows += [(f"{npz}#test/{i}", i % 2, names[i % 2], "test") for i in range(4)]
    rows += [(f"{npz}#train/{i}", i % 2, names[i % 2], "val") for i in (6, 7)]
    return manifest(w / name, rows)


def zip_bomb(path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("chest_xray/train/NORMAL/zeros.png", b"\0" * (2 << 30 >> 4))  # 128 MiB of zeros, ~128 KiB zipped
    return path


def dicom_tree(root: Path, frames: int = 1, photometric: str = "MONOCHROME2") -> Path:
    """A copy of the bundled sample with one DICOM (made with pydicom) among the train images."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("*.md"))
    samples = 3 if photometric == "RGB" else 1
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 16, 16, samples, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if samples == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = bytes(16 * 16 * samples * frames)
    ds.save_as(root / "train" / "PNEUMONIA" / "scan.dcm", enforce_file_format=True)
    return root


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
    # The audit of issue 22: what used to be a traceback, a silent acceptance or a stuck folder.
    import numpy as np

    np.save(w / "plain.npy", np.zeros(3))
    models = w / "models"
    fake_generator(models / "dcgan" / "1", "nan")
    for kind in ("flat", "rgb", "small", "foreign"):
        fake_generator(w / f"gen_{kind}" / "1", kind)
    tiny = ["evaluate-all", "--preset", "tiny"]
    classifier = ["train-classifier", "--method", "baseline", "--preset", "tiny", "--set", "image_size=28"]
    cases += [
        ("duplicate seeds `--seeds 0 1 1`", tiny + ["--seeds", "0", "1", "1", "--out", str(w / "a1")]),
        ("`--seeds 0 0`", tiny + ["--seeds", "0", "0", "--out", str(w / "a2")]),
        ("`--seeds -1`", tiny + ["--seeds", "-1", "--out", str(w / "a3")]),
        ("`classifier.seeds=[1.7]`", tiny + ["--set", "classifier.seeds=[1.7]", "--out", str(w / "a4")]),
        ("`max_rotation_deg=.nan`", tiny + ["--set", "classifier.max_rotation_deg=.nan", "--out", str(w / "a5")]),
        ("YAML error in `--set` (`gan.alphas=[0.5`)", tiny + ["--set", "gan.alphas=[0.5", "--out", str(w / "a6")]),
        ("`!!python/object` tag in `--set`", tiny + ["--set", "gan.seed=!!python/object/apply:os.system [id]",
                                                     "--out", str(w / "a7")]),
        ("`--weights` given a plain .npy", tiny + ["--weights", "imagenet-file", str(w / "plain.npy"), "--out", str(w / "a8")]),
        ("manifest row `x.npz#train/99999`", classifier + ["--manifest", str(npz_manifest(w, "n1.csv", "train/99999")),
                                                           "--out", str(w / "a9")]),
        ("manifest row `x.npz#nosuch/0`", classifier + ["--manifest", str(npz_manifest(w, "n2.csv", "nosuch/0")),
                                                        "--out", str(w / "a10")]),
        ("manifest row `x.npz#train/-1`", classifier + ["--manifest", str(npz_manifest(w, "n3.csv", "train/-1")),
                                                        "--out", str(w / "a11")]),
        ("`train-gan --seed -1`", gan + ["--seed", "-1", "--out", str(w / "a12")]),
        ("`generate --seed 9223372036854775000`", ["generate", "--generator", str(REPO / "experiments/results/quick/models/dcgan/1"),
                                                   "--n", "2", "--seed", "9223372036854775000", "--out", str(w / "a13")]),
        ("generator with a foreign `generate` signature", ["generate", "--generator", str(w / "gen_foreign" / "1"),
                                                          "--n", "2", "--out", str(w / "a14")]),
        ("generator with NaN output, in a GAN cell", ["train-classifier", "--method", "dcgan", "--preset", "tiny",
                                                      "--manifest", str(good), "--models", str(models), "--out", str(w / "a15")]),
        ("generator with flat output", ["generate", "--generator", str(w / "gen_flat" / "1"), "--n", "2", "--out", str(w / "a16")]),
        ("generator with RGB output", ["generate", "--generator", str(w / "gen_rgb" / "1"), "--n", "2", "--out", str(w / "a17")]),
        ("generator with 16x16 output (32 recorded)", ["generate", "--generator", str(w / "gen_small" / "1"), "--n", "2",
                                                       "--out", str(w / "a18")]),
        ("`data fetch` of a zip bomb (128 MiB of zeros)", ["data", "fetch", "kermany", "--dest", str(w / "a19"),
                                                           "--url", zip_bomb(w / "bomb.zip").as_uri()]),
    ]
    # Data as hospitals ship it (issue 26): DICOM files and a flat folder with a CSV of labels.
    (w / "flat").mkdir()
    for i, f in enumerate(normal + pneumonia):
        shutil.copy(f, w / "flat" / f"{i}.png")
    (w / "labels.csv").write_text("id,Target\n0.png,0\n1.png,0\n2.png,1\n3.png,-1\n")
    (w / "missing.csv").write_text("id,Target\n0.png,0\nnot_there,1\n")
    mapped = ["--label-map", "1=PNEUMONIA,0=NORMAL"]
    cases += [
        ("multi-frame DICOM in a class folder", ["data", "prepare", str(dicom_tree(w / "d1", frames=2)), "--out", str(w / "b1")]),
        ("colour DICOM in a class folder", ["data", "prepare", str(dicom_tree(w / "d2", photometric="RGB")), "--out", str(w / "b2")]),
        ("label file: a value `--label-map` does not name", ["data", "prepare", str(w / "flat"), "--labels", str(w / "labels.csv"),
                                                             *mapped, "--out", str(w / "b3")]),
        ("label file lists a missing image", ["data", "prepare", str(w / "flat"), "--labels", str(w / "missing.csv"),
                                              *mapped, "--out", str(w / "b4")]),
        ("`--label-column` without `--labels`", ["data", "prepare", str(w / "flat"), "--label-column", "Target",
                                                 "--out", str(w / "b5")]),
        ("a flat folder without `--labels`", ["data", "prepare", str(w / "flat"), "--out", str(w / "b6")]),
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
            out = Path(args[args.index("--out" if "--out" in args else "--dest") + 1])
            existed = out.exists()
            code, err, notices = run(args)
            litter = sorted(str(p.relative_to(w)) for p in w.rglob(".*.tmp"))
            one_line = len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in "\n".join(err)
            wrote = (not existed and out.exists() and any(out.rglob("*"))) if name != "disk full mid-run (160 KiB tmpfs)" else None
            if args[:2] == ["data", "fetch"]:  # the downloaded archive is kept (resumable); nothing extracted
                wrote = any(out.glob("*_extracted"))
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
