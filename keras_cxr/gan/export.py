"""SavedModel export of a generator for TF Serving, and `generate` from an exported one.

Layout `<models>/<name>/<version>/` with two signatures:
  serving_default(latent float32 [None, latent_dim][, label int32 [None]]) -> {"images"}
  generate(num_images int32 [], label int32 [], seed int64 []) -> {"images"}
`images` is float32 [None, H, W, 1] in [0, 1], clipped. `assets.extra/keras_cxr.json` records
what the generator is (kind, alpha, label it generates, image size, preset).
The SavedModel needs TensorFlow only: neither keras_cxr nor Keras to load or serve.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.grid import to_uint8
from keras_cxr.io_utils import atomic_path

GENERATE_CHUNK = 256


def images_from_generator_output(output, pixel_range: str = "0_1"):
    """tanh output -> images in [0, 1], clipped to the data range (FIDELITY: "Pixel range")."""
    if pixel_range == "-1_1":
        output = (output + 1.0) / 2.0
    return tf.clip_by_value(output, 0.0, 1.0)


class GeneratorServing(tf.Module):
    """The exported object: the generator plus its two serving functions."""

    def __init__(self, generator, latent_dim: int, conditional: bool, pixel_range: str, generated_label):
        super().__init__(name="keras_cxr_generator")
        self.generator = generator
        self.latent_dim = latent_dim
        self.conditional = conditional
        self.pixel_range = pixel_range
        self.generated_label = -1 if generated_label is None else int(generated_label)
        latent_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="latent")
        if conditional:
            self.serve = tf.function(self._serve_conditional, input_signature=[
                latent_spec, tf.TensorSpec([None], tf.int32, name="label")])
        else:
            self.serve = tf.function(self._serve, input_signature=[latent_spec])
        self.generate = tf.function(self._generate, input_signature=[
            tf.TensorSpec([], tf.int32, name="num_images"),
            tf.TensorSpec([], tf.int32, name="label"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ])

    def _images(self, latent, label=None):
        out = self.generator([latent, label] if self.conditional else latent, training=False)
        return {"images": images_from_generator_output(out, self.pixel_range)}

    def _serve(self, latent):
        return self._images(latent)

    def _serve_conditional(self, latent, label):
        tf.debugging.assert_less(label, 2, message="label must be 0 or 1")
        tf.debugging.assert_non_negative(label, message="label must be 0 or 1")
        return self._images(latent, label)

    def _generate(self, num_images, label, seed):
        tf.debugging.assert_non_negative(num_images, message="num_images must be >= 0")
        latent = tf.random.stateless_normal(
            tf.stack([num_images, self.latent_dim]), tf.stack([seed, tf.constant(0, tf.int64)]))
        if self.conditional:
            return self._serve_conditional(latent, tf.fill([num_images], label))
        tf.debugging.assert_equal(
            label, self.generated_label,
            message=f"this DCGAN generator was trained on label {self.generated_label} only")
        return self._images(latent)


def export_generator(generator, export_dir: str | os.PathLike, meta: dict) -> Path:
    """Writes the SavedModel atomically (temporary folder, then rename) and returns its path."""
    export_dir = Path(export_dir)
    module = GeneratorServing(generator, meta["latent_dim"], meta["kind"] == "cdcgan", meta["pixel_range"],
                              meta.get("generated_label"))
    with atomic_path(export_dir, is_dir=True) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve, "generate": module.generate})
        (tmp / "assets.extra").mkdir(exist_ok=True)
        (tmp / "assets.extra" / "keras_cxr.json").write_text(json.dumps(meta, indent=2) + "\n")
    return export_dir


def load_generator(path: str | os.PathLike):
    """Loads an exported generator; returns (loaded SavedModel, metadata dict)."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise KerasCXRError(f"not a SavedModel folder (no saved_model.pb): {path}")
    meta_path = path / "assets.extra" / "keras_cxr.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return tf.saved_model.load(str(path)), meta


def iter_generated(generate_fn, n: int, label: int, seed: int):
    """Yields float32 [m, H, W, 1] chunks (m <= 256) of n images from a `generate` signature.

    Chunk k uses seed + k * 2**32, so the first 256 images equal one call generate(n, label, seed).
    """
    for k, start in enumerate(range(0, n, GENERATE_CHUNK)):
        m = min(GENERATE_CHUNK, n - start)
        out = generate_fn(num_images=tf.constant(m, tf.int32), label=tf.constant(label, tf.int32),
                          seed=tf.constant(seed + (k << 32), tf.int64))
        yield out["images"].numpy()


def generate_images(path, n: int, label: int, seed: int) -> np.ndarray:
    """float32 [n, H, W, 1] in [0, 1] through the `generate` signature (see `iter_generated`)."""
    if n < 1:
        raise KerasCXRError(f"`n` must be >= 1. Received: n={n}")
    if label not in (0, 1):
        raise KerasCXRError(f"`label` must be 0 or 1. Received: label={label}")
    loaded, meta = load_generator(path)
    if meta.get("kind") == "dcgan" and label != meta.get("generated_label"):
        raise KerasCXRError(
            f"{path} is a DCGAN trained on label {meta.get('generated_label')} only. Received: label={label}")
    return np.concatenate(list(iter_generated(loaded.signatures["generate"], n, label, seed)))


def generate_to_folder(path, n: int, label: int, seed: int, out_dir) -> list[Path]:
    """Writes n generated PNGs (8-bit grayscale) to out_dir; returns their paths."""
    images = to_uint8(generate_images(path, n, label, seed))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, img in enumerate(images):
        f = out_dir / f"label{label}_seed{seed}_{i:05d}.png"
        with atomic_path(f) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
        files.append(f)
    return files
