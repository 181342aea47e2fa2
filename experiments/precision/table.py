"""experiments/precision's table: float32 against mixed_bfloat16, read by the rules run.py fixed
before any run. Writes results/precision/results.md and summary.json."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from run import GAN_SEEDS, METHODS, MODELS, OUT, PRECISIONS, SEEDS, gan_dir

ENDPOINTS = ("roc_auc", "f1", "balanced_accuracy")  # primary first
AUC_MARGIN = -0.01  # "no loss": the mean paired ROC AUC difference above this
GAN_FACTOR = 1.5  # "no loss": a bfloat16 ratio at most the worse float32 seed's times this
FIDELITY_SLACK = 0.05  # "no loss": minority fidelity at least the worse float32 seed's minus this
EXTRACTOR_SEEDS = (0, 1, 2)
N_GENERATED = 500
RUN_NAMES = {"dcgan": "dcgan", "cdcgan": "cdcgan_a050"}
# What else ran on the 2 cores while these runs did (2026-12-07, UTC), so seconds are read with care.
LOAD_NOTE = ("Load: the runs were two one-thread workers on the 2 cores; besides them, from 17:43 to 18:11 a "
             "third one-thread process (experiments/benchmarks/tracking_compiled.py, twice) and two short test runs, "
             "and for about 1.5 min each at 18:28, 18:35 and 18:54 this table's measurements. That load fell on "
             "the last float32 and the bfloat16 classifier cells (bfloat16 oversample seeds 0-4: 163-318 s, slower "
             "than float32's) and the float32 seed-0 generators (median epoch 26.5 s against a fastest 16.4 s for "
             "the cDCGAN): cell and wall seconds here are not a speed comparison. The fastest epochs are; the "
             "same-run step ratios are `make bench`'s.")


def load_cells() -> dict:
    """{(precision, method, seed): cell} for every finished cell."""
    cells = {}
    for precision in PRECISIONS:
        for path in sorted((OUT / "cells" / precision / "cells").glob("*__seed*.json")):
            cell = json.loads(path.read_text())
            recorded = cell["classifier_config"]["precision"]
            if recorded != precision:
                raise SystemExit(f"error: {path} was trained under {recorded}, not {precision}. Received: {recorded!r}")
            cells[precision, cell["method"], cell["seed"]] = cell
    return cells


def classifier_rows(cells: dict) -> list[dict]:
    from keras_cxr.evaluate.stats import paired_t_p, sign_flip_p
    from keras_cxr.pipeline.summary import minimum_detectable_difference

    rows = []
    for method in METHODS:
        seeds = [s for s in SEEDS if all((p, method, s) in cells for p in PRECISIONS)]
        if not seeds:
            continue
        row = {"method": method, "seeds": seeds, "endpoints": {}}
        for metric in ENDPOINTS:
            per = {p: [cells[p, method, s]["metrics"][metric] for s in seeds] for p in PRECISIONS}
            diffs = np.subtract(per[PRECISIONS[1]], per[PRECISIONS[0]])
            sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else None
            row["endpoints"][metric] = {
                **{p: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None, "values": v}
                   for p, v in per.items()},
                "diffs": diffs.tolist(), "mean_diff": float(diffs.mean()), "t_p": paired_t_p(diffs),
                "sign_flip_p": sign_flip_p(diffs), "mdd": minimum_detectable_difference(sd, len(diffs))}
        row["cell_s"] = {p: float(np.mean([cells[p, method, s]["timings_s"]["total"] for s in seeds])) for p in PRECISIONS}
        row["train_s"] = {p: float(np.mean([cells[p, method, s]["timings_s"]["train"] for s in seeds])) for p in PRECISIONS}
        auc = row["endpoints"]["roc_auc"]
        worse = auc["t_p"] is not None and auc["t_p"] <= 0.05 and auc["mean_diff"] < 0
        row["no_loss"] = bool(auc["mean_diff"] > AUC_MARGIN and not worse)
        rows.append(row)
    return rows


class Instrument:
    """The split's extractors (seeds 0, 1, 2), real images and near-copy threshold, built once."""

    def __init__(self):
        from keras_cxr.classify.datasets import Splits
        from keras_cxr.config import load_preset
        from keras_cxr.explain.memorisation import near_copy_threshold
        from keras_cxr.pipeline.extractor import ensure_extractor, unit_images

        config = load_preset("quick")
        manifest = OUT / "data" / "manifest.csv"
        self.extractors = [ensure_extractor(config, OUT, manifest, s) for s in EXTRACTOR_SEEDS]
        splits = Splits.load(manifest, config.image_size)
        self.x_train, self.y_train = unit_images(splits.train[0]), splits.train[1]
        self.x_test, self.y_test = unit_images(splits.test[0]), splits.test[1]
        self.minority = int(np.argmin(np.bincount(self.y_train, minlength=2)))
        self.threshold = near_copy_threshold(self.x_train)

    def measure(self, generator: Path, conditional: bool) -> dict:
        from keras_cxr.evaluate.generator_quality import measure_one

        m, _ = measure_one(generator, conditional, self.extractors, self.x_train, self.y_train, self.x_test,
                           self.y_test, N_GENERATED, self.threshold)
        return {"frechet_ratio_per_extractor": m["frechet_ratio_per_extractor"],
                "frechet_per_extractor": m["frechet_per_extractor"],
                "real_vs_real_per_extractor": m["real_vs_real_per_extractor"], "kid": m["kid"],
                "prdc_precision": m["precision"], "prdc_recall": m["recall"],  # (not the dtype policy)
                "fidelity_minority": m["fidelity"][self.minority],
                "near_copies": m["near_copies"], "near_copy_threshold_rmse": self.threshold}


