"""Exported generators in the forms TF Serving users rely on: TensorFlow's C++ SavedModel loader
(`saved_model_cli run`, the loader TF Serving uses) and a `tf.compat.v1` session in a process that
imports only TensorFlow, fed with docs/serving.md's REST request bodies. Both must equal the in-process
Keras generator."""

import json
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_cxr.gan.export import export_generator, images_from_generator_output
from keras_cxr.gan.generator import build_generator
from keras_cxr.gan.record import GeneratorRecord
from tests.conftest import REPO

pytestmark = pytest.mark.slow

LATENT_DIM = 100  # every preset's; docs/serving.md's request bodies use it


def _saved_model_cli() -> str:
    cli = REPO / ".venv" / "bin" / "saved_model_cli"
    found = str(cli) if cli.exists() else shutil.which("saved_model_cli")
    assert found, "saved_model_cli (installed with tensorflow) not found"
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny DCGAN (trained on label 1) and cDCGAN generator with seeded random weights, exported."""
    import keras

    root = tmp_path_factory.mktemp("models")
    out = {}
    for kind in ("dcgan", "cdcgan"):
        keras.utils.set_random_seed(3)
        gen = build_generator(32, LATENT_DIM, 8, conditional=kind == "cdcgan", embedding_dim=8)
        meta = {"name": kind, "kind": kind, "alpha": 0.25 if kind == "cdcgan" else None,
                "generated_label": 1 if kind == "dcgan" else None, "image_size": 32,
                "latent_dim": LATENT_DIM, "pixel_range": "0_1", "preset": "tiny", "max_images": 64,
                "class_names": ["NORMAL", "PNEUMONIA"], "minority_label": 1 if kind == "dcgan" else 0}
        path = export_generator(gen, root / kind / "1", GeneratorRecord.from_json(meta))
        out[kind] = (gen, path)
    return out


def _expected(gen, kind, latent, labels):
    out = gen([latent, labels] if kind == "cdcgan" else latent, training=False)
    return images_from_generator_output(out, "0_1").numpy()


def _expected_generate(gen, kind, n, label, seed):
    latent = tf.random.stateless_normal([n, LATENT_DIM], tf.constant([seed, 0], tf.int64))
    return _expected(gen, kind, latent, tf.fill([n], label))


def _rest_bodies():
    """docs/serving.md's TF Serving request bodies: the Python block after `<!-- rest-request -->`, run."""
    page = (REPO / "docs" / "serving.md").read_text()
    block = re.search(r"<!-- rest-request -->\s*```python\n(.*?)```", page, re.S)
    assert block, "docs/serving.md lost its REST request block (<!-- rest-request -->)"
    scope: dict = {}
    exec(block.group(1), scope)  # noqa: S102 - our own documentation
    return scope


