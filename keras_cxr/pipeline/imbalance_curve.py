"""The imbalance curve: how much each method gains over baseline as the minority shrinks.

`report --results A --compare B C ...` reads the `evaluate-all` folders A, B, C (the same data
made imbalanced to different minority fractions), takes each folder's paired (same seed)
difference of every method to its own baseline from `results.json`, and draws delta ROC AUC and
delta F1 against the minority's share of the train set, with the 95% bootstrap CIs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_cxr.data.manifest import label_counts, read_manifest
from keras_cxr.errors import KerasCXRError
from keras_cxr.explain.figures import pyplot, save_figure

METRICS = (("roc_auc", "delta ROC AUC"), ("f1", "delta F1"))


def minority_share(folder: Path) -> float:
    """The minority class's share of train + validation (before the carve, as `--minority-fraction`
    sets it) in a folder's manifest."""
    records, _ = read_manifest(Path(folder) / "data" / "manifest.csv", check_files=False)
    counts = label_counts(records)
    return min(counts) / sum(counts)


def curve_points(folders: list[Path]) -> dict:
    """{method: [point, ...]} sorted by minority share; a point holds the folder, its share, the
    number of paired seeds and, per metric, the paired difference's mean and CI."""
    points: dict = {}
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise KerasCXRError(f"--compare {folder}: no results.json (run `evaluate-all --out {folder}` first)")
        share = minority_share(folder)
        for method, entry in json.loads(path.read_text())["summary"]["methods"].items():
            diffs = entry.get("vs_baseline") or {}
            if not all(diffs.get(k, {}).get("mean") is not None for k, _ in METRICS):
                continue  # baseline itself, or no paired seed
            points.setdefault(method, []).append({
                "folder": str(folder), "share": share, "n": diffs["f1"]["n"],
                **{k: {"mean": diffs[k]["mean"], "ci95": diffs[k]["ci95"]} for k, _ in METRICS}})
    for method in points:
        points[method].sort(key=lambda p: p["share"])
    return points


def plot_curve(points: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, (key, label) in zip(axes, METRICS):
        for i, (method, pts) in enumerate(points.items()):
            x = np.array([p["share"] for p in pts]) + (i - len(points) / 2) * 0.0015  # side by side, not on top
            mean = np.array([p[key]["mean"] for p in pts])
            lo = np.array([p[key]["ci95"][0] if p[key]["ci95"][0] is not None else p[key]["mean"] for p in pts])
            hi = np.array([p[key]["ci95"][1] if p[key]["ci95"][1] is not None else p[key]["mean"] for p in pts])
            ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], marker="o", ms=3, lw=1, capsize=2, label=method)
        ax.axhline(0, color="k", lw=0.6, ls=":")
        ax.set_xlabel("minority share of train + validation")
        ax.set_ylabel(f"{label} vs baseline (paired, 95% CI)")
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)


def curve_section(folders: list[Path], assets: Path) -> tuple[list[str], dict]:
    """The report's "Imbalance curve" section (table + PNG) and its data for report.json."""
    points = curve_points(folders)
    md = ["## Imbalance curve", ""]
    if not points:
        return md + ["No method has paired seeds with baseline in these folders.", ""], {}
    plot_curve(points, assets / "imbalance_curve.png")
    shares = sorted({p["share"] for pts in points.values() for p in pts})
    md += [f"Paired (same seed) difference to each folder's own baseline, against the minority's share of "
           f"train + validation ({', '.join(f'{s:.0%}' for s in shares)}); error bars: 95% bootstrap CI over seeds. "
           f"Folders: {', '.join(f'`{f}`' for f in folders)}.", "",
           "![imbalance curve](report/imbalance_curve.png)", "",
           "| method | " + " | ".join(f"{label} at {s:.0%}" for s in shares for _, label in METRICS) + " |",
           "|---|" + "---|" * (2 * len(shares))]
    for method, pts in points.items():
        at = {p["share"]: p for p in pts}
        cells = []
        for s in shares:
            for key, _ in METRICS:
                p = at.get(s)
                if p is None:
                    cells.append("-")
                    continue
                lo, hi = p[key]["ci95"]
                ci = "" if lo is None else f" [{lo:+.3f}, {hi:+.3f}]"
                cells.append(f"{p[key]['mean']:+.3f}{ci}")
        md.append(f"| {method} | " + " | ".join(cells) + " |")
    return md + [""], points
