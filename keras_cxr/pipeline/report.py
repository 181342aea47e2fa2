"""`report --results DIR`: one Markdown report of an `evaluate-all` directory, with its PNGs.

Sections: generated samples per generator, GAN loss curves, the results tables, the imbalance
curve (with `--compare`), confusion matrices, ROC curves, Grad-CAM grids and lung share, image quality, memorisation. Everything is
computed from the files in DIR (cells, weights, generators, manifest); nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_cxr.classify.backbones import build_classifier
from keras_cxr.classify.datasets import Splits
from keras_cxr.config import Config, config_from_dict
from keras_cxr.data.imbalance import label_counts, minority_label
from keras_cxr.errors import KerasCXRError
from keras_cxr.evaluate.generator_quality import REAL, measure_generators
from keras_cxr.explain.figures import pyplot as _plt
from keras_cxr.explain.figures import save_figure as _savefig
from keras_cxr.explain.gradcam import gradcam_maps, lung_mask, lung_share, make_gradcam, save_gradcam_grid
from keras_cxr.explain.memorisation import memorisation, near_copy_threshold
from keras_cxr.gan.export import generate_images
from keras_cxr.gan.grid import save_grid
from keras_cxr.gan.record import GeneratorRecord
from keras_cxr.io_utils import write_json, write_text
from keras_cxr.methods import GeneratorSpec, registry
from keras_cxr.pipeline.cells import read_cells
from keras_cxr.pipeline.extractor import ensure_extractor, unit_images
from keras_cxr.pipeline.imbalance_curve import curve_section


def _network(cell: dict):
    """A cell's classifier network, untrained (its backbone as the cell recorded it)."""
    backbone = cell.get("classifier_config", {}).get("backbone", "resnet18")  # cells before the setting: ResNet18
    return build_classifier(image_size=cell["image_size"], backbone_name=backbone)


def _mean_sd(values) -> str:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if not len(v):
        return "-"
    return f"{v.mean():.3f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def _frechet_comparison(frechet_by_seed: dict, generators: list[GeneratorSpec]) -> list[str]:
    """Each cDCGAN against DCGAN on the Frechet distance: ranges (min-max over feature seeds) overlap or not."""
    if "dcgan" not in frechet_by_seed or len(frechet_by_seed["dcgan"]) < 2:
        return []
    lines = []
    d = frechet_by_seed["dcgan"]
    for g in (spec.name for spec in generators if spec.conditional):
        v = frechet_by_seed[g]
        if max(v) < min(d):
            verdict = "lower than DCGAN (ranges do not overlap)"
        elif min(v) > max(d):
            verdict = "higher than DCGAN (ranges do not overlap)"
        else:
            verdict = "not separable from DCGAN (ranges overlap)"
        lines.append(f"- `{g}`: Frechet {min(v):.3f}-{max(v):.3f} vs DCGAN {min(d):.3f}-{max(d):.3f}: {verdict}.")
    return ["Frechet distance of each cDCGAN against DCGAN, min-max over the feature seeds:", ""] + lines + [""] if lines else []


def _loss_curves(results: Path, assets: Path, runs: list[str]) -> list[str]:
    plt = _plt()
    lines = []
    for run in runs:
        log = results / run / "log.csv"
        if not log.exists():
            continue
        rows = list(csv.DictReader(open(log)))
        epochs = [int(r["epoch"]) for r in rows]
        fig, ax = plt.subplots(figsize=(4, 2.5))
        for key in ("d_loss_real", "d_loss_fake", "g_loss"):
            ax.plot(epochs, [float(r[key]) for r in rows], label=key, lw=1)
        ax.set_xlabel("epoch")
        ax.set_title(run, fontsize=9)
        ax.legend(fontsize=6)
        fig.tight_layout()
        _savefig(fig, assets / f"loss_{run}.png")
        lines.append(f"![{run} losses](report/loss_{run}.png)")
        lines += _frechet_curve(results, assets, run, rows)
    return lines


