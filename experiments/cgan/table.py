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

Instruments. A trained extractor is the yardstick of every number above, and two trainings of one
seed on different CPUs are different yardsticks (oneDNN picks its kernels by instruction set: the
seed-0 extractor of m25 retrained on an Intel AMX host tests at AUC 0.929 where the AMD one tested
0.922), with Frechet ratios several-fold apart (extractor seeds 0, 1, 2 of one training already give
18.9 / 3.7 / 5.5 for one generator). So every run is read under the extractor it was tracked with
(its own `extractor/*/seed0.json`), whose constants (real fidelity per label, real-vs-real) are kept
in <split>/instruments.json by id; a table row names its instrument, and runs are compared only
under one. Extractor weights are not committed: a run whose instrument's weights are gone keeps its
tracked numbers and its cached measurement, and cannot be measured again.

Partial runs: a run folder with `partial.json` (why it stopped, its last epoch) instead of
`done.json` is read from its log up to that epoch: tracked columns only.

Writes <split>/<variant>/seed<k>/quality.json (cached), experiments/results/cgan/summary.json
(rows of both splits) and <split>/results.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
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


def extractor_id(record: dict) -> str:
    """Names one trained extractor (a run's instrument): a hash of its test metrics, which two
    trainings of one seed on different CPUs do not share."""
    return hashlib.sha256(json.dumps(record["test_metrics"], sort_keys=True).encode()).hexdigest()[:8]


def run_extractor_id(run_dir: Path) -> str:
    """The instrument a run was tracked with: the seed-0 extractor copied into its folder."""
    records = sorted(run_dir.glob("extractor/*/seed0.json"))
    if len(records) != 1:
        raise SystemExit(f"error: a run folder holds one seed-0 extractor record. Received: {run_dir} ({len(records)})")
    return extractor_id(json.loads(records[0].read_text()))


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
        self.id = extractor_id(e0.record)
        self.instruments = self._record_instrument()

    def _record_instrument(self) -> dict:
        """<split>/instruments.json with this split's current extractor added: what tracked ratios of
        runs tracked under it are read against, kept after its weights are gone."""
        from keras_cxr.pipeline.provenance import cpu_model

        path = self.dir / "instruments.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        aucs = [e.record["test_metrics"]["roc_auc"] for e in self.extractors]
        if self.id in known and known[self.id]["test_roc_auc"] != aucs:
            # Seed 0 retrained to the same weights (same id), seeds 1 or 2 did not: not one instrument.
            raise SystemExit(f"error: the extractors of {self.dir} have seed 0 of instrument {self.id} but seeds 1-2 "
                             f"test at other ROC AUCs than {path} records. Received: {aucs}")
        if self.id not in known:
            known[self.id] = {"real_fidelity_per_label": list(self.real_fidelity_per_label),
                              "real_vs_real0": self.real_vs_real0, "cpu": cpu_model(),
                              "test_roc_auc": aucs}
            path.write_text(json.dumps(known, indent=2) + "\n")
        return known

    def measure(self, generator: Path, conditional: bool = True) -> tuple[dict, np.ndarray]:
        """One exported generator (a SavedModel folder) measured against this split; and the
        seed-0 extractor's sample of its minority images."""
        from keras_cxr.evaluate.generator_quality import measure_one
        from keras_cxr.explain.memorisation import NEAR_COPY_PERCENTILE

        m, images = measure_one(generator, conditional, self.extractors, self.x_train, self.y_train, self.x_test,
                                self.y_test, N_GENERATED, self.threshold)
        fidelity = m["fidelity"]
        return {**{k: m[k] for k in ("frechet_ratio_per_extractor", "frechet_per_extractor", "real_vs_real_per_extractor",
                                     "kid", "precision", "recall")},
                "fidelity": {str(k): v for k, v in fidelity.items()}, "fidelity_real_minority": self.real_fidelity,
                "fidelity_rel": fidelity[self.minority] / self.real_fidelity,
                "near_copies": m["near_copies"], "near_copy_threshold_rmse": self.threshold,
                "near_copy_rule": f"pixel RMSE below percentile {NEAR_COPY_PERCENTILE:g} of the real train "
                                  "images' distances to their nearest other train image",
                "feature_dim": m["feature_dim"], "n_real_minority_train": int((self.y_train == self.minority).sum())}, images


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
        dest = split_dir / "grids" / f"{variant}_seed{seed}_label{label}.png"
        if src.exists():
            dest.parent.mkdir(exist_ok=True)
            shutil.copy2(src, dest)
        if dest.exists():  # copied by an earlier table, where the run's samples are gone
            out.append(str(dest.relative_to(split_dir)))
    return out


