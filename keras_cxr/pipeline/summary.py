"""Merging cell JSONs into results.{md,csv,json}: mean +- sd, 95% bootstrap CI over seeds, the
paired (same seed) difference of each method to `baseline` with its tests, and the calls.

The calls follow one rule fixed before any result was seen: the primary endpoint is ROC AUC
(threshold-free); a row is "better" or "worse" than baseline when the two-sided paired t-test
over seeds, Holm-adjusted over the matrix's rebalancing rows, is at most 5%; otherwise "cannot
tell". Threshold controls form a family of their own (they re-threshold the baseline's scores,
so their ROC AUC is the baseline's). F1, balanced accuracy and recall are secondary: their
Holm-adjusted p-values are reported, with no call. `tests/test_calls.py` simulates the rule on
null matrices to check its error rate."""

from __future__ import annotations

import csv
import functools
import io
import os
from pathlib import Path

import numpy as np

from keras_cxr.evaluate.stats import holm, paired_t_p, sign_flip_p
from keras_cxr.io_utils import write_json, write_text
from keras_cxr.methods import CONTROLS
from keras_cxr.pipeline.paper import FIGURE7_SCRATCH_BASELINE, FIGURE8_PRETRAINED

METRICS = ("precision", "recall", "specificity", "f1", "roc_auc", "balanced_accuracy")
PRIMARY = "roc_auc"
SECONDARY = ("f1", "balanced_accuracy", "recall")
ALPHA = 0.05  # family-wise, over the matrix's rows


@functools.lru_cache(maxsize=64)
def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    """The bootstrap's index draws: the same for every metric of a matrix (same n, n_boot and
    seed), so they are drawn once (read-only) instead of once per metric and row."""
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    idx.setflags(write=False)
    return idx


