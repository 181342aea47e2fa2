"""The project's one feature space for generated-image quality.

Why not Inception FID: Inception-v3 weights cannot be downloaded where keras_cxr runs, and an
ImageNet network's features describe natural photographs, not the textures that separate a
normal from a pneumonic chest X-ray. The extractor is instead a ResNet18 trained with the
baseline recipe (the preset's classifier settings, no rebalancing) on the real train images of
one manifest; its penultimate features (512-d) are the space for the Frechet distance and KID,
and its class output judges a cDCGAN's label fidelity. Numbers are comparable within keras_cxr
for one manifest and preset, not with published FID/KID values.

Made once per (manifest, recipe, seed) and cached under `<out>/extractor/<key>/`: training-time
tracking (`gan.eval_every`) and the report read the same files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_cxr.config import Config
from keras_cxr.io_utils import write_json
from keras_cxr.pipeline.locks import remove_stale_tmp, run_lock

# Classifier settings that do not change one baseline network's training.
_NOT_IN_RECIPE = ("seeds", "methods", "bootstrap", "generator_per_seed")


def instrument_config(config: Config) -> Config:
    """`config` as an extractor trains under it: float32 whatever the classifier's precision, so
    the quality instrument does not change with `classifier.precision` (or what `auto` picks)."""
    import dataclasses

    return dataclasses.replace(config, classifier=dataclasses.replace(config.classifier, precision="float32"))


def recipe(config: Config) -> dict:
    """What decides an extractor's weights, besides its manifest and seed."""
    config = instrument_config(config)
    classifier = {k: v for k, v in config.to_dict()["classifier"].items() if k not in _NOT_IN_RECIPE}
    return {"image_size": config.image_size, "kernels": config.kernels, "classifier": classifier}


def extractor_dir(out_dir, manifest, config: Config) -> Path:
    """`<out>/extractor/<key>`: key = sha256 of the manifest's bytes and the recipe (12 hex digits)."""
    h = hashlib.sha256(Path(manifest).read_bytes())
    h.update(json.dumps(recipe(config), sort_keys=True).encode())
    return Path(out_dir) / "extractor" / h.hexdigest()[:12]


def unit_images(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] (as `Splits` loads them) -> float32 [N, H, W, 1] in [0, 1], as the
    extractor (and every image-quality measurement) reads images."""
    return images[..., None].astype(np.float32) / 255.0


@dataclass
class Extractor:
    """A trained baseline network as (features, class probabilities) of images in [0, 1].

    `compiled`: run the network as one traced graph (the default) rather than op by op: the same
    function with float round-off differences near 1e-7, no larger than a fresh process's eager
    calls already show against a run's log; a tracking evaluation 1.11-1.19x faster on one CPU
    thread, with the same epochs selected (experiments/benchmarks/results/tracking_compiled.md)."""

    model: object  # keras.Model: image -> [features, probabilities]
    seed: int
    record: dict
    compiled: bool = True
    _forward: object = field(default=None, init=False, repr=False)

    def forward(self):
        """model(x, training=False), traced once for any batch size (eager when not `compiled`)."""
        def call(x):
            return self.model(x, training=False)

        if not self.compiled:
            return call
        if self._forward is None:
            import tensorflow as tf

            spec = tf.TensorSpec([None, *self.model.input.shape[1:]], tf.float32)
            self._forward = tf.function(call, input_signature=[spec], autograph=False)
        return self._forward

    def __call__(self, images: np.ndarray, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        forward = self.forward()
        feats, probs = [], []
        for s in range(0, len(images), batch_size):
            f, p = forward(np.asarray(images[s:s + batch_size], np.float32))
            feats.append(np.asarray(f, np.float64))
            probs.append(np.asarray(p, np.float64))
        return np.concatenate(feats), np.concatenate(probs)

    def features(self, images: np.ndarray) -> np.ndarray:
        return self(images)[0]


def ensure_extractor(config: Config, out_dir, manifest, seed: int = 0, log=print) -> Extractor:
    """The cached extractor of this manifest, recipe and seed; trained first if missing."""
    folder = extractor_dir(out_dir, manifest, config)
    record_path = folder / f"seed{seed}.json"
    if not record_path.exists():
        # Waits for another process (a shard) training this very extractor, then reuses it.
        with run_lock(folder, f".seed{seed}.lock", what=f"feature extractor seed {seed}", wait=True):
            if not record_path.exists():  # another process may have made it while we waited
                remove_stale_tmp(folder, prefix=f"seed{seed}.")
                remove_stale_tmp(folder / "weights", prefix=f"baseline__seed{seed}.")
                _train(config, folder, manifest, seed, log)
    return load_extractor(record_path)


def _train(config: Config, folder: Path, manifest, seed: int, log) -> None:
    from keras_cxr.classify.datasets import Splits
    from keras_cxr.pipeline.train_cell import train_classifier

    log(f"feature extractor: training ResNet18 seed {seed} on the real train images of {manifest} "
        f"(baseline recipe; cached in {folder})")
    splits = Splits.load(manifest, config.image_size)
    result = train_classifier("baseline", seed, instrument_config(config), splits, folder)
    record = {"seed": seed, "manifest": str(manifest), "recipe": recipe(config), "weights": result["weights"],
              "backbone": config.classifier.backbone, "best_epoch": result["best_epoch"],
              "best_val_accuracy": result["best_val_accuracy"], "test_metrics": result["metrics"],
              "train_s": result["timings_s"]["total"]}
    write_json(folder / f"seed{seed}.json", record)  # written last: its presence means "ready"


def share_extractors(src_out, dest_out) -> None:
    """Copies the cached extractors of `src_out` into `dest_out` (made once for a split, used by
    each of its runs' folders); the record goes last, since its presence means "ready". A record
    without its weights (a fresh clone holds only the committed records) is left behind: `dest_out`
    trains that seed itself."""
    import shutil

    for record in Path(src_out).glob("extractor/*/seed*.json"):
        target = Path(dest_out) / "extractor" / record.parent.name
        weights = record.parent / "weights" / f"baseline__seed{json.loads(record.read_text())['seed']}.weights.h5"
        if (target / record.name).exists() or not weights.exists():
            continue
        (target / "weights").mkdir(parents=True, exist_ok=True)
        shutil.copy2(weights, target / "weights" / weights.name)
        shutil.copy2(record, target / record.name)


def load_extractor(record_path) -> Extractor:
    import keras

    from keras_cxr.classify.backbones import build_classifier

    record = json.loads(Path(record_path).read_text())
    r = record["recipe"]
    net = build_classifier(image_size=r["image_size"], backbone_name=record["backbone"])
    net.model.load_weights(Path(record_path).parent / "weights" / f"baseline__seed{record['seed']}.weights.h5")
    model = keras.Model(net.model.input, [net.model.get_layer(net.feature_layer).output, net.model.output])
    return Extractor(model, int(record["seed"]), record)