def _readable(run_dir: Path) -> bool:
    """Finished (`done.json`), or stopped for good (`partial.json`): a run the table reads."""
    return (run_dir / RUN / "done.json").exists() or (run_dir / "partial.json").exists()


def run_row(split: Split, run_dir: Path, variant: str, seed: int) -> dict | None:
    done, partial = run_dir / RUN / "done.json", run_dir / "partial.json"
    if not _readable(run_dir):
        return None
    import csv

    with open(run_dir / RUN / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    instrument = run_extractor_id(run_dir)
    if instrument not in split.instruments:
        raise SystemExit(f"error: {run_dir} was tracked under extractor {instrument}, which "
                         f"{split.dir / 'instruments.json'} does not know. Received: {sorted(split.instruments)}")
    constants = split.instruments[instrument]
    real = tuple(constants["real_fidelity_per_label"])
    tracked = {"raw": tracked_best(rows, "raw_", split.config.gan.min_label_fidelity, real),
               "ema": tracked_best(rows, "", split.config.gan.min_label_fidelity, real)}
    for t in tracked.values():
        if t is not None:
            t["frechet_ratio"] = t["fd"] / constants["real_vs_real0"]
            t["fidelity_rel"] = t[f"fidelity_label{split.minority}"] / real[split.minority]
    sittings = json.loads((run_dir / "sittings.json").read_text()) if (run_dir / "sittings.json").exists() else []
    row = {"variant": variant, "gan_seed": seed, "minority_pct": int(split.dir.name[1:]), "extractor": instrument,
           "tracked": tracked, "measured": None, "export_epoch": None, "export_gate": None, "grids": [],
           # The train steps' seconds from the log, whole across resumes (a killed sitting logs no wall time).
           "train_steps_s": round(sum(float(r["epoch_s"]) for r in rows), 1),
           "threads": sorted({str(s.get("threads")) for s in sittings}),
           "cpu": sittings[-1]["cpu"] if sittings else None}
    if not done.exists():  # stopped for good before its last epoch: its log is all there is
        row["partial"] = json.loads(partial.read_text())
        return row
    done = json.loads(done.read_text())
    row.update(export_epoch=done.get("export_epoch"),
               export_gate="relative" if "real_fidelity" in done else "absolute",
               grids=_grids(run_dir, split.dir, variant, seed, done.get("export_epoch")))
    row["measured"] = _measured(split, run_dir, variant, seed, instrument, tracked["raw"])
    return row


def _measured(split: Split, run_dir: Path, variant: str, seed: int, instrument: str, raw_best) -> dict | None:
    """The run's exported generator (and its raw G, where kept) measured under the split's current
    extractors, cached in quality.json; a cache from before the stamp was measured under the run's own."""
    cache = run_dir / "quality.json"
    measured = json.loads(cache.read_text()) if cache.exists() else None
    if (measured or {}).get("extractor", instrument) != split.id:
        return measured  # cached, or to be measured, under an instrument that is gone: kept as it is
    if measured is None:
        measured = {**split.measure(run_dir / "models" / RUN / "1")[0], "extractor": split.id}
        cache.write_text(json.dumps(measured, indent=2) + "\n")
    raw_epoch = raw_best["epoch"] if raw_best else 0
    kept = (run_dir / RUN / "tracked" / f"epoch-{raw_epoch:04d}.npz").exists()
    if kept and measured.get("raw", {}).get("epoch") != raw_epoch:  # the raw G too, where the run kept it
        from keras_cxr.gan.grid import save_grid

        raw, images = split.measure(export_raw(run_dir, raw_epoch))
        measured["raw"] = {"epoch": raw_epoch, **raw}
        grid = split.dir / "grids" / f"{variant}_seed{seed}_raw_label{split.minority}.png"
        grid.parent.mkdir(exist_ok=True)
        save_grid(images[:16], grid)
        cache.write_text(json.dumps(measured, indent=2) + "\n")
    return measured


def collect(split_dir: Path, variants) -> list[dict]:
    split = None
    rows = []
    for variant in variants:
        for run_dir in sorted((split_dir / variant).glob("seed*")):
            if not _readable(run_dir):
                continue
            split = split or Split(split_dir)
            rows.append(run_row(split, run_dir, variant, int(run_dir.name[4:])))
    return rows


ANSWER = Path(__file__).resolve().parents[2] / "experiments" / "results" / "answer"
REFERENCE_ROWS = {"dcgan": False, "cdcgan_a050": True}  # the answer matrix's rows read here: conditional?


def references(split_dir: Path) -> list[dict]:
    """The answer matrix's generators of the same split (its DCGANs, which train, and its faithful
    cDCGANs, alpha 0.5; one per GAN seed) measured under this split's extractors: what this
    yardstick reads for a generator that works. Only where the answer's manifest is this split's,
    byte for byte; cached in <split>/reference/<name>.json with the generator's sha256, so a clone
    without the (git-ignored) generators still shows them."""
    from keras_cxr.identity import folder_sha256

    answer = ANSWER / f"minority{split_dir.name[1:]}"
    ours, theirs = split_dir / "data" / "manifest.csv", answer / "data" / "manifest.csv"
    cache, split = split_dir / "reference", None  # the split's extractors: built only if a generator is new
    found = {p.parent.name: p for row in REFERENCE_ROWS for p in sorted((answer / "models").glob(f"{row}_g*/1"))}
    if found and theirs.is_file() and ours.read_bytes() == theirs.read_bytes():
        for name, generator in found.items():
            path, sha = cache / f"{name}.json", folder_sha256(generator)
            record = json.loads((generator / "assets.extra" / "keras_cxr.json").read_text())
            epoch = f"epoch-{record.get('export_epoch') or 0:04d}"
            for grid in sorted((answer / name / "samples").glob(f"{epoch}*.png")):  # a cDCGAN's: one per label
                (split_dir / "grids").mkdir(exist_ok=True)  # the exported epoch's fixed-latent grid (samples/ is ignored)
                shutil.copy2(grid, split_dir / "grids" / f"reference_{name}{grid.stem[len(epoch):]}.png")
            known = json.loads(path.read_text()) if path.exists() else {}
            if known.get("generator_sha256") == sha:
                continue  # measured before (its instrument is named in its row)
            split = split or Split(split_dir)
            measured, _ = split.measure(generator, REFERENCE_ROWS[name.rsplit("_g", 1)[0]])
            cache.mkdir(exist_ok=True)
            path.write_text(json.dumps({"generator": name, "generator_sha256": sha, "extractor": split.id,
                                        "export_epoch": record.get("export_epoch"), **measured}, indent=2) + "\n")
    return [json.loads(p.read_text()) for p in sorted(cache.glob("*.json"))] if cache.is_dir() else []


def references_markdown(refs: list[dict], split_dir: Path) -> list[str]:
    if not refs:
        return []
    md = ["", "## The same yardstick on the answer matrix's generators", "",
          "The answer matrix's DCGANs (minority images only; they train) and faithful cDCGANs (alpha 0.5) of this "
          "split, one per GAN seed (`experiments/results/answer`), measured like the rows above: what these "
          "extractors read for a generator that works. A calibration, not a screen.", "",
          "| generator | extractor | exported epoch | FD ratio per extractor | mean | fidelity rel | near-copies |",
          "|---|---|---|---|---|---|---|"]
    for r in refs:
        ratios = r["frechet_ratio_per_extractor"]
        md.append(f"| {r['generator']} | {r['extractor']} | {r['export_epoch']} | {' / '.join(_fmt(v) for v in ratios)} | "
                  f"{_fmt(float(np.mean(ratios)))} | {_fmt(r['fidelity_rel'])} | {r['near_copies']} |")
    grids = [g for r in refs for g in sorted((split_dir / "grids").glob(f"reference_{r['generator']}*.png"))]
    if grids:
        md += ["", "Their sample grids at the exported epoch (fixed latents; a DCGAN's images are pneumonia, a "
               "cDCGAN's come one grid per label):", ""]
        md += [f"![{g.stem}](grids/{g.name})" for g in grids]
    return md


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
          "| variant | GAN seed | extractor | raw: epoch | raw: FD ratio | raw: fidelity rel | raw measured: FD ratio per "
          "extractor, fidelity rel, near-copies | ema: epoch | ema: FD ratio | "
          "ema: fidelity rel | measured FD ratio per extractor | KID | precision | recall | fidelity rel | "
          "near-copies | train steps (min) |", "|" + "---|" * 17]
    for r in rows:
        t, m = r["tracked"], r["measured"] or {}
        cells = [r["variant"] + (f" (partial: epochs 1-{r['partial']['last_epoch']})" if "partial" in r else ""),
                 str(r["gan_seed"]), r["extractor"]]
        for k in ("raw", "ema"):
            cells += [str(t[k]["epoch"]), _fmt(t[k]["frechet_ratio"]), _fmt(t[k]["fidelity_rel"])] if t[k] else ["-"] * 3
            if k == "raw":
                raw = m.get("raw")
                cells.append(f"{' / '.join(_fmt(v) for v in raw['frechet_ratio_per_extractor'])}, "
                             f"{_fmt(raw['fidelity_rel'])}, {raw['near_copies']}" if raw else "-")
        if (split_dir.name, r["variant"], r["gan_seed"]) in PLAIN_EMA:
            cells[7] += " (plain EMA)"
        cells += ([" / ".join(_fmt(v) for v in m["frechet_ratio_per_extractor"]), _fmt(m["kid"], 4),
                   _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["fidelity_rel"]), str(m["near_copies"])]
                  if m else ["-"] * 6) + [_fmt(r["train_steps_s"] / 60, 1) + f" ({'/'.join(r['threads']) or '?'} thr)"]
        md.append("| " + " | ".join(cells) + " |")
    md += ["", "Sample grids of each exported generator (epoch as in the table; fixed latents; label 0 normal, "
           "label 1 pneumonia):", ""]
    md += [f"![{r['variant']} seed {r['gan_seed']} label {g[-5]}]({g})" for r in rows for g in r.get("grids", [])]
    raw_grids = sorted(split_dir.glob("grids/*_raw_label*.png"))
    if raw_grids:
        md += ["", "The measured raw G's (the seed-0 extractor's sample of 500 minority images, the first 16):", ""]
        md += [f"![{g.stem}](grids/{g.name})" for g in raw_grids]
    partial = [r for r in rows if "partial" in r]
    if partial:
        md += ["", "Partial runs (tracked columns from their log only; their best epoch is over the evaluations "
               "they reached, so a finished run's could only be lower): "
               + "; ".join(f"{r['variant']} seed {r['gan_seed']}: {r['partial']['why']}" for r in partial)]
    instruments = json.loads((split_dir / "instruments.json").read_text())
    md += ["", "Extractors (instruments; numbers are compared only under one): "
           + "; ".join(f"`{k}` trained on {v['cpu']}, seed-0 real-vs-real {v['real_vs_real0']:.4f}, real fidelity "
                       f"per label {v['real_fidelity_per_label'][0]:.4f} / {v['real_fidelity_per_label'][1]:.4f}, "
                       f"test ROC AUC per seed {' / '.join(f'{a:.4f}' for a in v['test_roc_auc'])}"
                       + (" (weights lost)" if v.get("weights_lost") else "")
                       for k, v in instruments.items())]
    measured = [r for r in rows if r["measured"]]
    if measured:
        m = measured[0]["measured"]
        md += ["", f"Reference set: {m['n_real_minority_train']} real minority train images against "
               f"{m['feature_dim']} feature dimensions"
               + (" (fewer images than dimensions: every covariance is rank-deficient and each Frechet distance "
                  "biased upwards, so read ratios, not absolute distances)." if m["n_real_minority_train"] < m["feature_dim"]
                  else " (more images than dimensions)."),
               "Fidelity rel divides by the real minority test images' fidelity under the row's extractor "
               "(Extractors, above). Near-copies: " + m["near_copy_rule"]
               + f" ({m['near_copy_threshold_rmse']:.4f}).",
               f"CPU: {', '.join(sorted({str(r['cpu']) for r in rows}))}; train steps: the sum of the log's epoch times (tracking, grids and "
               "checkpoints not included), on 1 or 2 TensorFlow op threads (thr) on a machine shared with other "
               "work, so it says little about the recipe's own cost.",
               "(plain EMA): trained before the average warmed up; its ema columns and its measured generator are "
               "the plain 0.999 average, not comparable with the other runs' average."]
    return "\n".join(md) + "\n"


