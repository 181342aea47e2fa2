"""`report --results DIR`: one Markdown report of an `evaluate-all` directory, with its PNGs.

Sections: generated samples per generator, GAN loss curves, the results table, confusion
matrices, ROC curves, Grad-CAM grids and lung share, image quality, memorisation. Everything is
computed from the files in DIR (cells, weights, generators, manifest); nothing is downloaded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from keras_cxr.classify.datasets import Splits
from keras_cxr.classify.resnet18 import LAST_CONV_LAYER, build_resnet18
from keras_cxr.classify.train import GAN_METHODS
from keras_cxr.errors import KerasCXRError
from keras_cxr.evaluate.summary import read_cells
from keras_cxr.explain.gradcam import gradcam_maps, lung_mask, lung_share, make_gradcam, save_gradcam_grid
from keras_cxr.explain.memorisation import memorisation
from keras_cxr.explain.quality import feature_model, frechet_distance, kernel_inception_distance, prdc
from keras_cxr.gan.export import generate_images
from keras_cxr.gan.grid import save_grid
from keras_cxr.io_utils import atomic_path, write_json, write_text

GRADCAM_METHODS = ("baseline", "dcgan", "cdcgan_a050")  # paper 5.3


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _savefig(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    _plt().close(fig)


def _load_classifier(cell: dict, image_size: int):
    model = build_resnet18(image_size)
    if not Path(cell["weights"]).is_file():
        raise KerasCXRError(f"weights of {cell['method']} seed {cell['seed']} not found: {cell['weights']}")
    model.load_weights(cell["weights"])
    return model


def _features(classifier):
    """x -> the classifier's penultimate (`avgpool`) features, batched."""
    model = feature_model(classifier)
    return lambda x: model.predict(x, verbose=0, batch_size=64)


def _mean_sd(values) -> str:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if not len(v):
        return "-"
    return f"{v.mean():.3f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def _frechet_comparison(frechet_by_seed: dict) -> list[str]:
    """Each cDCGAN against DCGAN on the Frechet distance: ranges (min-max over feature seeds) overlap or not."""
    if "dcgan" not in frechet_by_seed or len(frechet_by_seed["dcgan"]) < 2:
        return []
    lines = []
    d = frechet_by_seed["dcgan"]
    for g, v in frechet_by_seed.items():
        if not g.startswith("cdcgan"):
            continue
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
    return lines


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


