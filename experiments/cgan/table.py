"""Issue 23's tables: every finished run of a split measured and summarised.

Two reads per run (see run.py): the raw G and its moving average ("+ema").
- Tracked (free, every run, both reads): the best epoch by today's export rule
  (`keras_cxr.gan.selection`: label fidelity relative to the real test images') on the log's
  columns (`fd`, `fidelity_*` for the average, `raw_*` for the raw G), with the seed-0
  extractor: 512 generated minority images against the real minority train images, as a ratio
  to the same extractor's real train-vs-test distance.
- Measured (the exported generator, which is the average's best epoch under the rule the run
  was trained with: absolute 0.9 before done.json recorded `real_fidelity`): Frechet / real-vs-real
  per extractor seed (0, 1, 2; a fresh sample each), KID, precision / recall, minority-label
  fidelity relative to the real minority test images' under the same extractor, and
  near-copies: generated images closer (pixel RMSE) to a train image than percentile 1 of the
  real train images' distances to their nearest other train image (`keras_cxr.explain.memorisation`).
- Measured raw G (runs that keep every tracked epoch's generator, `tracked/`): the same
  measurements of the raw G at its tracked best epoch, exported beside the run's generator as
  `models/cdcgan_a050_raw/1` and read through the same SavedModel path.

Writes <split>/<variant>/seed<k>/quality.json (cached), experiments/results/cgan/summary.json
(rows of both splits) and <split>/results.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

EXTRACTOR_SEEDS = (0, 1, 2)
N_GENERATED = 500
RUN = "cdcgan_a050"
RAW = RUN + "_raw"  # its raw G at the raw read's tracked best epoch, where the run kept it
# Runs trained before `gan.ema` warmed up (commit 5951935): their "+ema" read is the plain 0.999
# average, which still held ~16% of G's random start at step 1,850; their raw read is unaffected.
PLAIN_EMA = {("m25", "base", 0)}


def log_view(rows: list[dict], prefix: str) -> list[dict]:
    """The tracked rows of a log.csv, with the average's (prefix "") or the raw G's ("raw_")
    quality columns under their plain names, as numbers."""
    fields = ("fd", "kid", "fidelity_label0", "fidelity_label1")
    return [{"epoch": int(r["epoch"]), **{f: float(r[prefix + f]) for f in fields}}
            for r in rows if r.get(prefix + "fd") not in (None, "")]


def tracked_best(rows: list[dict], prefix: str, min_fidelity: float, real_fidelity: tuple) -> dict | None:
    from keras_cxr.gan.selection import best_row

    return best_row(log_view(rows, prefix), True, min_fidelity, real_fidelity)


class Split:
    """What every run of one split is measured against, built once."""

    def __init__(self, split_dir: Path):
        from keras_cxr.classify.datasets import Splits
        from keras_cxr.config import load_preset
        from keras_cxr.pipeline.extractor import ensure_extractor, unit_images

        self.dir = split_dir
        minority_pct = int(split_dir.name[1:])
        self.config = load_preset("quick", [f"data.minority_fraction={minority_pct / 100}"])
        manifest = split_dir / "data" / "manifest.csv"
        self.extractors = [ensure_extractor(self.config, split_dir, manifest, s) for s in EXTRACTOR_SEEDS]
        splits = Splits.load(manifest, self.config.image_size)
        self.x_train, self.y_train = unit_images(splits.train[0]), splits.train[1]
        self.x_test, self.y_test = unit_images(splits.test[0]), splits.test[1]
        self.minority = int(np.argmin(np.bincount(self.y_train, minlength=2)))
        e0 = self.extractors[0]
        from keras_cxr.evaluate.quality import frechet_distance, label_fidelity

        test = [e0(self.x_test[self.y_test == c]) for c in (0, 1)]  # (features, probabilities) per label
        # The export gate's scale, as `keras_cxr.pipeline.tracking` computes it: label 0, label 1.
        self.real_fidelity_per_label = tuple(label_fidelity(test[c][1], c) for c in (0, 1))
        self.real_fidelity = self.real_fidelity_per_label[self.minority]

        self.real_vs_real0 = frechet_distance(e0.features(self.x_train[self.y_train == self.minority]),
                                              test[self.minority][0])
        from keras_cxr.explain.memorisation import near_copy_threshold

        self.threshold = near_copy_threshold(self.x_train)

    def measure(self, generator: Path) -> tuple[dict, np.ndarray]:
        """One exported generator (a SavedModel folder) measured against this split; and the
        seed-0 extractor's sample of its minority images."""
        from keras_cxr.evaluate.generator_quality import measure_generators

        quality, samples = measure_generators({RUN: (generator, True)}, self.extractors, self.x_train, self.y_train,
                                              self.x_test, self.y_test, N_GENERATED)
        return self._read(quality, samples, RUN), samples[RUN]

    def _read(self, quality: dict, samples: dict, name: str) -> dict:
        from keras_cxr.evaluate.generator_quality import REAL
        from keras_cxr.explain.memorisation import NEAR_COPY_PERCENTILE, nearest_rmse

        q, real = quality[name], quality[REAL]
        gen_d, _ = nearest_rmse(samples[name], self.x_train)
        return {"frechet_ratio_per_extractor": q["ratio_per_seed"], "frechet_per_extractor": q["frechet_per_seed"],
                "real_vs_real_per_extractor": real["frechet_per_seed"], "kid": q["kid"], "precision": q["precision"],
                "recall": q["recall"], "fidelity": {str(k): v for k, v in q["fidelity"].items()},
                "fidelity_real_minority": self.real_fidelity,
                "fidelity_rel": q["fidelity"][self.minority] / self.real_fidelity,
                "near_copies": int((gen_d < self.threshold).sum()), "near_copy_threshold_rmse": self.threshold,
                "near_copy_rule": f"pixel RMSE below percentile {NEAR_COPY_PERCENTILE:g} of the real train "
                                  "images' distances to their nearest other train image",
                "feature_dim": real["feature_dim"], "n_real_minority_train": int((self.y_train == self.minority).sum())}


