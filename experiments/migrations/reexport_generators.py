"""Re-export generators written before the ExportArchive fix, from their own weights.

Generators exported through the old hand-made `tf.Module` load in TensorFlow's Python loader
but not in its C++ loader (`saved_model_cli run`, TF Serving: "Could not find variable ...").
Their weights are intact, so no retraining is needed: this reads each generator's variables
through the Python loader, puts them into a freshly built Keras generator of the same
architecture (the run's `config.json`), checks that both give the same images for the same
latents and labels, and exports it again with `keras_cxr.gan.export.export_generator`.

    python experiments/migrations/reexport_generators.py experiments/results/quick

Folder layout as `train-gan` writes it: `<results>/<run>/config.json` and
`<results>/models/<run>/1/`. A generator already exported by `keras.export.ExportArchive` is
left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cxr.gan.export import export_generator  # noqa: E402
from keras_cxr.gan.generator import build_generator  # noqa: E402
from keras_cxr.gan.record import GeneratorRecord  # noqa: E402


def reexport(run_dir: Path, export_dir: Path) -> str:
    meta = json.loads((export_dir / "assets.extra" / "keras_cxr.json").read_text())
    old = tf.saved_model.load(str(export_dir))
    if not hasattr(old, "generator"):  # the old hand-made module kept the Keras model as `.generator`
        return "already in the current format"
    preset = json.loads((run_dir / "config.json").read_text())["preset"]
    g = preset["gan"]
    conditional = meta["kind"] == "cdcgan"
    old_vars = {v.name.split(":")[0]: v.numpy() for v in old.signatures["serving_default"].variables}
    gen = build_generator(preset["image_size"], g["latent_dim"], g["filters"], conditional,
                          embedding_dim=g["embedding_dim"], upsample=g.get("upsample", "transpose"))
    if {w.path for w in gen.weights} != set(old_vars):
        raise SystemExit(f"{export_dir}: variables {sorted(old_vars)} do not match the generator "
                         f"{sorted(w.path for w in gen.weights)}")
    for w in gen.weights:
        w.assign(old_vars[w.path])
    latent = tf.random.stateless_normal([8, g["latent_dim"]], [1, 2])
    labels = tf.constant([0, 1] * 4, tf.int32)
    args = {"latent": latent, "label": labels} if conditional else {"latent": latent}
    before = old.signatures["serving_default"](**args)["images"].numpy()
    export_generator(gen, export_dir, GeneratorRecord.from_json(meta))  # older fields filled in as `read` does
    after = tf.saved_model.load(str(export_dir)).signatures["serving_default"](**args)["images"].numpy()
    diff = float(np.abs(before - after).max())
    if diff > 1e-5:
        raise SystemExit(f"{export_dir}: re-exported images differ from the old ones by {diff}")
    return f"re-exported; max |old - new| over 8 images = {diff:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="folder with <run>/config.json and models/<run>/1/")
    results = Path(parser.parse_args().results)
    for export_dir in sorted((results / "models").glob("*/1")):
        name = export_dir.parent.name
        print(f"{name}: {reexport(results / name, export_dir)}", flush=True)


if __name__ == "__main__":
    main()