def _frechet_curve(results: Path, assets: Path, run: str, rows: list[dict]) -> list[str]:
    """Tracked Frechet distance against epoch (runs trained with `gan.eval_every`), the exported epoch starred."""
    tracked = [r for r in rows if r.get("fd")]
    if not tracked:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 2.5))
    for key in ("fd_label0", "fd_label1"):
        points = [(int(r["epoch"]), float(r[key])) for r in tracked if r.get(key)]
        if points:
            ax.plot(*zip(*points), lw=1, marker=".", ms=3, label=f"label {key[-1]}")
    done = results / run / "done.json"
    chosen = json.loads(done.read_text()).get("export_epoch") if done.exists() else None
    for r in tracked:
        if int(r["epoch"]) == chosen:
            ax.plot([chosen], [float(r["fd"])], "k*", ms=8, label=f"exported (epoch {chosen})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Frechet (tracking)")
    ax.set_yscale("log")
    ax.set_title(run, fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    _savefig(fig, assets / f"frechet_{run}.png")
    return [f"![{run} Frechet distance by epoch](report/frechet_{run}.png)"]


def _roc(cells: list[dict], y_true: np.ndarray, assets: Path, methods: list[str]) -> list[str]:
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    drawn = 0
    for m in methods:
        runs = [c for c in cells if c["method"] == m and c.get("test_scores")]
        if not runs:
            continue
        first = min(runs, key=lambda c: c["seed"])
        fpr, tpr, _ = roc_curve(y_true, first["test_scores"])
        aucs = [c["metrics"]["roc_auc"] for c in runs]
        ax.plot(fpr, tpr, lw=1, label=f"{m} (AUC {_mean_sd(aucs)})")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return ["No per-image test scores in the cells: ROC curves need cells written by keras_cxr >= 0.1."]
    ax.plot([0, 1], [0, 1], "k:", lw=0.5)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("recall")
    ax.legend(fontsize=6)
    fig.tight_layout()
    _savefig(fig, assets / "roc.png")
    return ["ROC curves on the test split (curve: lowest seed; AUC: mean +- sd over seeds).", "",
            "![ROC curves](report/roc.png)"]


@dataclass
class _Context:
    """What every report section reads: the folder, its cells, the test/train images, generators."""

    results: Path
    assets: Path
    manifest: Path
    config: Config  # the preset's image size, kernels and classifier recipe, as the cells recorded them
    cells: list
    image_size: int
    methods: list
    seeds: list
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    minority: int
    generators: list  # GeneratorSpec, in the registry's order
    n_generated: int

    def generator_path(self, spec: GeneratorSpec) -> Path:
        return spec.export_dir(self.results / "models")


def _exported_generators(results: Path) -> list[GeneratorSpec]:
    """The generators exported under `<results>/models`, from their own metadata, in registry order."""
    specs = []
    for pb in sorted((results / "models").glob("*/1/saved_model.pb")):
        try:
            record = GeneratorRecord.read(pb.parent)
        except KerasCXRError:  # a SavedModel that is not one of keras_cxr's generators
            continue
        spec = GeneratorSpec(record.kind, record.alpha, record.gan_seed, record.recipe)
        if spec.name == pb.parent.parent.name:  # a folder named as its run: one of this matrix's
            specs.append(spec)
    return sorted(specs, key=lambda s: (s.conditional, s.recipe, s.alpha or 0.0, -1 if s.gan_seed is None else s.gan_seed))


def _manifest_of(results: Path) -> Path:
    """The manifest an evaluate-all folder's cells were trained on: its own `data/manifest.csv`,
    or the one given with `--manifest` (recorded in results.json)."""
    own = results / "data" / "manifest.csv"
    summary = results / "results.json"
    if not own.exists() and summary.exists():
        recorded = json.loads(summary.read_text()).get("manifest")
        if recorded:
            return Path(recorded)
    return own


def _load_context(results_dir, n_generated: int) -> _Context:
    results = Path(results_dir)
    cells = read_cells(results)
    if not cells:
        raise KerasCXRError(f"no cells in {results / 'cells'}: run `evaluate-all --out {results}` first")
    image_size = cells[0]["image_size"]
    manifest = _manifest_of(results)
    splits = Splits.load(manifest, image_size)
    assets = results / "report"
    assets.mkdir(parents=True, exist_ok=True)
    y_train = splits.train[1]
    return _Context(
        results=results, assets=assets, manifest=manifest, config=_config_of(cells[0]), cells=cells,
        image_size=image_size,
        methods=list(dict.fromkeys(c["method"] for c in sorted(cells, key=lambda c: c["method"]))),
        seeds=sorted({c["seed"] for c in cells}),
        x_train=unit_images(splits.train[0]), y_train=y_train,
        x_test=unit_images(splits.test[0]), y_test=splits.test[1],
        minority=minority_label(label_counts(y_train)),
        generators=_exported_generators(results), n_generated=n_generated)


def _config_of(cell: dict) -> Config:
    """The settings a cell ran with that decide a feature extractor (`keras_cxr.pipeline.extractor`)."""
    # (smote_k_neighbors: recorded by older cells; no part of an extractor's recipe)
    classifier = {k: v for k, v in cell.get("classifier_config", {}).items() if k not in ("methods", "smote_k_neighbors")}
    return config_from_dict({"name": cell["preset"], "image_size": cell["image_size"],
                             "kernels": cell.get("kernels", "auto"), "classifier": classifier}, f"cell {cell['method']}")


def write_report(results_dir, n_generated: int = 500, gradcam_batch: int = 16, log=print,
                 extractor_seeds=(0, 1, 2), compare=()) -> Path:
    """Writes `<results>/report.md` and `<results>/report/*.png`; returns the report path.

    `extractor_seeds`: the feature extractors of the quality section (trained once per manifest
    and cached under `<results>/extractor/`); the Frechet distance's spread is over them.
    `compare`: other `evaluate-all` folders of the same data at other minority fractions; with
    them the report draws the imbalance curve (`keras_cxr.pipeline.imbalance_curve`)."""
    ctx = _load_context(results_dir, n_generated)
    curve_md, curve = curve_section([ctx.results, *map(Path, compare)], ctx.assets) if compare else ([], {})
    md = _header(ctx) + _samples_section(ctx) + _losses_section(ctx) + _results_section(ctx) + curve_md
    md += _confusion_section(ctx) + _roc_section(ctx)
    log("report: Grad-CAM")
    gradcam_md, shares = _gradcam_section(ctx, gradcam_batch)
    md += gradcam_md
    quality, memo = {}, {}
    if ctx.generators:
        log("report: image quality and memorisation")
        extractors = [ensure_extractor(ctx.config, ctx.results, ctx.manifest, seed, log) for seed in extractor_seeds]
        quality_md, quality, gen_pixels = _quality_section(ctx, extractors)
        memo_md, memo = _memorisation_section(ctx, gen_pixels, extractors[0].features)
        md += quality_md + memo_md
    else:
        md += ["## Generated-image quality", "", "No exported generators in this folder.", "",
               "## Memorisation", "", "No exported generators in this folder.", ""]
    write_json(ctx.results / "report.json", {"lung_share": shares, "quality": quality, "memorisation": memo,
                                             "imbalance_curve": curve})
    report = ctx.results / "report.md"
    write_text(report, "\n".join(md) + "\n")
    missing = [link for link in _links(report) if not (ctx.results / link).exists()]
    if missing:
        raise KerasCXRError(f"report links to missing files: {missing}")
    return report


def _header(ctx: _Context) -> list[str]:
    return [f"# keras_cxr report: `{ctx.results}`", "",
            f"Preset image size {ctx.image_size}x{ctx.image_size}; seeds {', '.join(map(str, ctx.seeds))}; "
            f"{len(ctx.cells)} (method, seed) cells. Every number below is computed from the files in this folder "
            f"by `python -m keras_cxr report --results {ctx.results}`.", ""]


def _samples_section(ctx: _Context) -> list[str]:
    md = ["## Generated samples", ""]
    for spec in ctx.generators:
        g = spec.name
        for label in ((0, 1) if spec.conditional else (ctx.minority,)):
            save_grid(generate_images(ctx.generator_path(spec), 16, label, seed=0), ctx.assets / f"samples_{g}_label{label}.png")
            md.append(f"![{g} label {label}](report/samples_{g}_label{label}.png) `{g}` label {label}")
        md.append("")
    if not ctx.generators:
        md += ["No exported generators in this folder.", ""]
    return md


def _losses_section(ctx: _Context) -> list[str]:
    return ["## GAN losses", ""] + _loss_curves(ctx.results, ctx.assets, [s.name for s in ctx.generators]) + [""]


def _results_section(ctx: _Context) -> list[str]:
    md = ["## Results", ""]
    results_md = ctx.results / "results.md"
    if results_md.exists():
        for block in results_md.read_text().split("\n\n"):  # its tables: per method, then paired with baseline
            rows = [line for line in block.splitlines() if line.startswith("|")]
            md += rows + [""] if rows else []
        md += ["Details, context, the calls and (where the setting is the paper's) the paper's numbers: "
               "[results.md](results.md).", ""]
    return md


def _confusion_section(ctx: _Context) -> list[str]:
    md = ["## Confusion matrices (test split, summed over seeds)", "",
          "| method | seeds | TN | FP | FN | TP |", "|---|---|---|---|---|---|"]
    for m in ctx.methods:
        runs = [c for c in ctx.cells if c["method"] == m]
        cm = np.sum([c["metrics"]["confusion_matrix"] for c in runs], axis=0)
        md.append(f"| {m} | {len(runs)} | {cm[0][0]} | {cm[0][1]} | {cm[1][0]} | {cm[1][1]} |")
    return md


def _roc_section(ctx: _Context) -> list[str]:
    return ["", "## ROC curves", ""] + _roc(ctx.cells, ctx.y_test, ctx.assets, ctx.methods) + [""]


def _gradcam_section(ctx: _Context, gradcam_batch: int) -> tuple[list[str], dict]:
    """Grad-CAM grids of the paper's figure methods and every cell's lung share."""
    mask = lung_mask(ctx.image_size)
    y_test = ctx.y_test
    batch_idx = np.concatenate([np.flatnonzero(y_test == 0)[: gradcam_batch // 2],
                                np.flatnonzero(y_test == 1)[: gradcam_batch // 2]])
    figure_methods = [m.name for m in registry([s.alpha for s in ctx.generators if s.conditional]).values() if m.gradcam]
    shares: dict = {}
    ordered = sorted(ctx.cells, key=lambda c: (c["method"], c["seed"]))
    cam_net = _network(ordered[0])
    cam_model, layer = cam_net.model, cam_net.gradcam_layer
    cam = make_gradcam(cam_model, clone=False)  # one traced Grad-CAM; each cell's weights loaded into it
    no_weights = []
    for c in ordered:
        if not Path(c["weights"]).is_file():  # e.g. a results folder committed without its weights
            no_weights.append(f"{c['method']} seed {c['seed']}")
            continue
        cam_model.load_weights(c["weights"])
        # tf-keras-vis runs eagerly, batch by batch: fewer, larger batches cut its overhead (6 tiny
        # cells of 100 test images: 13.0 -> 9.8 s, the same maps); 128 bounds the tape's memory.
        maps, _ = gradcam_maps(cam_model, ctx.x_test, layer, batch_size=128, cam=cam)
        share = lung_share(maps, mask)  # nan for an all-zero CAM (no positive evidence anywhere)
        shares.setdefault(c["method"], []).append(float(np.nanmean(share)) if np.isfinite(share).any() else float("nan"))
        if c["method"] in figure_methods and c["seed"] == ctx.seeds[0]:
            save_gradcam_grid(ctx.x_test[batch_idx], maps[batch_idx], ctx.assets / f"gradcam_{c['method']}.png",
                              f"{c['method']} seed {c['seed']}: first {gradcam_batch // 2} normal, then pneumonia test images")
    md = ["## Grad-CAM", "", f"Highest-scoring class, layer `{layer}`; white boxes: the approximate "
          "lung mask (a fixed anatomical box per lung field, `keras_cxr/explain/gradcam.py`).", ""]
    md += [f"![Grad-CAM {m}](report/gradcam_{m}.png)" for m in figure_methods if (ctx.assets / f"gradcam_{m}.png").exists()]
    last = cam_model.get_layer(layer).output.shape[1]
    md += ["", "Share of CAM mass inside the lung mask over the whole test split (per seed: mean over images; "
           f"then mean +- sd over seeds; the mask covers {mask.mean():.0%} of the image, so a CAM with no "
           f"spatial preference scores {mask.mean():.2f}). At {ctx.image_size}x{ctx.image_size} input the last conv block "
           f"is {last}x{last}, which bounds how finely a CAM can localise.", "",
           "| method | lung share |", "|---|---|"] + [f"| {m} | {_mean_sd(v)} |" for m, v in shares.items()] + [""]
    if no_weights:
        md += [f"Not in the Grad-CAM numbers (weights file absent here; rerun the cell to include it): "
               f"{', '.join(no_weights)}.", ""]
    return md, shares


def _quality_section(ctx: _Context, extractors: list):
    """Frechet distance, KID, PRDC and label fidelity in the extractors' feature space.

    Returns (markdown, per-set quality, generated minority pixels per generator)."""
    generators = {spec.name: (ctx.generator_path(spec), spec.conditional) for spec in ctx.generators}
    quality, gen_pixels = measure_generators(generators, extractors, ctx.x_train, ctx.y_train, ctx.x_test,
                                             ctx.y_test, ctx.n_generated)
    first = extractors[0]
    n_real = int((ctx.y_train == ctx.minority).sum())
    seeds = ", ".join(str(e.seed) for e in extractors)
    md = ["## Generated-image quality", "",
          f"Features: the {_backbone_title(first.record)} feature extractors of this manifest (`keras_cxr/pipeline/"
          f"extractor.py`: the baseline recipe on the real train images only; seeds {seeds}; test accuracy of "
          f"seed {first.seed}: {first.record['test_metrics'].get('accuracy', float('nan')):.3f}). Reference set: the "
          f"{n_real} real minority-class train images; {ctx.n_generated} generated minority images per generator. "
          "Lower Frechet / KID is closer; precision, recall, density, coverage after Naeem et al. 2020 (k = 5). "
          "The first row is the real-vs-real scale (real minority test images).", "",
          f"Frechet distance and its ratio to real-vs-real: mean +- sd over the extractor seeds, each with a fresh "
          f"generated sample; the other columns use seed {first.seed}.", ""]
    dim = quality[REAL]["feature_dim"]
    if n_real < dim // 4:
        md += [f"Not shown: {n_real} real reference images against {dim} feature dimensions is too few for a "
               "covariance (Frechet) or a kernel mean (KID) estimate; the numbers would be noise (they are in "
               "report.json). Use a larger dataset (e.g. `--data ../shared/data/kermany128`).", ""]
    else:
        if n_real < dim:
            md += [f"With {n_real} real reference images against {dim} feature dimensions the covariances are "
                   "rank-deficient and every Frechet distance is biased upwards: compare each to the "
                   "real-vs-real row (the ratio column), not to published values.", ""]
        md += _quality_table(quality)
        md += [""] + _frechet_comparison({name: q["frechet_per_seed"] for name, q in quality.items()}, ctx.generators)
    md += ["", "Label fidelity: the extractor's (seed "
           f"{first.seed}) accuracy on {ctx.n_generated} generated images of each label a generator makes:", "",
           "| generator | label 0 | label 1 |", "|---|---|---|"]
    for spec in ctx.generators:
        fid = quality[spec.name]["fidelity"]
        md.append(f"| {spec.name} | " + " | ".join(f"{fid[c]:.3f}" if c in fid else "-" for c in (0, 1)) + " |")
    return md, quality, gen_pixels


def _quality_table(quality: dict) -> list[str]:
    md = ["| set | Frechet distance | Frechet / real-vs-real | KID (x1e3) mean +- sd | precision | recall | density | coverage |",
          "|---|---|---|---|---|---|---|---|"]
    for name, q in quality.items():
        md.append(f"| {name} | {_mean_sd(q['frechet_per_seed'])} | {_mean_sd(q['ratio_per_seed'])} | "
                  f"{q['kid'] * 1e3:.4g} +- {q['kid_sd'] * 1e3:.2g} | "
                  f"{q['precision']:.3f} | {q['recall']:.3f} | {q['density']:.3f} | {q['coverage']:.3f} |")
    return md


def _memorisation_section(ctx: _Context, gen_pixels: dict, f) -> tuple[list[str], dict]:
    md = ["", "## Memorisation", "",
          "Nearest training image (all train images) of each generated image, by pixel RMSE and by feature "
          "cosine distance, against the same distances of the real test images. A near-copy is a generated "
          "image closer (pixel RMSE) to a training image than 99% of the training images are to their nearest "
          "other training image, exact duplicates aside (`keras_cxr/explain/memorisation.py`).", "",
          "| generator | near-copies | threshold RMSE | generated RMSE p05 / median | test RMSE p05 / median "
          "| generated cosine median | test cosine median |", "|---|---|---|---|---|---|---|"]
    memo = {}
    f_all_train, f_test = f(ctx.x_train), f(ctx.x_test)
    threshold = near_copy_threshold(ctx.x_train)
    for spec in ctx.generators:
        g = spec.name
        r = memorisation(gen_pixels[g], ctx.x_train, ctx.x_test, f(gen_pixels[g]), f_all_train, f_test, threshold)
        memo[g] = {k: v for k, v in r.items() if k not in ("nearest_train_index", "generated_rmse")}
        closest = np.argsort(np.asarray(r["generated_rmse"]))[:8]
        pairs = np.concatenate([gen_pixels[g][closest], ctx.x_train[np.asarray(r["nearest_train_index"])[closest]]])
        save_grid(pairs, ctx.assets / f"closest_{g}.png")
        md.append(f"| {g} | {r['near_copies']} / {r['n_generated']} | {r['near_copy_threshold_rmse']:.4f} | "
                  f"{r['pixel_rmse_generated']['p05']:.4f} / {r['pixel_rmse_generated']['median']:.4f} | "
                  f"{r['pixel_rmse_test']['p05']:.4f} / {r['pixel_rmse_test']['median']:.4f} | "
                  f"{r['feature_cosine_generated']['median']:.4f} | {r['feature_cosine_test']['median']:.4f} |")
    md += ["", "Closest pairs (top half of each grid: the 8 generated images nearest the training set; "
           "bottom half: their nearest training images):", ""]
    md += [f"![closest {g.name}](report/closest_{g.name}.png) `{g.name}`" for g in ctx.generators]
    return md, memo


def _backbone_title(record: dict) -> str:
    name = record.get("backbone") or record.get("classifier_config", {}).get("backbone", "resnet18")
    return {"resnet18": "ResNet18"}.get(name, name)


def _links(report: Path) -> list[str]:
    import re

    return re.findall(r"\]\(([^)]+)\)", report.read_text())