def export_raw(run_dir: Path, epoch: int) -> Path:
    """The raw G of tracked `epoch` as a SavedModel (`models/cdcgan_a050_raw/1`), made once."""
    import dataclasses

    from keras_cxr.config import config_from_dict
    from keras_cxr.gan.export import export_generator
    from keras_cxr.gan.record import GeneratorRecord
    from keras_cxr.gan.train import build_gan
    from keras_cxr.methods import GeneratorSpec
    from keras_cxr.pipeline.run_folder import RunFolder

    dest = run_dir / "models" / RAW / "1"
    if (dest / "saved_model.pb").exists() and GeneratorRecord.read(dest).export_epoch == epoch:
        return dest
    run = RunFolder(run_dir, GeneratorSpec("cdcgan", 0.5))
    config = config_from_dict(json.loads(run.config_path.read_text())["preset"])
    record = GeneratorRecord.read(run.export_dir)
    gan = build_gan("cdcgan", config, 0.5, majority_label=record.majority_label)
    run.load_tracked(gan, epoch)
    return export_generator(gan.generator, dest, dataclasses.replace(record.exported("best", epoch), name=RAW, ema=0.0))


def _grids(run_dir: Path, split_dir: Path, variant: str, seed: int, epoch: int) -> list[str]:
    """The exported epoch's sample grids (fixed latents, one per label), copied beside results.md."""
    import shutil

    out = []
    for label in (0, 1):
        src = run_dir / RUN / "samples" / f"epoch-{epoch:04d}_label{label}.png"
        if src.exists():
            dest = split_dir / "grids" / f"{variant}_seed{seed}_label{label}.png"
            dest.parent.mkdir(exist_ok=True)
            shutil.copy2(src, dest)
            out.append(str(dest.relative_to(split_dir)))
    return out