SCREENED = ("base", "balanced", "ttur", "resize", "proj_sn", "transition")  # the pre-registered screen
PROMISING = 1.5  # choice_rule.md: at least this factor below base's worse seed, same read


def screen(rows: list[dict], settings: dict) -> dict:
    """experiments/results/cgan/choice_rule.md applied as written: per screened variant and read,
    the worse GAN seed's tracked Frechet ratio; "promising" where base's worse seed of the same
    read is at least 1.5x higher; the combination is every promising setting of the read whose
    best promising worse seed is lower, else "cannot tell" and the lowest variant-read alone.

    Base's average is read only from runs whose average warmed up (PLAIN_EMA runs excluded): its
    plain 0.999 average is another estimator, and counting it would lower the bar the other
    averages must clear."""
    extractors = sorted({r["extractor"] for r in rows})
    if len(extractors) > 1:  # ratios under two yardsticks are not comparable (module docstring)
        return {"complete": False, "missing": [], "mixed_extractors": extractors}
    worse: dict[tuple[str, str], float] = {}
    for variant in SCREENED:
        for read in ("raw", "ema"):
            ratios = [r["tracked"][read]["frechet_ratio"] for r in rows if r["variant"] == variant
                      and r["tracked"][read] is not None
                      and not (read == "ema" and (f"m{r['minority_pct']}", variant, r["gan_seed"]) in PLAIN_EMA)]
            seeds = {r["gan_seed"] for r in rows if r["variant"] == variant}
            if len(seeds) >= 2 and ratios:
                worse[variant, read] = max(ratios)
    missing = [v for v in SCREENED if (v, "raw") not in worse]
    if missing:
        return {"complete": False, "missing": missing}
    promising = {read: [v for v in SCREENED[1:] if ("base", read) in worse and (v, read) in worse
                        and worse["base", read] / worse[v, read] >= PROMISING] for read in ("raw", "ema")}
    candidates = [(min(worse[v, read] for v in vs), read) for read, vs in promising.items() if vs]
    if candidates:
        read = min(candidates)[1]
        chosen, verdict = promising[read], "promising"
    else:
        ratio, variant, read = min((r, v, rd) for (v, rd), r in worse.items())
        chosen, verdict = [variant], "cannot tell"
    combined = [kv for v in chosen for kv in settings[v]]
    return {"complete": True, "endpoint": "worse GAN seed's tracked Frechet ratio (seed-0 extractor, export rule)",
            "worse_seed": {f"{v}{'+ema' if rd == 'ema' else ''}": round(r, 4) for (v, rd), r in worse.items()},
            "promising": promising, "verdict": verdict, "read": read, "variants": chosen, "settings": combined,
            "extractor": extractors[0],
            # Variants with a partial run: their worse seed is an upper bound of what finished runs would give.
            "bounds": sorted({r["variant"] for r in rows if "partial" in r})}


