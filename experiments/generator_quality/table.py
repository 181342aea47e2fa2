"""results.md of the generator-quality experiment: the (a)/(b)/(c) table, the targets, the
Frechet-vs-epoch curves and one sample grid per generator and variant (see run.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

TARGET_RATIO, TARGET_FIDELITY = 2.0, 0.9


def _mean_sd(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.2f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.2f}"


def _minutes(seconds) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _row(variant: str, g: str, q: dict, minority: int) -> str:
    fid = {int(k): v for k, v in q["fidelity"].items()}
    memo = q["memorisation"]
    return (f"| {g} | {variant} | {q.get('export_epoch')} / {q.get('epochs')} | {_minutes(q.get('train_wall_s'))} | "
            f"{_mean_sd(q['ratio_per_seed'])} | {_mean_sd(q['frechet_per_seed'])} | {q['kid'] * 1e3:.3g} | "
            + " | ".join(f"{fid[c]:.3f}" if c in fid else "-" for c in (0, 1))
            + f" | {memo['near_copies']} / {memo['n_generated']} |")


def _targets(variant: str, g: str, q: dict) -> list[str]:
    misses = []
    ratio = float(np.mean(q["ratio_per_seed"]))
    if ratio > TARGET_RATIO:
        misses.append(f"Frechet {ratio:.2f}x real-vs-real (target <= {TARGET_RATIO}x; {ratio - TARGET_RATIO:+.2f})")
    if g.startswith("cdcgan"):
        for label, acc in sorted((int(k), v) for k, v in q["fidelity"].items()):
            if acc < TARGET_FIDELITY:
                misses.append(f"label {label} fidelity {acc:.3f} (target >= {TARGET_FIDELITY}; {acc - TARGET_FIDELITY:+.3f})")
    if q["memorisation"]["near_copies"]:
        misses.append(f"{q['memorisation']['near_copies']} near-copies (target 0)")
    return [f"- `{g}` ({variant}): " + ("all targets met" if not misses else "; ".join(misses))]


def _curves(out: Path, variants: list[str], generators) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(generators), figsize=(3.2 * len(generators), 2.8), sharey=False)
    drawn = False
    for ax, g in zip(axes, generators):
        for variant in variants:
            log = out / variant / g / "log.csv"
            if not log.exists():
                continue
            rows = [r for r in csv.DictReader(open(log)) if r.get("fd")]
            if not rows:
                continue
            ax.plot([int(r["epoch"]) for r in rows], [float(r["fd"]) for r in rows], lw=1, label=variant)
            done = out / variant / g / "done.json"
            if done.exists():
                e = json.loads(done.read_text()).get("export_epoch")
                hit = [float(r["fd"]) for r in rows if int(r["epoch"]) == e]
                if hit:
                    ax.plot([e], hit, "k*", ms=6)
            drawn = True
        ax.set_title(g, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("Frechet (tracking, extractor seed 0)")
    fig.tight_layout()
    if not drawn:
        plt.close(fig)
        return None
    path = out / "frechet_vs_epoch.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path.name


def _grids(out: Path, records: dict, generators) -> list[str]:
    from keras_cxr.gan.export import generate_images
    from keras_cxr.gan.record import GeneratorRecord
    from keras_cxr.gan.grid import save_grid

    lines = []
    root = Path(__file__).resolve().parents[2]
    for variant, record in records.items():
        cells = []
        for g in generators:
            path = root / record["models"] / g / "1"
            minority = GeneratorRecord.read(path).minority_label
            name = f"samples_{variant}_{g}.png"
            save_grid(generate_images(path, 16, minority, seed=0), out / name)
            cells.append(f"![{variant} {g}]({name})")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def write_table(out: Path, variants: dict, generators) -> None:
    records = {v: json.loads((out / f"{v}.json").read_text()) for v in variants if (out / f"{v}.json").exists()}
    if not records:
        raise SystemExit(f"no measurements in {out}: run the measure stage first")
    md = ["# Generator quality: committed (a) vs retuned (b) vs retuned + DiffAugment (c)", "",
          "Made by `python experiments/generator_quality/run.py table` from the `<variant>.json` files of the "
          "`measure` stage; how each variant was trained: `RUN.md`.", ""]
    md += [f"- **{v}**: {r['what']} (`{r['models']}`)" for v, r in records.items()]
    first = next(iter(records.values()))
    ex = first["extractors"]
    md += ["", f"Features: the quick preset's feature extractors (ResNet18, baseline recipe on the real train "
           f"images of the Kermany quick manifest), seeds {', '.join(str(e['seed']) for e in ex)}; test accuracy "
           + ", ".join(f"{e['test_metrics']['accuracy']:.3f}" for e in ex) + f". {first['n_generated']} generated "
           "minority (pneumonia) images per generator against the 402 real pneumonia train images; real-vs-real: "
           "the 390 real pneumonia test images. Frechet: mean +- sd over the 3 extractor seeds, each with a fresh "
           "sample. Label fidelity: the seed-0 extractor's accuracy on generated images of each label (label 0 "
           "normal, 1 pneumonia). Near-copies: generated images closer (pixel RMSE) to a train image than any real "
           "test image is.", "",
           "| generator | variant | exported epoch / epochs | train wall | Frechet / real-vs-real | Frechet | KID (x1e3) "
           "| fidelity label 0 | fidelity label 1 | near-copies |", "|---|---|---|---|---|---|---|---|---|---|"]
    real = first["quality"]["real train vs real test"]
    md.append(f"| real vs real | - | - | - | 1.00 | {_mean_sd(real['frechet_per_seed'])} | {real['kid'] * 1e3:.3g} | - | - | - |")
    for g in generators:
        for v, r in records.items():
            md.append(_row(v, g, r["quality"][g], 1))
    md += ["", f"Targets (Frechet <= {TARGET_RATIO}x real-vs-real, label fidelity >= {TARGET_FIDELITY} for both "
           "labels of every cDCGAN, 0 near-copies):", ""]
    for v in records:
        for g in generators:
            md += _targets(v, g, records[v]["quality"][g])
    curve = _curves(out, [v for v in records if (out / v).is_dir()], generators)
    if curve:
        md += ["", "Frechet distance against epoch as tracked during training (extractor seed 0, 512 images per "
               "label from fixed latents; the minority label's, for a cDCGAN too); the star marks the "
               "exported epoch:", "", f"![Frechet vs epoch]({curve})"]
    md += ["", "Sixteen generated minority images per generator (latent seed 0):", "",
           "| variant | " + " | ".join(generators) + " |", "|---" * (len(generators) + 1) + "|"]
    md += _grids(out, records, generators)
    (out / "results.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / 'results.md'}")