def write_report(results_dir, n_generated: int = 500, gradcam_batch: int = 16, log=print) -> Path:
    """Writes `<results>/report.md` and `<results>/report/*.png`; returns the report path."""
    results = Path(results_dir)
    cells = read_cells(results)
    if not cells:
        raise KerasCXRError(f"no cells in {results / 'cells'}: run `evaluate-all --out {results}` first")
    manifest = results / "data" / "manifest.csv"
    image_size = cells[0]["image_size"]
    splits = Splits.load(manifest, image_size)
    assets = results / "report"
    assets.mkdir(parents=True, exist_ok=True)
    methods = list(dict.fromkeys(c["method"] for c in sorted(cells, key=lambda c: c["method"])))
    seeds = sorted({c["seed"] for c in cells})
    x_test = splits.test[0][..., None].astype(np.float32) / 255.0
    y_test = splits.test[1]
    x_train = splits.train[0][..., None].astype(np.float32) / 255.0
    y_train = splits.train[1]
    minority = int(np.argmin(np.bincount(y_train, minlength=2)))
    md = [f"# keras_cxr report: `{results}`", "",
          f"Preset image size {image_size}x{image_size}; seeds {', '.join(map(str, seeds))}; "
          f"{len(cells)} (method, seed) cells. Every number below is computed from the files in this folder "
          f"by `python -m keras_cxr report --results {results}`.", ""]

    # 1-2. Generators: samples and loss curves.
    generators = [m for m in GAN_METHODS if (results / "models" / m / "1" / "saved_model.pb").exists()]
    md += ["## Generated samples", ""]
    for g in generators:
        path = results / "models" / g / "1"
        labels = (minority,) if g == "dcgan" else (0, 1)
        for label in labels:
            save_grid(generate_images(path, 16, label, seed=0), assets / f"samples_{g}_label{label}.png")
            md.append(f"![{g} label {label}](report/samples_{g}_label{label}.png) `{g}` label {label}")
        md.append("")
    if not generators:
        md += ["No exported generators in this folder.", ""]
    md += ["## GAN losses", ""] + _loss_curves(results, assets, generators) + [""]

    # 3. Results table.
    md += ["## Results", ""]
    results_md = results / "results.md"
    if results_md.exists():
        table = [line for line in results_md.read_text().splitlines() if line.startswith("|")]
        md += table + ["", "Details, context and the paper's numbers: [results.md](results.md).", ""]

    # 4. Confusion matrices, summed over seeds.
    md += ["## Confusion matrices (test split, summed over seeds)", "",
           "| method | seeds | TN | FP | FN | TP |", "|---|---|---|---|---|---|"]
    for m in methods:
        runs = [c for c in cells if c["method"] == m]
        cm = np.sum([c["metrics"]["confusion_matrix"] for c in runs], axis=0)
        md.append(f"| {m} | {len(runs)} | {cm[0][0]} | {cm[0][1]} | {cm[1][0]} | {cm[1][1]} |")
    md += ["", "## ROC curves", ""] + _roc(cells, y_test, assets, methods) + [""]

    # 5. Grad-CAM.
    log("report: Grad-CAM")
    mask = lung_mask(image_size)
    batch_idx = np.concatenate([np.flatnonzero(y_test == 0)[: gradcam_batch // 2],
                                np.flatnonzero(y_test == 1)[: gradcam_batch // 2]])
    shares: dict = {}
    # Grad-CAM's gradient stops at the last conv block (through avgpool and fc only), so the
    # eager tape gains nothing from the fast input-gradient convs and only pays their overhead.
    cam_model = build_resnet18(image_size, fast_input_grad=False)
    cam = make_gradcam(cam_model, clone=False)  # one traced Grad-CAM; each cell's weights loaded into it
    no_weights = []
    for c in sorted(cells, key=lambda c: (c["method"], c["seed"])):
        if not Path(c["weights"]).is_file():  # e.g. a results folder committed without its weights
            no_weights.append(f"{c['method']} seed {c['seed']}")
            continue
        cam_model.load_weights(c["weights"])
        maps, _ = gradcam_maps(cam_model, x_test, LAST_CONV_LAYER, batch_size=64, cam=cam)
        shares.setdefault(c["method"], []).append(float(np.nanmean(lung_share(maps, mask))))
        if c["method"] in GRADCAM_METHODS and c["seed"] == seeds[0]:
            save_gradcam_grid(x_test[batch_idx], maps[batch_idx], assets / f"gradcam_{c['method']}.png",
                              f"{c['method']} seed {c['seed']}: first {gradcam_batch // 2} normal, then pneumonia test images")
    md += ["## Grad-CAM", "", f"Highest-scoring class, layer `{LAST_CONV_LAYER}`; white boxes: the approximate "
           "lung mask (a fixed anatomical box per lung field, `keras_cxr/explain/gradcam.py`).", ""]
    md += [f"![Grad-CAM {m}](report/gradcam_{m}.png)" for m in GRADCAM_METHODS if (assets / f"gradcam_{m}.png").exists()]
    last = build_resnet18(image_size).get_layer(LAST_CONV_LAYER).output.shape[1]
    md += ["", "Share of CAM mass inside the lung mask over the whole test split (per seed: mean over images; "
           f"then mean +- sd over seeds; the mask covers {mask.mean():.0%} of the image, so a CAM with no "
           f"spatial preference scores {mask.mean():.2f}). At {image_size}x{image_size} input the last conv block "
           f"is {last}x{last}, which bounds how finely a CAM can localise.", "",
           "| method | lung share |", "|---|---|"] + [f"| {m} | {_mean_sd(v)} |" for m, v in shares.items()] + [""]
    if no_weights:
        md += [f"Not in the Grad-CAM numbers (weights file absent here; rerun the cell to include it): "
               f"{', '.join(no_weights)}.", ""]

    # 6-7. Quality and memorisation, on the baseline classifier's features.
    quality, memo = {}, {}
    base = sorted((c for c in cells if c["method"] == "baseline" and Path(c["weights"]).is_file()),
                  key=lambda c: c["seed"])
    if generators and base:
        log("report: image quality and memorisation")
        ref = base[0]
        classifier = _load_classifier(ref, image_size)
        f = _features(classifier)

        real_train = x_train[y_train == minority]
        real_test = x_test[y_test == minority]
        f_train, f_test = f(real_train), f(real_test)
        rows = {"real train vs real test": (f_train, f_test)}
        gen_pixels = {}
        for g in generators:
            gen_pixels[g] = generate_images(results / "models" / g / "1", n_generated, minority, seed=1)
            rows[g] = (f_train, f(gen_pixels[g]))
        for name, (a, b) in rows.items():
            kid_mean, kid_sd = kernel_inception_distance(a, b)
            quality[name] = {"frechet": frechet_distance(a, b), "kid": kid_mean, "kid_sd": kid_sd, **prdc(a, b)}
        # The spread of the Frechet distance: one value per baseline seed, each with its own
        # feature extractor and its own fresh generated sample, so the sd covers both.
        frechet_by_seed = {name: [q["frechet"]] for name, q in quality.items()}
        for other in base[1:]:
            g_feats = _features(_load_classifier(other, image_size))
            o_train = g_feats(real_train)
            frechet_by_seed["real train vs real test"].append(frechet_distance(o_train, g_feats(real_test)))
            for g in generators:
                fresh = generate_images(results / "models" / g / "1", n_generated, minority, seed=1 + other["seed"] + 1000)
                frechet_by_seed[g].append(frechet_distance(o_train, g_feats(fresh)))
        for name, values in frechet_by_seed.items():
            quality[name]["frechet_per_feature_seed"] = values
        fd_seeds = [c["seed"] for c in base]
        label_acc = {}
        for g in generators:
            if g == "dcgan":
                continue
            label_acc[g] = {}
            for label in (0, 1):
                imgs = generate_images(results / "models" / g / "1", n_generated, label, seed=2)
                label_acc[g][label] = float((classifier.predict(imgs, verbose=0).argmax(1) == label).mean())
        md += ["## Generated-image quality", "",
               f"Features: 512-d `avgpool` of the baseline ResNet18, seed {ref['seed']} (trained on real images "
               f"only). Reference set: the {len(real_train)} real minority-class train images; {n_generated} "
               f"generated minority images per generator. Lower Frechet / KID is closer; precision, recall, "
               f"density, coverage after Naeem et al. 2020 (k = 5). The first row is the real-vs-real scale.", "",
               f"Frechet distance: mean +- sd over the features of the {len(fd_seeds)} baseline seed(s) "
               f"({', '.join(map(str, fd_seeds))}), each with a fresh generated sample; the other columns use "
               f"seed {ref['seed']}.", "",
               "| set | Frechet distance | Frechet / real-vs-real | KID (x1e3) mean +- sd | precision | recall | density | coverage |",
               "|---|---|---|---|---|---|---|---|"]
        scale = quality["real train vs real test"]["frechet"]
        for name, q in quality.items():
            fd = q["frechet_per_feature_seed"]
            md.append(f"| {name} | {_mean_sd(fd)} | {q['frechet'] / scale:.2f} | {q['kid'] * 1e3:.4g} +- {q['kid_sd'] * 1e3:.2g} | "
                      f"{q['precision']:.3f} | {q['recall']:.3f} | {q['density']:.3f} | {q['coverage']:.3f} |")
        md += [""] + _frechet_comparison(frechet_by_seed)
        if label_acc:
            md += ["", "Does a cDCGAN's label mean what it says? The baseline classifier's accuracy on "
                   f"{n_generated} generated images of each label:", "", "| generator | label 0 | label 1 |", "|---|---|---|"]
            md += [f"| {g} | {a[0]:.3f} | {a[1]:.3f} |" for g, a in label_acc.items()]
        md += ["", "## Memorisation", "",
               "Nearest training image (all train images) of each generated image, by pixel RMSE and by feature "
               "cosine distance, against the same distances of the real test images. A near-copy is a generated "
               "image closer to a training image than any real test image is (`keras_cxr/explain/memorisation.py`).", "",
               "| generator | near-copies | threshold RMSE | generated RMSE p05 / median | test RMSE p05 / median "
               "| generated cosine median | test cosine median |", "|---|---|---|---|---|---|---|"]
        f_all_train = f(x_train)
        for g in generators:
            r = memorisation(gen_pixels[g], x_train, x_test, f(gen_pixels[g]), f_all_train, f(x_test))
            memo[g] = {k: v for k, v in r.items() if k not in ("nearest_train_index", "generated_rmse")}
            g_rmse = np.asarray(r["generated_rmse"])
            closest = np.argsort(g_rmse)[:8]
            pairs = np.concatenate([gen_pixels[g][closest], x_train[np.asarray(r["nearest_train_index"])[closest]]])
            save_grid(pairs, assets / f"closest_{g}.png")
            md.append(f"| {g} | {r['near_copies']} / {r['n_generated']} | {r['near_copy_threshold_rmse']:.4f} | "
                      f"{r['pixel_rmse_generated']['p05']:.4f} / {r['pixel_rmse_generated']['median']:.4f} | "
                      f"{r['pixel_rmse_test']['p05']:.4f} / {r['pixel_rmse_test']['median']:.4f} | "
                      f"{r['feature_cosine_generated']['median']:.4f} | {r['feature_cosine_test']['median']:.4f} |")
        md += ["", "Closest pairs (top half of each grid: the 8 generated images nearest the training set; "
               "bottom half: their nearest training images):", ""]
        md += [f"![closest {g}](report/closest_{g}.png) `{g}`" for g in generators]
    else:
        md += ["## Generated-image quality", "", "Needs exported generators and a baseline cell with its weights.", "",
               "## Memorisation", "", "Needs exported generators and a baseline cell with its weights.", ""]
    write_json(results / "report.json", {"lung_share": shares, "quality": quality, "memorisation": memo})
    report = results / "report.md"
    write_text(report, "\n".join(md) + "\n")
    missing = [link for link in _links(report) if not (results / link).exists()]
    if missing:
        raise KerasCXRError(f"report links to missing files: {missing}")
    return report


def _links(report: Path) -> list[str]:
    import re

    return re.findall(r"\]\(([^)]+)\)", report.read_text())