def screen_markdown(result: dict) -> list[str]:
    if not result["complete"]:
        if result.get("mixed_extractors"):
            return ["", "Screen (choice_rule.md): not applied: its runs were tracked under different extractors "
                    + ", ".join(result["mixed_extractors"]) + "."]
        return ["", "Screen (choice_rule.md): not complete, waiting for two seeds of "
                + ", ".join(result["missing"]) + "."]
    bound = set(result.get("bounds", []))
    md = ["", "## The screen's choice (choice_rule.md applied by this script)", "",
          "| variant | raw: worse seed | ema: worse seed |", "|---|---|---|"]
    for v in SCREENED:
        le = "<= " if v in bound else ""
        md.append(f"| {v} | {le}{_fmt(result['worse_seed'].get(v))} | {le}{_fmt(result['worse_seed'].get(v + '+ema'))} |")
    md += ["", f"Promising (at least {PROMISING}x below base's worse seed, same read): raw "
           f"{', '.join(result['promising']['raw']) or 'none'}; ema {', '.join(result['promising']['ema']) or 'none'}. "
           "Base's average is read from its warmed-up run only (seed 0's is the plain average)."
           + (f" <= : {', '.join(sorted(bound))} has a partial run, whose worse seed is an upper bound." if bound else ""),
           f"Verdict: {result['verdict']}. The combination: {' + '.join(result['variants'])}, read "
           f"{'the raw G' if result['read'] == 'raw' else 'the average'}, settings "
           f"`{' '.join(result['settings']) or '(none)'}`, trained as variant `recipe` at GAN seeds 0, 1, 2."]
    return md