def bootstrap_ci(values, n_boot: int = 10000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap CI of the mean; (nan, nan) for fewer than two values."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if len(values) < 2:
        return (float("nan"), float("nan"))
    means = values[_resamples(len(values), n_boot, seed)].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def describe(values, n_boot: int) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0, "mean": None, "sd": None, "ci95": [None, None]}
    arr = np.asarray(vals, dtype=float)
    return {"n": len(arr), "mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "ci95": list(bootstrap_ci(arr, n_boot))}


def minimum_detectable_difference(sd_diff: float | None, n: int, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest true paired difference a two-sided paired t-test at `alpha` finds with
    probability `power`, given the observed sd of the paired differences over n seeds:
    (t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n). None below two pairs."""
    if sd_diff is None or n < 2:
        return None
    return float(_t_quantiles(alpha, power, n - 1) * sd_diff / np.sqrt(n))


@functools.lru_cache(maxsize=64)
def _t_quantiles(alpha: float, power: float, df: int) -> float:
    """t_{1-alpha/2, df} + t_{power, df} (scipy's quantiles are slow; the matrix asks the same few)."""
    from scipy.stats import t

    return float(t.ppf(1 - alpha / 2, df) + t.ppf(power, df))


def call(vs_baseline: dict, alpha: float = ALPHA) -> str:
    """A row's call against baseline on the primary endpoint: "better" or "worse" when its
    Holm-adjusted paired t-test p is at most `alpha`, else "cannot tell"."""
    d = vs_baseline.get(PRIMARY)
    if d and d.get("p_holm") is not None and d["p_holm"] <= alpha:
        return "better" if d["mean"] > 0 else "worse"
    return "cannot tell"


def _add_tests(methods: dict) -> None:
    """Each endpoint's paired t-test p and exact sign-flip p per row, and the t-test p
    Holm-adjusted within its family of comparisons with baseline: the rows that train a
    classifier (the rebalancing methods), and apart from them the threshold controls, which
    re-threshold the baseline's own scores (their ROC AUC is the baseline's by construction, so
    in the methods' family they would only make every call harder)."""
    rows = {m: e for m, e in methods.items() if e["vs_baseline"]}
    controls = {m.name for m in CONTROLS}
    families = [[m for m in rows if m not in controls], [m for m in rows if m in controls]]
    for key in (PRIMARY, *SECONDARY):
        for e in rows.values():
            d = e["vs_baseline"][key]
            d["p_t"], d["p_sign_flip"] = paired_t_p(d["diffs"]), sign_flip_p(d["diffs"]) if d["n"] <= 20 else None
        for family in families:
            adjusted = holm({m: rows[m]["vs_baseline"][key]["p_t"] for m in family})
            for m in family:
                rows[m]["vs_baseline"][key]["p_holm"] = adjusted[m]
    for e in rows.values():
        e["call"] = call(e["vs_baseline"])


def summarize(cells: list[dict], methods=None, seeds=None, n_boot: int = 10000) -> dict:
    """Per method and metric: mean, sd, CI; paired difference to baseline; missing cells.
    `methods`: rows in order; defaults to the methods of the cells, in order of appearance."""
    by = {(c["method"], c["seed"]): c for c in cells}
    methods = list(methods if methods is not None else dict.fromkeys(c["method"] for c in cells))
    seeds = sorted(seeds if seeds is not None else {c["seed"] for c in cells})
    out = {"seeds": seeds, "methods": {}, "missing": [f"{m} seed {s}" for m in methods for s in seeds if (m, s) not in by]}
    for m in methods:
        runs = [by[(m, s)] for s in seeds if (m, s) in by]
        if not runs:
            continue
        entry = {"seeds": [r["seed"] for r in runs], "weights_init": sorted({r["weights_init"] for r in runs}),
                 "metrics": {k: describe([r["metrics"][k] for r in runs], n_boot) for k in METRICS},
                 "vs_baseline": {}}
        if m != "baseline":
            for k in METRICS:
                pairs = [(by[(m, s)]["metrics"][k], by[("baseline", s)]["metrics"][k]) for s in seeds
                         if (m, s) in by and ("baseline", s) in by]
                diffs = [a - b for a, b in pairs if a is not None and b is not None]
                d = describe(diffs, n_boot)
                d["diffs"] = diffs
                d["ci_excludes_zero"] = bool(d["n"] > 1 and (d["ci95"][0] > 0 or d["ci95"][1] < 0))
                d["mdd80"] = minimum_detectable_difference(d["sd"], d["n"])
                entry["vs_baseline"][k] = d
        out["methods"][m] = entry
    _add_tests(out["methods"])
    out["calls"] = {"endpoint": PRIMARY, "test": "two-sided paired t-test, Holm over rows", "alpha": ALPHA}
    return out


def _fmt(d: dict) -> str:
    if d["mean"] is None:
        return "-"
    if d["n"] < 2:  # one run has no spread to show
        return f"{d['mean']:.3f}"
    return f"{d['mean']:.3f} +- {d['sd']:.3f} [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]"


def _diff(d: dict | None) -> str:
    if not d or d["mean"] is None:
        return "-"
    ci = "" if d["n"] < 2 else f" [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
    return f"{d['mean']:+.3f}{ci}"


def render_markdown(summary: dict, title: str, context: str, not_like_the_paper: list[str] | None = None) -> str:
    """results.md. The paper's columns appear only when `not_like_the_paper` (how the run's setting
    differs from the paper's) is empty; otherwise it says what differs."""
    with_paper = not not_like_the_paper
    one_seed = len(summary["seeds"]) == 1
    lines = [f"# {title}", ""]
    if one_seed:
        lines += [f"**One seed ({summary['seeds'][0]}): this table shows that every stage ran and what each method "
                  f"did in one training run. It cannot tell whether one method beats another: a difference "
                  f"between two rows here may be the seed's luck, and telling needs several seeds "
                  f"(`make evaluate-all`).**", ""]
    lines += [context, "",
              f"Seed {summary['seeds'][0]}: each cell is that run's value; delta F1 is the row minus baseline."
              if one_seed else
              f"Seeds: {', '.join(map(str, summary['seeds']))}. Each cell: mean +- sd over seeds "
              f"[95% percentile bootstrap CI of the mean]. Delta F1: paired (same seed) difference to "
              f"baseline with its bootstrap CI. These CIs describe the spread (with few seeds they cover "
              f"less than 95%); the calls rest on the tests in the next section.", "",
             "| method | precision | recall | specificity | F1 | ROC AUC | delta F1 vs baseline "
             + ("| paper P | paper R | paper S | paper F1 |" if with_paper else "|"),
             "|---|---|---|---|---|---|---|" + ("---|---|---|---|" if with_paper else "")]
    for m, e in summary["methods"].items():
        p = FIGURE8_PRETRAINED.get(m, {})
        paper = [f"{p[k]:.3f}" if k in p else "-" for k in ("precision", "recall", "specificity", "f1")] if with_paper else []
        lines.append("| " + " | ".join([m] + [_fmt(e["metrics"][k]) for k in ("precision", "recall", "specificity", "f1", "roc_auc")]
                                         + [_diff(e["vs_baseline"].get("f1"))] + paper) + " |")
    s = FIGURE7_SCRATCH_BASELINE
    if with_paper:
        lines += ["", f"Paper columns: Figure 8 (ImageNet-pretrained ResNet18, augmented, one run each). The paper's "
                  f"from-scratch baseline (Figure 7) is P {s['precision']:.3f} R {s['recall']:.3f} "
                  f"S {s['specificity']:.3f} F1 {s['f1']:.3f}. The paper's printed precisions do not fit its "
                  f"test split (390 pneumonia / 234 normal): compare recall, specificity and F1 first."]
    else:
        lines += ["", f"The paper's columns are left out; this run's setting differs from the paper's: "
                  f"{'; '.join(not_like_the_paper)}."]
    lines += [""] + _paired_section(summary)
    if summary["missing"]:
        lines += ["", f"Missing cells ({len(summary['missing'])}): {', '.join(summary['missing'])}."]
    return "\n".join(lines) + "\n"


def _p(d: dict, key: str) -> str:
    return "-" if d.get(key) is None else f"{d[key]:.3f}"


def _paired_section(summary: dict) -> list[str]:
    """The paired comparison with baseline: the primary endpoint's difference, its tests, the
    smallest difference the design could detect and the call; then the secondary endpoints."""
    rows = {m: e for m, e in summary["methods"].items() if m != "baseline" and e["vs_baseline"]}
    if not rows:
        return []
    n = max(e["vs_baseline"][PRIMARY]["n"] for e in rows.values())
    if n < 2:
        return ["## Paired comparison with baseline", "",
                f"Needs at least two seeds with both the method and baseline; this run has {n}: no calls."]

    def mdd(d):
        return "-" if d.get("mdd80") is None else f"{d['mdd80']:.3f}"

    control_rows = [m for m in rows if m in {c.name for c in CONTROLS}]
    n_family = len(rows) - len(control_rows)
    controls_note = (f" (the threshold controls {', '.join(control_rows)} re-threshold the baseline's scores, so "
                     f"their ROC AUC is the baseline's: they are adjusted among themselves)") if control_rows else ""
    lines = ["## Paired comparison with baseline", "",
             f"Same seed, same initial weights: each row minus baseline, over {n} seeds. Primary endpoint, fixed "
             f"before any result was seen: ROC AUC (threshold-free). The call: a two-sided paired t-test over "
             f"seeds, its p Holm-adjusted over the {n_family} rebalancing rows{controls_note}; \"better\" or "
             f"\"worse\" at an adjusted p of "
             f"at most {ALPHA:g}, otherwise \"cannot tell\". Over all rows together, the chance of calling any "
             f"method with no effect is then at most {ALPHA:.0%}. Beside it, the exact sign-flip permutation p "
             f"(no normality assumed; with {n} seeds it cannot go below {2 / 2 ** n:.3g}). MDD: the smallest "
             f"difference a paired t-test at 5% detects with 80% power, from the observed spread of the "
             f"differences (before the correction for rows, which raises it).", "",
             "| method | delta ROC AUC [95% CI] | p (t-test) | p (sign-flip) | p (Holm) | MDD | call |",
             "|---|---|---|---|---|---|---|"]
    for m, e in rows.items():
        a = e["vs_baseline"][PRIMARY]
        lines.append(f"| {m} | {_diff(a)} | {_p(a, 'p_t')} | {_p(a, 'p_sign_flip')} | {_p(a, 'p_holm')} | "
                     f"{mdd(a)} | {e.get('call', 'cannot tell')} |")
    lines.append("")
    for word, label in (("better", "Better than baseline"), ("worse", "Worse than baseline"),
                        ("cannot tell", "Cannot tell")):
        lines.append(f"- {label}: {', '.join(m for m, e in rows.items() if e.get('call') == word) or 'none'}.")
    lines += ["", "Secondary endpoints: mean paired difference (Holm-adjusted t-test p over the rows); reported, "
              "not called.", "", "| method | delta F1 | delta balanced accuracy | delta recall |", "|---|---|---|---|"]
    for m, e in rows.items():
        cols = [f"{e['vs_baseline'][k]['mean']:+.3f} ({_p(e['vs_baseline'][k], 'p_holm')})"
                if e["vs_baseline"][k]["mean"] is not None else "-" for k in SECONDARY]
        lines.append(f"| {m} | " + " | ".join(cols) + " |")
    return lines


def provenance_lines(cells: list[dict]) -> list[str]:
    """Which code, versions and CPUs the cells came from; a warning when they are mixed."""
    recorded = [c["provenance"] for c in cells if c.get("provenance")]
    lines = ["## Provenance", ""]
    if not recorded:
        return lines + ["No cell records its provenance (all were written before it was recorded)."]

    def code(p):
        if p.get("commit") is None:
            return "an installed package (no checkout)"
        return f"{p['commit'][:12]}{' with uncommitted changes' if p.get('dirty') else ''}"

    def named(values):
        counts: dict = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        return "; ".join(f"{v} ({n} cells)" for v, n in counts.items())

    def cpu_line(p):
        return f"{p['cpu']}, {p['threads']} op threads"

    vers = [", ".join(f"{k} {v}" for k, v in p["versions"].items()) for p in recorded]
    lines += [f"- Code: {named(code(p) for p in recorded)}.", f"- Versions: {named(vers)}.",
              f"- CPU: {named(cpu_line(p) for p in recorded)}."]
    reasons = [what for what, values in (("more than one commit", [code(p) for p in recorded]),
                                         ("more than one set of library versions", vers)) if len(set(values)) > 1]
    if any(p.get("dirty") for p in recorded):
        reasons.append("code with uncommitted changes")
    if reasons:
        lines.append(f"- **Warning: the cells come from {' and '.join(reasons)}**, so the table may not compare "
                     f"like with like. Rerun with --rebuild on one committed version to be sure.")
    if len(recorded) < len(cells):
        lines.append(f"- {len(cells) - len(recorded)} cell(s) record no provenance (written before it was recorded).")
    return lines


def generator_lines(cells: list[dict], methods) -> list[str]:
    """Per GAN row, the distinct generators its cells were trained with (sha256 of the exported
    folder, its epoch and GAN seed), so a reader sees whether the seeds' differences include
    GAN training variance; a warning where fewer generators than seeds made a row."""
    rows: dict = {}
    for c in sorted(cells, key=lambda c: c["seed"]):
        if c.get("generator"):
            rows.setdefault(c["method"], []).append(c)
    if not rows:
        return []
    lines = ["", "## Generators", "",
             "Per GAN row: the generators its cells drew images from (sha256 of the exported folder, first 12 "
             "characters), by classifier seed.", ""]
    for method in sorted(rows, key=lambda m: methods.index(m) if m in methods else 99):
        recorded = [c for c in rows[method] if c["generator"].get("sha256")]  # older cells: not recorded
        hashes = {c["generator"]["sha256"] for c in recorded}
        per_seed = "; ".join(f"seed {c['seed']}: {(c['generator'].get('sha256') or 'not recorded')[:12]} (GAN seed "
                             f"{c['generator'].get('gan_seed', '-')}, epoch {c['generator'].get('export_epoch', '-')})"
                             for c in rows[method])
        lines.append(f"- {method}: {len(hashes)} distinct in {len(recorded)} cells that record their generator's "
                     f"sha256{f' (of {len(rows[method])})' if len(recorded) < len(rows[method]) else ''}. {per_seed}.")
        if len(hashes) < len(recorded):
            lines.append(f"  - **{method} shares a generator between seeds**: its paired differences leave out part "
                         f"of the GAN training variance.")
    return lines


def _generator_time(out_dir, generator: dict) -> dict | None:
    """A finished GAN run's seconds, from the run folder of a cell's `generator` record: its train
    steps over every sitting (the log's epoch times) and, when it ran in one sitting, its whole
    wall time (done.json covers the last sitting only)."""
    from keras_cxr.methods import GeneratorSpec
    from keras_cxr.pipeline.run_folder import RunFolder

    spec = GeneratorSpec(generator["kind"], generator["alpha"], generator.get("gan_seed"), generator.get("recipe", False))
    run = RunFolder(out_dir, spec)
    done, rows = run.done(), run.log_rows()
    if done is None or not rows:
        return None
    whole = done["wall_s"] if done.get("resumed_after") == 0 else None  # older runs: not recorded
    return {"train_steps_s": sum(float(r["epoch_s"]) for r in rows), "wall_s": whole}


def wall_time_lines(out_dir, cells: list[dict], methods) -> list[str]:
    """Per row, where the matrix's time went: its cells' wall seconds and, for a GAN row, its
    generators' (the run folders beside the cells, named by the exported generator's folder)."""
    rows: dict = {}
    for c in cells:
        rows.setdefault(c["method"], []).append(c)
    if not rows:
        return []
    lines = ["", "## Wall time", "",
             "Seconds per row on the CPUs under Provenance, on machines that may have run other work beside: the "
             "cells' own (resampling, training, testing) and, for GAN rows, their generators' train steps (every "
             "sitting) and whole runs (tracking and files included; runs that were resumed are left out of this "
             "column).", "",
             "| row | cells | cell s: sum | cell s: median | generators | train steps s: sum | run s: sum (runs) |",
             "|---|---|---|---|---|---|---|"]
    for method in sorted(rows, key=lambda m: methods.index(m) if m in methods else 99):
        cell_s = [c["timings_s"]["total"] for c in rows[method] if "total" in c.get("timings_s", {})]  # older: none
        runs = {Path(c["generator"]["path"]).parent.name: c["generator"] for c in rows[method] if c.get("generator")}
        times = [t for t in (_generator_time(out_dir, g) for g in runs.values()) if t is not None]
        whole = [t["wall_s"] for t in times if t["wall_s"] is not None]
        steps = f"{sum(t['train_steps_s'] for t in times):.0f}" if times else "-"  # run folders not here
        gan = (f"{len(runs)} | {steps} | "
               f"{f'{sum(whole):.0f} ({len(whole)})' if whole else '-'}") if runs else "- | - | -"
        cell_cols = f"{sum(cell_s):.0f} | {float(np.median(cell_s)):.0f}" if cell_s else "- | -"
        lines.append(f"| {method} | {len(rows[method])} | {cell_cols} | {gan} |")
    return lines


def write_results(out_dir, cells: list[dict], methods, seeds, n_boot: int, title: str, context: str,
                  not_like_the_paper: list[str] | None = None, manifest=None) -> dict:
    """Writes results.json, results.csv (one row per cell) and results.md; returns the summary.
    `not_like_the_paper`: how the setting differs from the paper's (its columns are left out).
    `manifest`: the manifest the cells were trained on, recorded for `report`."""
    out_dir = Path(out_dir)
    summary = summarize(cells, methods, seeds, n_boot)
    where = {"manifest": os.path.abspath(manifest)} if manifest is not None else {}
    write_json(out_dir / "results.json", {**where, "summary": summary, "cells": [
        {k: c[k] for k in ("method", "seed", "metrics", "train_counts", "best_epoch", "timings_s", "weights_init")}
        for c in cells]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "seed", *METRICS, "tn", "fp", "fn", "tp", "train_normal", "train_pneumonia", "train_s"])
    for c in sorted(cells, key=lambda c: (methods.index(c["method"]) if c["method"] in methods else 99, c["seed"])):
        (tn, fp), (fn, tp) = c["metrics"]["confusion_matrix"]
        w.writerow([c["method"], c["seed"], *[c["metrics"][k] for k in METRICS], tn, fp, fn, tp,
                    *c["train_counts"], c["timings_s"]["train"]])
    write_text(out_dir / "results.csv", buf.getvalue())
    md = render_markdown(summary, title, context, not_like_the_paper)
    lines = [*provenance_lines(cells), *generator_lines(cells, list(methods)),
             *wall_time_lines(out_dir, cells, list(methods))]
    write_text(out_dir / "results.md", md + "\n" + "\n".join(lines) + "\n")
    return summary