@pytest.mark.parametrize("kind", ["dcgan", "cdcgan"])
def test_saved_model_cli_runs_both_signatures(tmp_path, exported, kind):
    gen, path = exported[kind]
    cli = _saved_model_cli()
    latent = np.random.default_rng(0).standard_normal((3, LATENT_DIM)).astype(np.float32)
    labels = np.array([0, 1, 1], np.int32)
    np.save(tmp_path / "latent.npy", latent)
    np.save(tmp_path / "label.npy", labels)
    inputs = f"latent={tmp_path / 'latent.npy'}" + (f";label={tmp_path / 'label.npy'}" if kind == "cdcgan" else "")
    calls = {
        "generate": (["--input_exprs", "num_images=5;label=1;seed=7"], _expected_generate(gen, kind, 5, 1, 7)),
        "serving_default": (["--inputs", inputs], _expected(gen, kind, latent, labels)),
    }
    for signature, (args, expected) in calls.items():
        out = tmp_path / signature
        proc = subprocess.run([cli, "run", "--dir", str(path), "--tag_set", "serve", "--signature_def", signature,
                               *args, "--outdir", str(out)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        np.testing.assert_allclose(np.load(out / "images.npy"), expected, atol=1e-5, err_msg=signature)


SESSION_LOADER = textwrap.dedent("""
    # TF1-style serving: a graph session over the SavedModel, fed by tensor names from the
    # signature defs, the way TF Serving runs a request. Imports TensorFlow only.
    import json, sys
    import numpy as np
    import tensorflow as tf

    path, requests_file, out_dir = sys.argv[1:4]
    answers = []
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        for i, request in enumerate(json.load(open(requests_file))):
            sig = meta_graph.signature_def[request["signature_name"]]
            feeds = {sig.inputs[k].name: np.asarray(v, dtype=tf.as_dtype(sig.inputs[k].dtype).as_numpy_dtype)
                     for k, v in request["inputs"].items()}
            try:
                images = sess.run(sig.outputs["images"].name, feed_dict=feeds)
            except tf.errors.InvalidArgumentError as exc:
                answers.append({"error": exc.message})
                continue
            np.save(f"{out_dir}/{i}.npy", images)
            answers.append({"shape": list(images.shape)})
    assert not [m for m in sys.modules if m.startswith("keras_cxr")], "keras_cxr was imported"
    print(json.dumps(answers))
""")


def _session_run(tmp_path, path, requests):
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    (tmp_path / "loader.py").write_text(SESSION_LOADER)
    proc = subprocess.run([sys.executable, str(tmp_path / "loader.py"), str(path), str(tmp_path / "requests.json"),
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["dcgan", "cdcgan"])
def test_session_loader_serves_the_readme_requests(tmp_path, exported, kind):
    gen, path = exported[kind]
    bodies = _rest_bodies()
    generate, serve = bodies["generate"], bodies["serve_cdcgan" if kind == "cdcgan" else "serve_dcgan"]
    bad = [
        {"signature_name": "generate", "inputs": {"num_images": 65, "label": 1, "seed": 0}},  # over max_images=64
        {"signature_name": "serving_default",
         "inputs": {**serve["inputs"], "latent": [[float("nan")] * LATENT_DIM] * len(serve["inputs"]["latent"])}},
    ]
    if kind == "dcgan":
        bad.append({"signature_name": "generate", "inputs": {"num_images": 2, "label": 0, "seed": 0}})
    else:
        bad.append({"signature_name": "serving_default", "inputs": {**serve["inputs"], "label": [2, 0]}})
    answers = _session_run(tmp_path, path, [generate, serve, *bad])

    inputs = generate["inputs"]
    expected = _expected_generate(gen, kind, inputs["num_images"], inputs["label"], inputs["seed"])
    np.testing.assert_allclose(np.load(tmp_path / "0.npy"), expected, atol=1e-5)
    latent = np.asarray(serve["inputs"]["latent"], np.float32)
    labels = np.asarray(serve["inputs"].get("label", [1] * len(latent)), np.int32)
    np.testing.assert_allclose(np.load(tmp_path / "1.npy"), _expected(gen, kind, latent, labels), atol=1e-5)

    errors = [a.get("error", "") for a in answers[2:]]
    assert "num_images must be <= max_images=64" in errors[0]
    assert "latent must be finite" in errors[1]
    assert ("trained on label 1 only" if kind == "dcgan" else "label must be 0 or 1") in errors[2]


def test_export_keeps_layout_and_metadata(exported):
    _, path = exported["cdcgan"]
    assert (path / "saved_model.pb").is_file() and (path / "variables" / "variables.index").is_file()
    assert path.parent.name == "cdcgan" and path.name == "1"  # TF Serving: <model>/<version>/
    meta = json.loads((path / "assets.extra" / "keras_cxr.json").read_text())
    assert meta["max_images"] == 64 and meta["kind"] == "cdcgan" and meta["alpha"] == 0.25
    assert not list(path.parent.glob(".*.tmp"))


def test_generate_cli_streams_in_chunks_and_checks_requests(tmp_path, exported, capsys):
    from keras_cxr.pipeline.cli import main
    from keras_cxr.gan.export import generate_images
    from PIL import Image

    _, path = exported["cdcgan"]
    out = tmp_path / "pngs"
    # max_images=64: 150 images take three `generate` calls, never more than 64 at once.
    assert main(["generate", "--generator", str(path), "--n", "150", "--label", "0", "--seed", "4",
                 "--out", str(out)]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 150 and not list(out.glob(".*.tmp"))
    direct = generate_images(path, 150, 0, 4)
    for i in (0, 63, 64, 149):
        png = np.asarray(Image.open(out / f"label0_seed4_{i:05d}.png"), np.float32) / 255.0
        np.testing.assert_allclose(png, direct[i, ..., 0], atol=0.5 / 255 + 1e-6)
    capsys.readouterr()
    # No --label: the generator's minority class (this cDCGAN's data had NORMAL as the minority).
    assert main(["generate", "--generator", str(path), "--n", "2", "--out", str(tmp_path / "default")]) == 0
    assert "label: 0 (NORMAL, the generator's minority class)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "default").glob("*.png")) == ["label0_seed0_00000.png",
                                                                           "label0_seed0_00001.png"]
    assert main(["generate", "--generator", str(path), "--n", "0", "--out", str(out)]) == 2
    assert "`n` must be >= 1" in capsys.readouterr().err


_PEAK_RSS = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stderr.write(p.stderr[-2000:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
             "sys.exit(p.returncode)")


def _peak_rss_mib(cli, path, n, out) -> float:
    """Peak resident memory of one `saved_model_cli run` of generate(n), in its own process."""
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, cli, "run", "--dir", str(path), "--tag_set", "serve",
                           "--signature_def", "generate", "--input_exprs", f"num_images={n};label=1;seed=0",
                           "--outdir", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1]) / 1024


def test_generate_at_max_images_peaks_no_higher_than_one_chunk(tmp_path):
    """`generate` runs the generator chunk by chunk inside the graph: a request for max_images
    peaks where one chunk does (before: 4,096 quick-preset images took 10.6 GB, 13x one chunk)."""
    import keras

    from keras_cxr.gan.export import GENERATE_CHUNK
    from keras_cxr.gan.record import DEFAULT_MAX_IMAGES

    keras.utils.set_random_seed(0)
    gen = build_generator(32, LATENT_DIM, 64, conditional=True, embedding_dim=8)  # the quick preset's width
    meta = {"name": "cdcgan", "kind": "cdcgan", "alpha": 0.5, "generated_label": None, "image_size": 32,
            "latent_dim": LATENT_DIM, "pixel_range": "0_1", "preset": "tiny", "class_names": ["NORMAL", "PNEUMONIA"],
            "minority_label": 1}
    path = export_generator(gen, tmp_path / "g" / "1", GeneratorRecord.from_json(meta))
    cli = _saved_model_cli()
    one_chunk = _peak_rss_mib(cli, path, GENERATE_CHUNK, tmp_path / "a")
    most = _peak_rss_mib(cli, path, DEFAULT_MAX_IMAGES, tmp_path / "b")
    assert np.load(tmp_path / "b" / "images.npy").shape == (DEFAULT_MAX_IMAGES, 32, 32, 1)
    # What may grow with the request is the output (16 MiB of float32 here) and its copies: the
    # loop's TensorArray, the stacked result, saved_model_cli's numpy array and .npy write, plus
    # the allocator's pooling: measured +1 MiB on an Intel Xeon host, +86 MiB on an AVX2-only AMD
    # EPYC (2026-12-01: 900 MiB at 256 images, 945 / 951 / 986 at 1,024 / 2,048 / 4,096). The
    # generator's activations must not grow: unchunked, this request took 13x one chunk.
    output_mib = DEFAULT_MAX_IMAGES * 32 * 32 * 4 / 2**20
    assert most <= one_chunk + 64 + 4 * output_mib, \
        f"generate({DEFAULT_MAX_IMAGES}) peaked at {most:.0f} MiB, one chunk at {one_chunk:.0f}"