REMEDIES = {  # the remedies tried on the recipe after the screen, each read by the rule fixed before it ran
    "translation": "translation_rule.md",  # the recipe + translation-only DiffAugment
    "long": "long_rule.md",  # the recipe at twice the epochs
    "every_epoch": "every_epoch_rule.md",  # the recipe with its raw G tracked every epoch
}
TARGET_RATIO, TARGET_FIDELITY = 2.0, 0.9  # issue 23's targets at 25%


def next_remedy(rows: list[dict], arm: str) -> dict:
    """A remedy's rule (REMEDIES) applied as written: the worse common GAN seed of each arm's measured
    raw-G Frechet ratio (mean over extractor seeds), under one instrument, and the targets per seed."""
    arms = {v: {r["gan_seed"]: r for r in rows if r["variant"] == v} for v in ("recipe", arm)}
    if not arms[arm]:
        return {"complete": False, "reason": f"no {arm} run has finished"}
    instruments = {x for runs in arms.values() for r in runs.values()
                   for x in (r["extractor"], (r["measured"] or {}).get("extractor"))}
    if len(instruments) != 1:
        return {"complete": False, "reason": "not comparable: the arms were tracked or measured under extractors "
                                             + ", ".join(sorted(map(str, instruments)))}
    seeds = sorted(set(arms["recipe"]) & set(arms[arm]))
    raw = {v: {s: ((runs[s]["measured"] or {}).get("raw")) for s in seeds} for v, runs in arms.items()}
    unmeasured = [f"{v} seed {s}" for v, per in raw.items() for s, m in per.items() if m is None]
    if len(seeds) < 2 or unmeasured:
        return {"complete": False, "reason": f"common seeds {seeds}; raw G not measured: {unmeasured}"}
    mean = {v: {s: float(np.mean(m["frechet_ratio_per_extractor"])) for s, m in per.items()} for v, per in raw.items()}
    worse = {v: max(per.values()) for v, per in mean.items()}
    # Extractor seed 0 picks the exported epoch; seeds 1 and 2 do not: their mean is free of the pick's bias.
    unpicked = {v: {s: float(np.mean(m["frechet_ratio_per_extractor"][1:])) for s, m in per.items()}
                for v, per in raw.items()}
    targets = {s: {"frechet": all(x <= TARGET_RATIO for x in m["frechet_ratio_per_extractor"]),
                   "fidelity": m["fidelity_rel"] >= TARGET_FIDELITY, "near_copies": m["near_copies"] == 0}
               for s, m in raw[arm].items()}
    factor = worse["recipe"] / worse[arm]
    return {"complete": True, "instrument": instruments.pop(), "seeds": seeds, "mean_ratio": mean, "worse_seed": worse,
            "mean_ratio_unpicked": unpicked, "worse_seed_unpicked": {v: max(per.values()) for v, per in unpicked.items()},
            "factor": factor, "verdict": "promising" if factor >= PROMISING else "cannot tell",
            "targets": targets}