def gan_row(instrument: Instrument | None, precision: str, model: str, seed: int) -> dict | None:
    run_dir = gan_dir(precision, model, seed)
    name = RUN_NAMES[model]
    done_path = run_dir / name / "done.json"
    if not done_path.exists():
        return None
    done = json.loads(done_path.read_text())
    with open(run_dir / name / "log.csv", newline="") as fh:
        log = list(csv.DictReader(fh))
    cache = run_dir / "quality.json"
    if cache.exists():
        measured = json.loads(cache.read_text())
    else:
        if instrument is None:
            return None
        measured = instrument.measure(run_dir / "models" / name / "1", conditional=model == "cdcgan")
        cache.write_text(json.dumps(measured, indent=2) + "\n")
    grids = []
    for src in sorted((run_dir / name / "samples").glob(f"epoch-{done['export_epoch']:04d}*.png")):
        label = src.stem.partition("_")[2] or "grid"  # epoch-0210.png (DCGAN), epoch-0057_label1.png (cDCGAN)
        dest = OUT / "grids" / f"{model}_{precision}_seed{seed}_{label}.png"
        dest.parent.mkdir(exist_ok=True)
        shutil.copy2(src, dest)
        grids.append(str(dest.relative_to(OUT)))
    if not grids:  # copied by an earlier table
        grids = sorted(str(p.relative_to(OUT)) for p in (OUT / "grids").glob(f"{model}_{precision}_seed{seed}_*.png"))
    return {"precision": precision, "model": model, "gan_seed": seed, "export_epoch": done["export_epoch"],
            "epochs": done["epochs"], "wall_s": done["wall_s"],
            "train_steps_s": round(sum(float(r["epoch_s"]) for r in log), 1),
            # The fastest epoch: the step's speed where other work on the machine came and went.
            "epoch_s_min": float(min(float(r["epoch_s"]) for r in log)),
            "epoch_s_median": float(np.median([float(r["epoch_s"]) for r in log])),
            "frechet_ratio": float(np.mean(measured["frechet_ratio_per_extractor"])), **measured, "grids": grids}


