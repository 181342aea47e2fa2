"""Issue 23, "Also measure": the `paper` preset's DCGAN at its own scale, on 2 CPU cores.

128x128, Adam(2e-3, 0.5, 0.999), batch 128, 160 epochs on the minority (pneumonia) images of the
paper preset's split of ../shared/data/kermany128, the last epoch exported as the paper does. The
question: does it diverge at the paper's learning rate, as the quick DCGAN (64x64, batch 32) did
at 2e-3 (collapse to noise at epoch 94, docs/gan-training.md "Divergence")? Quality is tracked
every 10 epochs (`gan.eval_every=10`; tracking does not change the trained weights), against the
split's seed-0 extractor.

    python experiments/paper_dcgan/run.py train     # resumable; logs a sitting to sittings.json
    python experiments/paper_dcgan/run.py table     # results.md: the tracked curve and the grids

Committed: the run's config, log.csv, done.json, manifest, sittings and the sample grids that
results.md shows; not checkpoints or weights.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "experiments" / "results" / "paper_dcgan"
DATA = "../shared/data/kermany128"
EVAL_EVERY = 10


def train(data: str) -> int:
    from keras_cxr.pipeline.provenance import run_logged

    cmd = [sys.executable, "-m", "keras_cxr", "train-gan", "--model", "dcgan", "--preset", "paper",
           "--data", data, "--out", str(OUT), "--set", f"gan.eval_every={EVAL_EVERY}", "--quiet"]
    return run_logged(cmd, OUT, cwd=ROOT)


def real_vs_real() -> float:
    """The scale of the tracked distances: the seed-0 extractor's Frechet distance between the real
    pneumonia train images (what tracking compares against) and the real pneumonia test images."""
    from keras_cxr.classify.datasets import Splits
    from keras_cxr.config import load_preset
    from keras_cxr.evaluate.quality import frechet_distance
    from keras_cxr.pipeline.extractor import ensure_extractor, unit_images

    config = load_preset("paper")
    manifest = OUT / "data" / "manifest.csv"
    extractor = ensure_extractor(config, OUT, manifest, seed=0)
    splits = Splits.load(manifest, config.image_size)
    label = json.loads((OUT / "dcgan" / "config.json").read_text())["generated_label"]
    train, test = (unit_images(x[y == label]) for x, y in (splits.train, splits.test))
    return frechet_distance(extractor.features(train), extractor.features(test))


def table() -> None:
    run = OUT / "dcgan"
    rvr = real_vs_real()
    with open(run / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    tracked = [r for r in rows if r.get("fd") not in (None, "")]
    done = json.loads((run / "done.json").read_text()) if (run / "done.json").exists() else None
    grids = OUT / "grids"
    grids.mkdir(exist_ok=True)
    shown = []
    for r in tracked:
        src = run / "samples" / f"epoch-{int(r['epoch']):04d}.png"
        if src.exists():
            shutil.copy2(src, grids / src.name)
        if (grids / src.name).exists():
            shown.append(int(r["epoch"]))
    sittings = json.loads((OUT / "sittings.json").read_text()) if (OUT / "sittings.json").exists() else []
    md = ["# The paper preset's DCGAN at its own scale (issue 23)", "",
          "`python experiments/paper_dcgan/run.py train` then `table`: 128x128, batch 128, Adam(2e-3, 0.5, 0.999), "
          "160 epochs on the pneumonia images of the paper preset's Kermany split, tracked every "
          f"{EVAL_EVERY} epochs (Frechet distance and KID of 512 generated images from fixed latents against the "
          "real pneumonia train images, the split's seed-0 extractor at 128x128).", "",
          f"Real-vs-real (real pneumonia train against test images, same extractor): {rvr:.3f}.", "",
          "| epoch | Frechet | Frechet / real-vs-real | KID | D loss real | D loss fake | G loss | epoch s |",
          "|---|---|---|---|---|---|---|---|"]
    for r in tracked:
        md.append(f"| {r['epoch']} | {float(r['fd']):.3f} | {float(r['fd']) / rvr:.1f} | {float(r['kid']):.4f} | "
                  f"{float(r['d_loss_real']):.3f} | "
                  f"{float(r['d_loss_fake']):.3f} | {float(r['g_loss']):.3f} | {float(r['epoch_s']):.1f} |")
    partial = json.loads((OUT / "partial.json").read_text()) if (OUT / "partial.json").exists() else None
    config = json.loads((run / "config.json").read_text())  # a DCGAN trains on its label's images: N // batch steps
    steps = config["train_counts"][config["generated_label"]] // config["preset"]["gan"]["batch_size"]
    md += ["", f"Epochs logged: {len(rows)} of 160" + (f"; exported epoch {done['export_epoch']} ({done['export']})"
                                                       if done else f" (not finished: {partial['why']})" if partial
                                                       else " (not finished)") + "."
           + (f" {steps} generator updates per epoch." if steps else ""),
           "Sittings: " + "; ".join(f"{s['started_utc']} UTC, {s['wall_s'] / 60:.1f} min, {s['cpu']}, "
                                    f"threads {s['threads']}, exit {s['exit']}" for s in sittings) + ".", "",
           "Sample grids (fixed latents) at the tracked epochs:", ""]
    md += [f"![epoch {e}](grids/epoch-{e:04d}.png)" for e in shown]
    (OUT / "results.md").write_text("\n".join(md) + "\n")
    print(f"wrote {OUT / 'results.md'} ({len(tracked)} tracked epochs)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("train", "table"))
    p.add_argument("--data", default=DATA)
    args = p.parse_args(argv)
    if args.stage == "train":
        sys.exit(train(args.data))
    table()


if __name__ == "__main__":
    main()