def next_remedy_markdown(result: dict, arm: str) -> list[str]:
    md = ["", f"## The next remedy: {arm} ({REMEDIES[arm]} applied by this script)", ""]
    if not result["complete"]:
        return md + [f"Not read: {result['reason']}."]
    md += ["| arm | " + " | ".join(f"seed {s}: mean FD ratio" for s in result["seeds"]) + " | worse seed | "
           + " | ".join(f"seed {s}: extractors 1, 2" for s in result["seeds"]) + " | worse seed: extractors 1, 2 |",
           "|---|" + "---|" * (2 * len(result["seeds"]) + 2)]
    for name, per in result["mean_ratio"].items():
        unpicked = result["mean_ratio_unpicked"][name]
        md.append(f"| {name} | " + " | ".join(_fmt(per[s]) for s in result["seeds"]) + f" | {_fmt(result['worse_seed'][name])} | "
                  + " | ".join(_fmt(unpicked[s]) for s in result["seeds"])
                  + f" | {_fmt(result['worse_seed_unpicked'][name])} |")
    met = [s for s, t in result["targets"].items() if all(t.values())]
    md += ["", f"Instrument {result['instrument']}; raw G measured under extractor seeds 0, 1, 2. The recipe's worse "
           f"seed over {arm}'s: {result['factor']:.2f}x (promising at {PROMISING}x or more). Verdict: "
           f"{result['verdict']}. Issue 23's targets met at GAN seeds: {', '.join(map(str, met)) or 'none'}. Extractors 1, 2: "
           f"the mean over the extractor seeds that took no part in picking the exported epoch (seed 0 picks it), "
           f"free of the pick's bias; reported, not the endpoint."]
    return md


