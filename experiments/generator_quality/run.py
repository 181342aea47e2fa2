"""Issue 12: are the quick generators good enough to test GAN rebalancing?

Three variants of the four quick generators (DCGAN; cDCGAN alpha 0.25, 0.5, 0.75), all on the
Kermany quick split (`../shared/data/kermany128`, pneumonia 25% of train):

  a  the generators committed before this experiment (DCGAN 80 / cDCGAN 20 epochs, last epoch)
  b  the retuned quick preset (DCGAN 250 / cDCGAN 57 epochs, tracked, best epoch), no DiffAugment
  c  the same with DiffAugment color,translation,cutout

Stages (each resumable; run from the repository root):

  python experiments/generator_quality/run.py train b      # trains b's generators (evaluate-all --only-generators)
  python experiments/generator_quality/run.py train c
  python experiments/generator_quality/run.py measure a    # quality with 3 extractor seeds -> <variant>.json
  python experiments/generator_quality/run.py measure b
  python experiments/generator_quality/run.py measure c
  python experiments/generator_quality/run.py table        # results.md + curves + sample grids

Everything lands under experiments/results/generator_quality/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "experiments" / "results" / "generator_quality"
DATA = "../shared/data/kermany128"
VARIANTS = {
    "a": {"models": ROOT / "experiments" / "results" / "quick" / "models", "set": None,
          "what": "committed quick generators (DCGAN 80 / cDCGAN 20 epochs, last epoch, no tracking)"},
    "b": {"set": "gan.diffaugment=none", "what": "retuned quick preset, no DiffAugment"},
    "c": {"set": "gan.diffaugment=color,translation,cutout", "what": "retuned quick preset, DiffAugment color,translation,cutout"},
}
GENERATORS = ("dcgan", "cdcgan_a025", "cdcgan_a050", "cdcgan_a075")
EXTRACTOR_SEEDS = (0, 1, 2)
N_GENERATED = 500


def _run_dir(variant: str) -> Path:
    return OUT / variant


def _models(variant: str) -> Path:
    return VARIANTS[variant].get("models") or _run_dir(variant) / "models"


def _reuse_extractor(dest: Path) -> None:
    """Same manifest and recipe, so the same extractor: copy one already trained (its time is
    reported once, from its own record) instead of training it again."""
    for src in sorted(OUT.glob("*/extractor")) + [OUT / "extractor"]:
        if src.is_dir() and src != dest / "extractor":
            for record in src.glob("*/seed*.json"):
                target = dest / "extractor" / record.parent.name
                if not (target / record.name).exists():
                    target.mkdir(parents=True, exist_ok=True)
                    weights = f"baseline__seed{json.loads(record.read_text())['seed']}.weights.h5"
                    (target / "weights").mkdir(exist_ok=True)
                    shutil.copy2(record.parent / "weights" / weights, target / "weights" / weights)
                    shutil.copy2(record, target / record.name)  # last: its presence means "ready"


def train(variant: str, data: str) -> None:
    """Trains (or resumes) the variant's four generators; appends this sitting's wall time."""
    out = _run_dir(variant)
    out.mkdir(parents=True, exist_ok=True)
    _reuse_extractor(out)
    cmd = [sys.executable, "-m", "keras_cxr", "evaluate-all", "--only-generators", "--preset", "quick",
           "--data", data, "--out", str(out), "--set", VARIANTS[variant]["set"], "--quiet"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd, cwd=ROOT)
    sitting = {"command": " ".join(cmd[1:]), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t0)),
               "wall_s": round(time.time() - t0, 1), "exit": rc, "host": platform.processor() or platform.machine(),
               "cpus": os.cpu_count()}
    log = out / "sittings.json"
    sittings = json.loads(log.read_text()) if log.exists() else []
    log.write_text(json.dumps(sittings + [sitting], indent=2) + "\n")
    if rc:
        sys.exit(rc)


def measure(variant: str, data: str) -> None:
    """Frechet (3 extractor seeds), KID, PRDC, label fidelity and memorisation of the variant."""
    import numpy as np

    from keras_cxr.classify.datasets import Splits
    from keras_cxr.config import load_preset
    from keras_cxr.pipeline.extractor import ensure_extractor
    from keras_cxr.evaluate.generator_quality import measure_generators
    from keras_cxr.pipeline.prepared import prepare_manifest
    from keras_cxr.explain.memorisation import memorisation
    from keras_cxr.gan.record import GeneratorRecord

    config = load_preset("quick")
    manifest = prepare_manifest(config, OUT, data)
    _reuse_extractor(OUT)
    extractors = [ensure_extractor(config, OUT, manifest, seed) for seed in EXTRACTOR_SEEDS]
    splits = Splits.load(manifest, config.image_size)
    x_train, y_train = splits.train[0][..., None].astype(np.float32) / 255.0, splits.train[1]
    x_test, y_test = splits.test[0][..., None].astype(np.float32) / 255.0, splits.test[1]
    models = _models(variant)
    generators = {g: (models / g / "1", g.startswith("cdcgan")) for g in GENERATORS}
    quality, samples = measure_generators(generators, extractors, x_train, y_train, x_test, y_test, N_GENERATED)
    f = extractors[0].features
    f_train, f_test = f(x_train), f(x_test)
    for g in GENERATORS:
        m = memorisation(samples[g], x_train, x_test, f(samples[g]), f_train, f_test)
        quality[g]["memorisation"] = {k: v for k, v in m.items() if k not in ("nearest_train_index", "generated_rmse")}
        record = GeneratorRecord.read(models / g / "1")
        quality[g]["export_epoch"] = record.export_epoch
        quality[g]["epochs"] = record.epochs
        done = _run_dir(variant) / g / "done.json"
        if done.exists():
            quality[g]["train_wall_s"] = json.loads(done.read_text())["wall_s"]
    record = {"variant": variant, "what": VARIANTS[variant]["what"], "models": str(models.relative_to(ROOT)),
              "n_generated": N_GENERATED, "quality": quality,
              "extractors": [{"seed": e.seed, "test_metrics": e.record["test_metrics"], "train_s": e.record["train_s"]}
                             for e in extractors]}
    (OUT / f"{variant}.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    print(f"wrote {OUT / f'{variant}.json'}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("train", "measure", "table"))
    p.add_argument("variant", nargs="?", choices=tuple(VARIANTS))
    p.add_argument("--data", default=DATA)
    args = p.parse_args(argv)
    if args.stage == "table":
        from table import write_table  # noqa: E402 (sibling module)

        write_table(OUT, VARIANTS, GENERATORS)
        return
    if args.variant is None:
        p.error(f"{args.stage} needs a variant: {', '.join(VARIANTS)}")
    if args.stage == "train" and args.variant == "a":
        p.error("variant a is the committed generators: nothing to train")
    (train if args.stage == "train" else measure)(args.variant, args.data)


if __name__ == "__main__":
    main()
