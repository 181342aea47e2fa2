"""SavedModel export of a generator for TF Serving, and `generate` from an exported one.

Layout `<models>/<name>/<version>/` with two signatures:
  serving_default(latent float32 [None, latent_dim][, label int32 [None]]) -> {"images"}
  generate(num_images int32 [], label int32 [], seed int64 []) -> {"images"}
`images` is float32 [None, H, W, 1] in [0, 1], clipped. `assets.extra/keras_cxr.json` records
what the generator is (`keras_cxr.gan.record.GeneratorRecord`: kind, alpha, labels, image size,
preset, `max_images`, the exported epoch).

The archive is written by Keras' own `keras.export.ExportArchive`, which lists the generator's
variables on the saved object itself. A hand-made `tf.Module` holding a Keras 3 model saves
graphs whose variables TensorFlow's C++ loader (`saved_model_cli run`, TF Serving,
`tf.compat.v1` sessions) cannot find; only the forgiving TF2 Python loader ran those.
The SavedModel needs TensorFlow only: neither keras_cxr nor Keras to load or serve.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from keras_cxr.config import check_seed
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.grid import to_uint8
from keras_cxr.gan.record import GeneratorRecord
from keras_cxr.io_utils import atomic_path

GENERATE_CHUNK = 256  # `generate` runs the generator on at most this many latents at a time
# One `generate` call's ceiling (DEFAULT_MAX_IMAGES, 4,096): its output, 4,096 128x128 images, is
# 256 MiB of float32; the generator's activations stay those of one chunk whatever the request
# (docs/serving.md).
# The most latents one `serving_default` request may carry: one chunk, so that a request there
# peaks where one `generate` chunk does.
MAX_SERVING_BATCH = GENERATE_CHUNK
PROBE_IMAGES = 8  # images a generator makes when loaded, to check it before use
GENERATE_INPUTS = {"num_images": tf.int32, "label": tf.int32, "seed": tf.int64}


def images_from_generator_output(output, pixel_range: str = "0_1"):
    """tanh output -> images in [0, 1], clipped to the data range (FIDELITY: "Pixel range")."""
    if pixel_range == "-1_1":
        output = (output + 1.0) / 2.0
    return tf.clip_by_value(output, 0.0, 1.0)


def _after(value, *checks):
    """`value`, computed only after its checks pass: without the explicit dependency an assert may
    run after the op it guards (the embedding lookup, the latent allocation)."""
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(value)


def _in_chunks(images, latent, side: int, labels=None):
    """`images` run on GENERATE_CHUNK latents at a time, one chunk after the other, so a request's
    peak memory is one chunk's activations plus its output, whatever its size. A request of at
    most one chunk runs the generator once on all of it, as before chunking."""
    n = tf.shape(latent)[0]
    count = (n + GENERATE_CHUNK - 1) // GENERATE_CHUNK
    parts = tf.TensorArray(tf.float32, size=count, infer_shape=False, element_shape=[None, side, side, 1])

    def step(k, parts):
        window = slice(k * GENERATE_CHUNK, tf.minimum((k + 1) * GENERATE_CHUNK, n))
        out = images(latent[window], None if labels is None else labels[window])["images"]
        return k + 1, parts.write(k, tf.cast(out, tf.float32))

    _, parts = tf.while_loop(lambda k, _: k < count, step, (tf.constant(0), parts), parallel_iterations=1)
    return {"images": parts.concat()}


def serving_functions(generator, record: GeneratorRecord) -> dict:
    """{signature name: (function, input signature)} of an exported generator.

    Bad requests fail inside the graph (TF Serving answers them with an error, never with
    NaN images or an unbounded allocation): a non-finite latent, a label outside {0, 1} (or, for
    a DCGAN, not the one it was trained on), a negative `num_images` or one over `max_images`.
    """
    latent_dim, pixel_range = record.latent_dim, record.pixel_range
    conditional, max_images = record.conditional, record.max_images
    generated_label = -1 if record.generated_label is None else int(record.generated_label)

    def images(latent, label=None):
        latent = tf.debugging.check_numerics(latent, "latent must be finite (no NaN or inf)")
        if conditional:
            label = _after(label, tf.debugging.assert_non_negative(label, message="label must be 0 or 1"),
                            tf.debugging.assert_less(label, 2, message="label must be 0 or 1"))
            out = generator([latent, label], training=False)
        else:
            out = generator(latent, training=False)
        return {"images": images_from_generator_output(out, pixel_range)}

    def generate(num_images, label, seed):
        num_images = _after(
            num_images, tf.debugging.assert_non_negative(num_images, message="num_images must be >= 0"),
            tf.debugging.assert_less_equal(num_images, max_images,
                                           message=f"num_images must be <= max_images={max_images}"))
        latent = tf.random.stateless_normal(
            tf.stack([num_images, latent_dim]), tf.stack([seed, tf.constant(0, tf.int64)]))
        if conditional:
            return _in_chunks(images, latent, record.image_size, tf.fill([num_images], label))
        return _in_chunks(images, _after(latent, tf.debugging.assert_equal(
            label, generated_label, message=f"this DCGAN generator was trained on label {generated_label} only")),
                          record.image_size)

    def serve(latent, label=None):
        latent = _after(latent, tf.debugging.assert_less_equal(
            tf.shape(latent)[0], MAX_SERVING_BATCH,
            message=f"serving_default takes at most {MAX_SERVING_BATCH} latents a request (use `generate` "
                    f"for more, up to max_images={max_images})"))
        return images(latent, label) if conditional else images(latent)

    latent_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="latent")
    serve_spec = [latent_spec, tf.TensorSpec([None], tf.int32, name="label")] if conditional else [latent_spec]
    return {
        "serving_default": (serve, serve_spec),
        "generate": (generate, [tf.TensorSpec([], tf.int32, name="num_images"),
                                tf.TensorSpec([], tf.int32, name="label"),
                                tf.TensorSpec([], tf.int64, name="seed")]),
    }


def export_generator(generator, export_dir: str | os.PathLike, record: GeneratorRecord) -> Path:
    """Writes the SavedModel atomically (temporary folder, then rename), `record` as its
    `assets.extra/keras_cxr.json`, and returns its path."""
    export_dir = Path(export_dir)
    archive = keras.export.ExportArchive()
    # No `track(generator)`: the endpoints list the variables they capture, and tracking the
    # Keras variables as well would store every weight twice (measured: 2x the variables file).
    for name, (fn, spec) in serving_functions(generator, record).items():
        archive.add_endpoint(name, fn, input_signature=spec)
    with atomic_path(export_dir, is_dir=True) as tmp:
        archive.write_out(str(tmp), verbose=False)
        record.write(tmp)
    return export_dir


def load_generator(path: str | os.PathLike):
    """Loads an exported generator; returns (loaded SavedModel, its GeneratorRecord).

    Only keras_cxr's generators load: the metadata must name what the generator is, and the
    `generate` signature must take keras_cxr's inputs and return `images`.
    """
    path = Path(path)
    pb = path / "saved_model.pb"
    if not pb.is_file():
        raise KerasCXRError(f"not a SavedModel folder (no saved_model.pb file): {path}")
    try:
        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["generate"]
    except Exception as exc:  # protobuf DecodeError, OSError, KeyError...: all mean "not our SavedModel"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KerasCXRError(f"cannot load the generator SavedModel {pb}: {first[:300]}") from None
    record = GeneratorRecord.read(path)
    inputs = {k: v.dtype for k, v in fn.structured_input_signature[1].items()}
    if inputs != GENERATE_INPUTS or "images" not in fn.structured_outputs:
        got = ", ".join(f"{k} {v.name}" for k, v in inputs.items())
        raise KerasCXRError(f"{path}: its `generate` signature takes ({got}) and returns "
                            f"{sorted(fn.structured_outputs)}; a keras_cxr generator takes (num_images int32, "
                            f"label int32, seed int64) and returns images")
    return loaded, record


def probe_generator(fn, record: GeneratorRecord, label: int, path) -> None:
    """Makes PROBE_IMAGES images and refuses a generator whose output is not finite, not in
    [0, 1], not [n, S, S, 1] at its recorded image size, or one flat grey."""
    side = record.image_size
    try:
        out = next(iter_generated(fn, PROBE_IMAGES, label, 0))
    except tf.errors.OpError as exc:
        raise KerasCXRError(f"generator {path} fails on a probe request: {exc.message.splitlines()[0][:300]}") from None
    problem = None
    if out.shape != (PROBE_IMAGES, side, side, 1):
        problem = f"makes images of shape {out.shape[1:]}, not ({side}, {side}, 1) (its recorded image size, grayscale)"
    elif not np.isfinite(out).all():
        problem = "makes non-finite pixels (NaN or inf)"
    elif out.min() < 0 or out.max() > 1:
        problem = f"makes pixels outside [0, 1] (min {out.min():.3g}, max {out.max():.3g})"
    elif all(np.ptp(img) < 1 / 255 for img in out):
        problem = "makes flat images (one grey value each)"
    if problem:
        raise KerasCXRError(f"generator {path} {problem} for label {label}: it is not used")


def iter_generated(generate_fn, n: int, label: int, seed: int, chunk: int = GENERATE_CHUNK):
    """Yields float32 [m, H, W, 1] chunks (m <= `chunk`) of n images from a `generate` signature.

    Chunk k uses seed + k * 2**32, so with the default chunk the first 256 images equal one
    call generate(n, label, seed).
    """
    for k, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        out = generate_fn(num_images=tf.constant(m, tf.int32), label=tf.constant(label, tf.int32),
                          seed=tf.constant(seed + (k << 32), tf.int64))
        yield out["images"].numpy()


def _checked(path, n: int, label: int, seed: int):
    """Loads the generator after checking a request against it; returns (generate fn, record)."""
    if n < 1:
        raise KerasCXRError(f"`n` must be >= 1. Received: n={n}")
    if label not in (0, 1):
        raise KerasCXRError(f"`label` must be 0 or 1. Received: label={label}")
    check_seed("seed", seed)
    return open_generator(path, label)


def open_generator(path, label: int):
    """Loads and probes a generator for `label`; returns (its generate function, its record)."""
    loaded, record = load_generator(path)
    if not record.conditional and label != record.generated_label:
        raise KerasCXRError(
            f"{path} is a DCGAN trained on label {record.generated_label} only. Received: label={label}")
    fn = loaded.signatures["generate"]
    probe_generator(fn, record, label, path)
    return fn, record


def _chunk(record: GeneratorRecord) -> int:
    return min(GENERATE_CHUNK, record.max_images)


def generate_images(path, n: int, label: int, seed: int) -> np.ndarray:
    """float32 [n, H, W, 1] in [0, 1] through the `generate` signature (see `iter_generated`)."""
    fn, record = _checked(path, n, label, seed)
    return generate_with(fn, record, n, label, seed)


def generate_with(fn, record: GeneratorRecord, n: int, label: int, seed: int) -> np.ndarray:
    """As `generate_images`, from a generator already opened (`open_generator`): one load for
    several requests."""
    return np.concatenate(list(iter_generated(fn, n, label, seed, _chunk(record))))


def generate_to_folder(path, n: int, label: int, seed: int, out_dir, progress: bool = True) -> int:
    """Streams n generated PNGs (8-bit grayscale) to out_dir, one chunk in memory at a time.

    Files are `label{L}_seed{S}_{i:05d}.png`, each written atomically; returns how many.
    """
    fn, record = _checked(path, n, label, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = keras.utils.Progbar(n, unit_name="image") if progress and n > _chunk(record) else None
    i = 0
    for chunk in iter_generated(fn, n, label, seed, _chunk(record)):
        for img in to_uint8(chunk):
            with atomic_path(out_dir / f"label{label}_seed{seed}_{i:05d}.png") as tmp:
                Image.fromarray(img).save(tmp, format="PNG")
            i += 1
        if bar is not None:
            bar.update(i)
    return i