def run_row(split: Split, run_dir: Path, variant: str, seed: int) -> dict | None:
    done = run_dir / RUN / "done.json"
    if not done.exists():
        return None
    import csv

    with open(run_dir / RUN / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fid, real = split.config.gan.min_label_fidelity, split.real_fidelity_per_label
    tracked = {"raw": tracked_best(rows, "raw_", fid, real), "ema": tracked_best(rows, "", fid, real)}
    for t in tracked.values():
        if t is not None:
            t["frechet_ratio"] = t["fd"] / split.real_vs_real0
            t["fidelity_rel"] = t[f"fidelity_label{split.minority}"] / split.real_fidelity
    cache = run_dir / "quality.json"
    if not cache.exists():
        cache.write_text(json.dumps(split.measure(run_dir / "models" / RUN / "1")[0], indent=2) + "\n")
    measured = json.loads(cache.read_text())
    raw_epoch = tracked["raw"]["epoch"] if tracked["raw"] else 0
    kept = (run_dir / RUN / "tracked" / f"epoch-{raw_epoch:04d}.npz").exists()
    if kept and measured.get("raw", {}).get("epoch") != raw_epoch:  # the raw G too, where the run kept it
        from keras_cxr.gan.grid import save_grid

        raw, images = split.measure(export_raw(run_dir, raw_epoch))
        measured["raw"] = {"epoch": raw_epoch, **raw}
        grid = split.dir / "grids" / f"{variant}_seed{seed}_raw_label{split.minority}.png"
        grid.parent.mkdir(exist_ok=True)
        save_grid(images[:16], grid)
        cache.write_text(json.dumps(measured, indent=2) + "\n")
    sittings = json.loads((run_dir / "sittings.json").read_text()) if (run_dir / "sittings.json").exists() else []
    done = json.loads(done.read_text())
    export_epoch = done.get("export_epoch")
    return {"variant": variant, "gan_seed": seed, "minority_pct": int(split.dir.name[1:]),
            "export_epoch": export_epoch, "export_gate": "relative" if "real_fidelity" in done else "absolute",
            "grids": _grids(run_dir, split.dir, variant, seed, export_epoch), "tracked": tracked,
            "measured": measured,
            # The train steps' seconds from the log, whole across resumes (a killed sitting logs no wall time).
            "train_steps_s": round(sum(float(r["epoch_s"]) for r in rows), 1),
            "threads": sorted({str(s.get("threads")) for s in sittings}),
            "cpu": sittings[-1]["cpu"] if sittings else None}


def collect(split_dir: Path, variants) -> list[dict]:
    split = None
    rows = []
    for variant in variants:
        for run_dir in sorted((split_dir / variant).glob("seed*")):
            if not (run_dir / RUN / "done.json").exists():
                continue
            split = split or Split(split_dir)
            rows.append(run_row(split, run_dir, variant, int(run_dir.name[4:])))
    return rows


def _fmt(x, digits=2):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(rows: list[dict], split_dir: Path) -> str:
    md = [f"# Issue 23: conditional generators at {split_dir.name[1:]}% minority", "",
          "Quick preset cDCGAN (alpha 0.5, 64x64, 57 epochs (long: 114), tracked every 5), `gan.ema=0.999` in every run. "
          "Tracked columns: best epoch by today's export rule (label fidelity at least 0.9 x the real test images' "
          "for both labels), seed-0 extractor, ratio to its real train-vs-test "
          "Frechet distance (raw G and its average). Measured columns: the exported generator (the average's "
          "best epoch under the gate the run was trained with), Frechet / real-vs-real per extractor seed 0, 1, 2.",
          "", "Exported under the absolute 0.9 gate (before it was relative): "
          + (", ".join(f"{r['variant']} seed {r['gan_seed']}" for r in rows if r["export_gate"] == "absolute") or "none")
          + ".", "",
          "| variant | GAN seed | raw: epoch | raw: FD ratio | raw: fidelity rel | raw measured: FD ratio per "
          "extractor, fidelity rel, near-copies | ema: epoch | ema: FD ratio | "
          "ema: fidelity rel | measured FD ratio per extractor | KID | precision | recall | fidelity rel | "
          "near-copies | train steps (min) |", "|" + "---|" * 16]
    for r in rows:
        t, m = r["tracked"], r["measured"]
        cells = [r["variant"], str(r["gan_seed"])]
        for k in ("raw", "ema"):
            cells += [str(t[k]["epoch"]), _fmt(t[k]["frechet_ratio"]), _fmt(t[k]["fidelity_rel"])] if t[k] else ["-"] * 3
            if k == "raw":
                raw = m.get("raw")
                cells.append(f"{' / '.join(_fmt(v) for v in raw['frechet_ratio_per_extractor'])}, "
                             f"{_fmt(raw['fidelity_rel'])}, {raw['near_copies']}" if raw else "-")
        if (split_dir.name, r["variant"], r["gan_seed"]) in PLAIN_EMA:
            cells[6] += " (plain EMA)"
        cells += [" / ".join(_fmt(v) for v in m["frechet_ratio_per_extractor"]), _fmt(m["kid"], 4),
                  _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["fidelity_rel"]), str(m["near_copies"]),
                  _fmt(r["train_steps_s"] / 60, 1) + f" ({'/'.join(r['threads'])} thr)"]
        md.append("| " + " | ".join(cells) + " |")
    md += ["", "Sample grids of each exported generator (epoch as in the table; fixed latents; label 0 normal, "
           "label 1 pneumonia):", ""]
    md += [f"![{r['variant']} seed {r['gan_seed']} label {g[-5]}]({g})" for r in rows for g in r.get("grids", [])]
    raw_grids = sorted(split_dir.glob("grids/*_raw_label*.png"))
    if raw_grids:
        md += ["", "The measured raw G's (the seed-0 extractor's sample of 500 minority images, the first 16):", ""]
        md += [f"![{g.stem}](grids/{g.name})" for g in raw_grids]
    if rows:
        m = rows[0]["measured"]
        md += ["", f"Reference set: {m['n_real_minority_train']} real minority train images against "
               f"{m['feature_dim']} feature dimensions"
               + (" (fewer images than dimensions: every covariance is rank-deficient and each Frechet distance "
                  "biased upwards, so read ratios, not absolute distances)." if m["n_real_minority_train"] < m["feature_dim"]
                  else " (more images than dimensions)."),
               f"Real minority test images' fidelity under extractor seed 0: {m['fidelity_real_minority']:.3f} "
               "(fidelity rel divides by it). Near-copies: " + m["near_copy_rule"]
               + f" ({m['near_copy_threshold_rmse']:.4f}).",
               f"CPU: {rows[0]['cpu']}; train steps: the sum of the log's epoch times (tracking, grids and "
               "checkpoints not included), on 1 or 2 TensorFlow op threads (thr) on a machine shared with other "
               "work, so it says little about the recipe's own cost.",
               "(plain EMA): trained before the average warmed up; its ema columns and its measured generator are "
               "the plain 0.999 average, not comparable with the other runs' average."]
    return "\n".join(md) + "\n"