def gan_verdict(rows: list[dict]) -> dict:
    out = {}
    for model in MODELS:
        f32 = [r for r in rows if r["model"] == model and r["precision"] == PRECISIONS[0]]
        b16 = [r for r in rows if r["model"] == model and r["precision"] == PRECISIONS[1]]
        if len(f32) < len(GAN_SEEDS) or len(b16) < len(GAN_SEEDS):
            out[model] = None
            continue
        bar = GAN_FACTOR * max(r["frechet_ratio"] for r in f32)
        fid = min(r["fidelity_minority"] for r in f32) - FIDELITY_SLACK
        copies = max(x["near_copies"] for x in f32)
        failed = [f"seed {r['gan_seed']}: {what}" for r in b16 for what, bad in (
            (f"Frechet ratio {r['frechet_ratio']:.2f} > {bar:.2f}", r["frechet_ratio"] > bar),
            (f"fidelity {r['fidelity_minority']:.2f} < {fid:.2f}", r["fidelity_minority"] < fid),
            (f"{r['near_copies']} near-copies > float32's {copies}", r["near_copies"] > copies)) if bad]
        out[model] = {"bar": bar, "no_loss": not failed, "failed": failed}
    return out


def decide(cls: list[dict], verdict: dict) -> dict:
    """Whether bfloat16 kept each part's results (keras_cxr.precision.BFLOAT16_KEEPS_RESULTS):
    the classifier by every method's row, the GAN by every model's; False until all runs are in."""
    return {"classifier": len(cls) == len(METHODS) and all(r["no_loss"] for r in cls),
            "gan": all(v is not None and v["no_loss"] for v in verdict.values())}


def decision_markdown(decision: dict) -> str:
    lines = ["", "## Decision", "",
             "`precision: auto` (keras_cxr/precision.py `BFLOAT16_KEEPS_RESULTS`, kept equal to this file's "
             "summary.json by tests/test_precision_auto.py) takes mixed_bfloat16 only for a part whose runs "
             "here showed no loss, and only where the device computes bfloat16 natively:", ""]
    lines += [f"- {part}: {'mixed_bfloat16 where native' if keeps else 'float32'}" for part, keeps in decision.items()]
    return "\n".join(lines) + "\n"


