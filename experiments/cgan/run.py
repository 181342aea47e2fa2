"""Issue 23: a conditional generator that makes chest X-rays, screened at 25% and confirmed at 10%.

Every run is the quick cDCGAN (alpha 0.5, 64x64, 57 epochs, tracked every 5 epochs, best epoch
exported) with one or more of the generator settings of issue 23, and the generator EMA
(`gan.ema=0.999`) always on: the average draws no random numbers and feeds nothing back, so a
run's raw G trains exactly as it would without it (tests/test_gan_recipe.py), and its log holds
both the average's quality columns and the raw G's (`raw_*`). One run therefore reads two
variants: "<variant>" (raw G) and "<variant>+ema" (its average).

Variants (each at least two GAN seeds; the chosen recipe at least three):

  base       the quick preset as it is (its raw G is today's quick cDCGAN)
  balanced   gan.real_sampling=balanced
  ttur       gan.d_learning_rate=4e-4 (twice G's)
  resize     gan.upsample=resize
  proj_sn    gan.discriminator_head=projection, gan.spectral_norm=true
  transition gan.transition=[15,30]: unconditional to epoch 15, labels faded in by epoch 30
             (Shahbazi et al. 2022, "Collapse by Conditioning"; fixed before any run)
  recipe     the screen's choice (table.py `screen` under choice_rule.md, read from summary.json;
             today gan.real_sampling=balanced, read on the raw G), at GAN seeds 0, 1, 2 at 25% and
             at 10%: the `cdcgan_plus_aNNN` rows' setting (keras_cxr/gan/settings.py RECIPE)
  translation  the recipe + gan.diffaugment=translation (translation-only DiffAugment, the next
             remedy of docs/gan-training.md; rule fixed before any run in
             results/cgan/translation_rule.md), GAN seeds 0, 1 at 25%
  long       the recipe + gan.cdcgan_epochs=114: twice the epochs, so the pneumonia label sees about
             as many real minority images as the quick DCGAN (rule fixed before any run in
             results/cgan/long_rule.md), GAN seeds 0, 1 at 25%
  every_epoch  the recipe + gan.eval_every=1: the raw G tracked every epoch, so the exported epoch is
             picked among 57 instead of 12 (rule fixed before any run in
             results/cgan/every_epoch_rule.md), GAN seeds 0, 1 at 25%

Stages (resumable; run from the repository root, one process at a time per machine):

  python experiments/cgan/run.py train --minority 25 --variants base balanced --seeds 0 1
  python experiments/cgan/run.py table --minority 25      # results/cgan/summary.json + results.md
  python experiments/cgan/run.py train --minority 10 --variants recipe --seeds 0 1 2
  python experiments/cgan/run.py table --minority 10

Runs land in experiments/results/cgan/m<minority>/<variant>/seed<k>/ (committed: config, log,
done, manifest; not checkpoints). The split is the quick preset's on ../shared/data/kermany128
with pneumonia at 25% (the quick split) or 10% (quick_minority10) of train.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "experiments" / "results" / "cgan"
DATA = "../shared/data/kermany128"
EMA = "gan.ema=0.999"
VARIANTS = {
    "base": [],
    "balanced": ["gan.real_sampling=balanced"],
    "ttur": ["gan.d_learning_rate=4e-4"],
    "resize": ["gan.upsample=resize"],
    "proj_sn": ["gan.discriminator_head=projection", "gan.spectral_norm=true"],
    "transition": ["gan.transition=[15,30]"],
}
RECIPE = "recipe"  # the screen's combination (table.py `screen`, choice_rule.md), at GAN seeds 0, 1, 2
ON_RECIPE = {  # variants that add to the recipe, each read by its own rule (table.py REMEDIES)
    "translation": ["gan.diffaugment=translation"],
    "long": ["gan.cdcgan_epochs=114"],
    "every_epoch": ["gan.eval_every=1"],
}


def settings(variant: str) -> list[str]:
    """A variant's `--set` values; the recipe's are the ones the screen chose, read from summary.json."""
    if variant in ON_RECIPE:
        return [*settings(RECIPE), *ON_RECIPE[variant]]
    if variant != RECIPE:
        return VARIANTS[variant]
    import json

    summary = OUT / "summary.json"
    screen = json.loads(summary.read_text()).get("screen", {}) if summary.exists() else {}
    if not screen.get("complete"):
        sys.exit(f"error: the screen has not chosen a recipe yet (run `table --minority 25` after every screened "
                 f"variant has two seeds). Received: {summary}")
    return screen["settings"]


def split_dir(minority: int) -> Path:
    return OUT / f"m{minority}"


def prepare(minority: int, data: str) -> Path:
    """The split's manifest (made once) and seed-0 feature extractor (trained once), shared by
    every run of that split: each run's folder gets a copy of the extractor, not its own."""
    from keras_cxr.config import load_preset
    from keras_cxr.pipeline.extractor import ensure_extractor
    from keras_cxr.pipeline.prepared import prepare_manifest

    config = load_preset("quick", [f"data.minority_fraction={minority / 100}"])
    manifest = prepare_manifest(config, split_dir(minority), data)
    ensure_extractor(config, split_dir(minority), manifest, seed=0)
    return manifest


def train(minority: int, variants: list[str], seeds: list[int], data: str) -> None:
    from keras_cxr.pipeline.extractor import share_extractors
    from keras_cxr.pipeline.provenance import run_logged

    manifest = prepare(minority, data)
    for variant in variants:
        for seed in seeds:
            out = split_dir(minority) / variant / f"seed{seed}"
            if (out / "cdcgan_a050" / "done.json").exists():
                continue
            out.mkdir(parents=True, exist_ok=True)
            share_extractors(split_dir(minority), out)
            sets = [s for kv in [EMA, f"data.minority_fraction={minority / 100}", *settings(variant)] for s in ("--set", kv)]
            cmd = [sys.executable, "-m", "keras_cxr", "train-gan", "--model", "cdcgan", "--alpha", "0.5",
                   "--preset", "quick", "--manifest", str(manifest), "--out", str(out), "--seed", str(seed),
                   *sets, "--quiet"]
            rc = run_logged(cmd, out, cwd=ROOT)
            if rc:
                sys.exit(rc)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("train", "table"))
    p.add_argument("--minority", type=int, choices=(25, 10), default=25)
    p.add_argument("--variants", nargs="+", choices=(*VARIANTS, RECIPE, *ON_RECIPE), default=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--data", default=DATA)
    args = p.parse_args(argv)
    if args.stage == "train":
        train(args.minority, args.variants, args.seeds, args.data)
    else:
        from table import write_table  # noqa: E402 (sibling module)

        write_table(split_dir(args.minority), {**VARIANTS, RECIPE: None, **ON_RECIPE})


if __name__ == "__main__":
    main()