def write_table(split_dir: Path, variants) -> None:
    rows = collect(split_dir, variants)
    summary_path = split_dir.parent / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"chosen": None, "rows": []}
    md = markdown(rows, split_dir)
    if split_dir.name == "m25":  # the screen runs at 25% only; 10% confirms its choice
        summary["screen"] = screen([r for r in rows if r["variant"] in SCREENED], variants)
        if summary["screen"]["complete"]:  # the recipe's row in `rows`: its raw G or its average
            summary["chosen"] = "recipe" + ("+ema" if summary["screen"]["read"] == "ema" else "")
        md += "\n".join(screen_markdown(summary["screen"])) + "\n"
        tried = [arm for arm in REMEDIES if any(r["variant"] == arm for r in rows)]
        summary["remedies"] = {arm: next_remedy(rows, arm) for arm in tried}
        for arm in tried:
            md += "\n".join(next_remedy_markdown(summary["remedies"][arm], arm)) + "\n"
    refs = references_markdown(references(split_dir), split_dir)
    md += "\n".join(refs) + "\n" if refs else ""
    (split_dir / "results.md").write_text(md)
    pct = int(split_dir.name[1:])
    kept = [r for r in summary["rows"] if r["minority_pct"] != pct]
    for r in rows:
        for read in ("raw", "ema"):
            t = r["tracked"][read]
            m = (r["measured"] or {}) if read == "ema" else (r["measured"] or {}).get("raw")  # raw G: where kept
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