def _f(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(cls: list[dict], gans: list[dict], verdict: dict, cpu: str) -> str:
    b, f = PRECISIONS[1], PRECISIONS[0]
    md = ["# float32 against mixed_bfloat16 (issue 25, item 3)", "",
          f"Made by `python experiments/precision/run.py table` from the runs of `run.py work` (its docstring "
          f"fixes the endpoints and what counts as no loss, before any run). Host: {cpu}, 2 cores, two "
          "one-thread workers side by side. Quick preset, the quick split (pneumonia 25% of train) of "
          "../shared/data/kermany128.", "",
          "## Classifier: paired by seed (bfloat16 - float32)", "",
          f"Seeds {', '.join(map(str, SEEDS))}. p: two-sided paired t-test; sign-flip: exact permutation p (its "
          "smallest possible value at 5 seeds is 0.0625); MDD: the smallest true difference these seeds detect "
          "with 80% power at 5%.", "",
          "| method | endpoint | float32 mean (sd) | bfloat16 mean (sd) | mean diff | p | sign-flip p | MDD |",
          "|---|---|---|---|---|---|---|---|"]
    for row in cls:
        for metric, e in row["endpoints"].items():
            md.append(f"| {row['method']} | {metric}{' (primary)' if metric == 'roc_auc' else ''} | "
                      f"{_f(e[f]['mean'])} ({_f(e[f]['sd'])}) | {_f(e[b]['mean'])} ({_f(e[b]['sd'])}) | "
                      f"{e['mean_diff']:+.4f} | {_f(e['t_p'])} | {_f(e['sign_flip_p'])} | {_f(e['mdd'])} |")
    md += ["", "| method | cell s, float32 | cell s, bfloat16 | float32 / bfloat16 (cell) | train s, float32 | "
           "train s, bfloat16 | float32 / bfloat16 (train) | no loss (AUC diff > -0.01, not worse at 5%) |",
           "|---|---|---|---|---|---|---|---|"]
    for row in cls:
        c, t = row["cell_s"], row["train_s"]
        md.append(f"| {row['method']} | {c[f]:.1f} | {c[b]:.1f} | {c[f] / c[b]:.2f} | {t[f]:.1f} | {t[b]:.1f} | "
                  f"{t[f] / t[b]:.2f} | {'yes' if row['no_loss'] else 'no'} |")
    md += ["", "## Generators", "",
           "Each run's exported (tracked-best) generator, 500 minority images per extractor, Frechet over the "
           "real-vs-real distance of the same extractor (seeds 0 / 1 / 2), label fidelity of the minority label "
           "under the seed-0 extractor, near-copies (pixel RMSE to the nearest real train image below the "
           "real train-to-train threshold). Train steps: the log's epoch seconds; wall: done.json.", "",
           "| model | precision | GAN seed | export epoch | FD ratio per extractor | mean | fidelity | near-copies "
           "| train steps s | wall s | epoch s: fastest, median |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(gans, key=lambda r: (r["model"], r["gan_seed"], r["precision"])):
        md.append(f"| {r['model']} | {r['precision']} | {r['gan_seed']} | {r['export_epoch']} | "
                  f"{' / '.join(f'{x:.2f}' for x in r['frechet_ratio_per_extractor'])} | {r['frechet_ratio']:.2f} | "
                  f"{r['fidelity_minority']:.2f} | {r['near_copies']} | {r['train_steps_s']:.0f} | {r['wall_s']:.0f} | "
                  f"{r['epoch_s_min']:.2f}, {r['epoch_s_median']:.2f} |")
    md += ["", "No loss, per model (run.py's rule): every bfloat16 run's mean ratio at most 1.5x the worse float32 "
           "seed's, its minority fidelity at least the worse float32 seed's minus 0.05, and no more near-copies than "
           "the float32 runs. Speed: the fastest epoch of each precision (the runs shared the machine with other "
           "work at times; see the note below).", "",
           "| model | bar (1.5 x the worse float32 seed's mean ratio) | no loss | what failed | fastest epoch, float32 / bfloat16 |",
           "|---|---|---|---|---|"]
    for model, v in verdict.items():
        fastest = {p: min((r["epoch_s_min"] for r in gans if r["model"] == model and r["precision"] == p), default=None)
                   for p in PRECISIONS}
        speed = f"{fastest[f] / fastest[b]:.2f}x" if None not in fastest.values() else "-"
        bar = "-" if v is None else f"{v['bar']:.2f}"
        md.append(f"| {model} | {bar} | "
                  f"{'not all runs done' if v is None else ('yes' if v['no_loss'] else 'no')} | "
                  f"{'-' if v is None else ('; '.join(v['failed']) or '-')} | {speed} |")
    md += ["", LOAD_NOTE]
    md += ["", "## Grids (exported epoch)", ""]
    for r in sorted(gans, key=lambda r: (r["model"], r["gan_seed"], r["precision"])):
        md += [f"{r['model']} {r['precision']} seed {r['gan_seed']}: " + " ".join(f"![]({g})" for g in r["grids"]), ""]
    return "\n".join(md) + "\n"


def write_table(out: Path) -> None:
    from keras_cxr.pipeline.provenance import cpu_model

    cells = load_cells()
    cls = classifier_rows(cells)
    runs = [(p, m, s) for p in PRECISIONS for m in MODELS for s in GAN_SEEDS]
    pending = [r for r in runs if (gan_dir(*r) / RUN_NAMES[r[1]] / "done.json").exists()
               and not (gan_dir(*r) / "quality.json").exists()]
    instrument = Instrument() if pending else None
    gans = [row for row in (gan_row(instrument, *r) for r in runs) if row is not None]
    verdict = gan_verdict(gans)
    cells_cpu = {c.get("provenance", {}).get("cpu") for c in cells.values()} - {None}
    cpu = ", ".join(sorted(cells_cpu)) or cpu_model()
    decision = decide(cls, verdict)
    (out / "results.md").write_text(markdown(cls, gans, verdict, cpu) + decision_markdown(decision))
    (out / "summary.json").write_text(json.dumps({"decision": decision, "classifier": cls, "generators": gans,
                                                  "generator_verdict": verdict, "cpu": cpu}, indent=2) + "\n")
    print(f"wrote {out / 'results.md'}: {len(cls)} classifier rows, {len(gans)} generator runs")