def write_table(split_dir: Path, variants) -> None:
    rows = collect(split_dir, variants)
    (split_dir / "results.md").write_text(markdown(rows, split_dir))
    summary_path = split_dir.parent / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"chosen": None, "rows": []}
    pct = int(split_dir.name[1:])
    kept = [r for r in summary["rows"] if r["minority_pct"] != pct]
    for r in rows:
        for read in ("raw", "ema"):
            t = r["tracked"][read]
            m = r["measured"] if read == "ema" else r["measured"].get("raw")  # the raw G: measured where kept
            row = {"variant": r["variant"] + ("+ema" if read == "ema" else ""), "minority_pct": pct,
                   "gan_seed": r["gan_seed"], "read": "measured" if m else "tracked"}
            if m:
                row.update({"frechet_ratio": float(np.mean(m["frechet_ratio_per_extractor"])),
                            "frechet_ratio_per_extractor": m["frechet_ratio_per_extractor"],
                            "fidelity_rel": m["fidelity_rel"], "near_copies": m["near_copies"]})
            else:
                row.update({"frechet_ratio": t["frechet_ratio"] if t else None,
                            "frechet_ratio_per_extractor": [t["frechet_ratio"]] if t else [],
                            "fidelity_rel": t["fidelity_rel"] if t else None, "near_copies": None})
            kept.append(row)
    summary["rows"] = kept
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {split_dir / 'results.md'} and {summary_path} ({len(rows)} runs)")
