"""A whole GAN run on tiny settings: resume, refusal, divergence, export, serving, scale-out."""

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from keras_cxr.config import load_preset
from keras_cxr.pipeline.cli import main
from keras_cxr.pipeline.gan_run import GANDivergedError, train_gan
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _final_checkpoint(run_dir):
    ckpt = sorted((run_dir / "checkpoints").glob("epoch-*.npz"))[-1]
    with np.load(ckpt) as z:
        return ckpt.name, {k: z[k] for k in z.files}


def test_resume_matches_uninterrupted_run(tmp_path, tiny_data):
    # With the state a step can carry beyond G, D and Adam: the moving average of G and the
    # label gates of transitional conditioning (their schedule: tests/test_transition.py).
    config = load_preset("tiny", ["gan.cdcgan_epochs=3", "gan.ema=0.9", "gan.transition=[1,2]"])
    full = train_gan("cdcgan", config, tmp_path / "full", alpha=0.25, manifest=tiny_data, verbose=0)
    part = train_gan("cdcgan", config, tmp_path / "cut", alpha=0.25, manifest=tiny_data, verbose=0, max_epochs=1)
    assert part["epochs"] == 1 and not (tmp_path / "cut" / "cdcgan_a025" / "done.json").exists()
    resumed = train_gan("cdcgan", config, tmp_path / "cut", alpha=0.25, manifest=tiny_data, verbose=0)
    assert full["epochs"] == resumed["epochs"] == 3
    name_a, a = _final_checkpoint(tmp_path / "full" / "cdcgan_a025")
    name_b, b = _final_checkpoint(tmp_path / "cut" / "cdcgan_a025")
    assert name_a == name_b == "epoch-0003.npz"
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    with open(tmp_path / "cut" / "cdcgan_a025" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    # Epoch means of the label weight: 0 in epoch 1, k / S for k = 1..S over the S steps of epoch 2, then 1;
    # every gate (G, D, the average) ends at 1, so the export is the fully conditional generator.
    steps = len([r for r in csv.DictReader(open(tiny_data)) if r["split"] == "train"]) // config.gan.batch_size
    np.testing.assert_allclose([float(r["label_weight"]) for r in rows], [0, (steps + 1) / (2 * steps), 1], rtol=1e-5)
    gates = {k.split("/")[0] for k in a if a[k].shape == () and k != "epoch" and a[k] == 1.0}
    assert gates == {"g", "d", "g_ema"}, gates
    run = tmp_path / "full" / "cdcgan_a025"
    assert {p.name for p in (run / "samples").iterdir()} >= {"epoch-0003_label0.png", "epoch-0003_label1.png"}
    assert len(list((run / "checkpoints").glob("*.npz"))) == 2  # keep_checkpoints
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))

    # A finished run is not retrained.
    again = train_gan("cdcgan", config, tmp_path / "full", alpha=0.25, manifest=tiny_data, verbose=0)
    assert again == json.loads((run / "done.json").read_text())


def test_rerun_with_other_settings_is_refused(tmp_path, tiny_data):
    train_gan("dcgan", load_preset("tiny", ["gan.dcgan_epochs=1"]), tmp_path, manifest=tiny_data, verbose=0)
    with pytest.raises(Exception, match=r"was started with other data or settings \(preset.gan.dcgan_epochs: 1 -> 2\)"):
        train_gan("dcgan", load_preset("tiny", ["gan.dcgan_epochs=2"]), tmp_path, manifest=tiny_data, verbose=0)


def test_resume_may_change_only_settings_that_leave_the_weights_alone(tmp_path, tiny_data):
    # XLA, the kernels, how many checkpoints are kept, the sample grid, the divergence threshold
    # and the preset's name do not change what is trained: a run may resume with other values.
    train_gan("dcgan", load_preset("tiny", ["gan.dcgan_epochs=2", "gan.jit_compile=true"]), tmp_path,
              manifest=tiny_data, verbose=0, max_epochs=1)
    # A run directory from before `gan.precision` existed: the missing key counts at its default.
    config_path = tmp_path / "dcgan" / "config.json"
    recorded = json.loads(config_path.read_text())
    del recorded["preset"]["gan"]["precision"]
    config_path.write_text(json.dumps(recorded))
    for other in ("gan.precision=mixed_bfloat16", "gan.learning_rate=0.001", "gan.seed=1"):
        key = other.split("=")[0]
        with pytest.raises(Exception, match=f"was started with other data or settings \\(preset.{key}: "):
            train_gan("dcgan", load_preset("tiny", ["gan.dcgan_epochs=2", other]), tmp_path, manifest=tiny_data, verbose=0)
    resume = ["gan.dcgan_epochs=2", "gan.jit_compile=false", "kernels=stock", "gan.keep_checkpoints=1",
              "gan.sample_grid=2", "gan.max_loss=500", "name=my_tiny"]
    done = train_gan("dcgan", load_preset("tiny", resume), tmp_path, manifest=tiny_data, verbose=0)
    assert done["epochs"] == 2
    assert [p.name for p in (tmp_path / "dcgan" / "checkpoints").iterdir()] == ["epoch-0002.npz"]


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_data):
    config = load_preset("tiny", ["gan.cdcgan_epochs=3"])
    train_gan("cdcgan", config, tmp_path, manifest=tiny_data, verbose=0, max_epochs=1)
    # Poison the generator's output layer in the saved checkpoint: the next epoch's losses are NaN.
    ckpt = tmp_path / "cdcgan_a050" / "checkpoints" / "epoch-0001.npz"
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    g_keys = sorted((k for k in arrays if k.startswith("g/")), key=lambda k: int(k.split("/")[1]))
    arrays[g_keys[-2]] = np.full_like(arrays[g_keys[-2]], np.nan)
    np.savez(ckpt, **arrays)
    with pytest.raises(GANDivergedError, match=r"diverged at epoch 2, step 1 .*last good checkpoint: .*epoch-0001.npz"):
        train_gan("cdcgan", config, tmp_path, manifest=tiny_data, verbose=0)
    assert [p.name for p in (tmp_path / "cdcgan_a050" / "checkpoints").glob("*.npz")] == ["epoch-0001.npz"]


def test_finite_blow_up_is_divergence_too(tmp_path, tiny_data):
    # Any real loss exceeds a bound of 1e-3: the run must stop at the first step, as it would
    # when D's logits explode (losses in the thousands, never NaN).
    config = load_preset("tiny", ["gan.max_loss=0.001"])
    with pytest.raises(GANDivergedError, match=r"diverged at epoch 1, step 1 .*last good checkpoint: none"):
        train_gan("cdcgan", config, tmp_path, manifest=tiny_data, verbose=0)
    assert not (tmp_path / "cdcgan_a050" / "done.json").exists()
    assert not (tmp_path / "models").exists()


SERVE_CHECK = textwrap.dedent("""
    import sys, json
    import numpy as np
    import tensorflow as tf
    m = tf.saved_model.load(sys.argv[1])
    assert not any(k.split(".")[0] == "keras_cxr" for k in sys.modules)
    serve, gen = m.signatures["serving_default"], m.signatures["generate"]
    kwargs = {"latent": tf.random.normal([5, 100])}
    if "label" in serve.structured_input_signature[1]:
        kwargs["label"] = tf.constant([0, 1, 1, 0, 1], tf.int32)
    a = serve(**kwargs)["images"].numpy()
    b = gen(num_images=tf.constant(7), label=tf.constant(1), seed=tf.constant(3, tf.int64))["images"].numpy()
    c = gen(num_images=tf.constant(7), label=tf.constant(1), seed=tf.constant(3, tf.int64))["images"].numpy()
    print(json.dumps({"a": list(a.shape), "b": list(b.shape), "min": float(min(a.min(), b.min())),
                      "max": float(max(a.max(), b.max())), "repeatable": bool(np.array_equal(b, c))}))
""")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """One finished 1-epoch run per kind (cDCGAN at alpha 0.75), shared by the tests that only
    read a run's checkpoint and export."""
    out = tmp_path_factory.mktemp("trained")
    config = load_preset("tiny", ["gan.dcgan_epochs=1", "gan.cdcgan_epochs=1"])
    return {"dcgan": train_gan("dcgan", config, out, manifest=tiny_data, verbose=0),
            "cdcgan": train_gan("cdcgan", config, out, alpha=0.75, manifest=tiny_data, verbose=0)}


@pytest.mark.parametrize("kind", ["dcgan", "cdcgan"])
def test_export_serves_in_a_tensorflow_only_process(tmp_path, trained, kind):
    export = trained[kind]["export_dir"]
    script = tmp_path / "serve_check.py"
    script.write_text(SERVE_CHECK)
    proc = subprocess.run([sys.executable, str(script), export], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["a"] == [5, 32, 32, 1] and out["b"] == [7, 32, 32, 1]
    assert 0.0 <= out["min"] and out["max"] <= 1.0 and out["repeatable"]

    cli = REPO / ".venv" / "bin" / "saved_model_cli"
    cli = str(cli) if cli.exists() else "saved_model_cli"
    shown = subprocess.run([cli, "show", "--all", "--dir", export], capture_output=True, text=True).stdout
    assert "signature_def['serving_default']" in shown and "signature_def['generate']" in shown
    assert "inputs['latent']" in shown and "outputs['images']" in shown
    assert ("inputs['label']" in shown.split("signature_def['serving_default']")[1]) == (kind == "cdcgan")


def test_in_process_generator_equals_served_images(trained):
    import tensorflow as tf

    from keras_cxr.gan.export import load_generator
    from keras_cxr.pipeline.run_folder import load_checkpoint
    from keras_cxr.gan.train import build_gan

    result = trained["cdcgan"]
    gan = build_gan("cdcgan", load_preset("tiny"), 0.75)
    load_checkpoint(gan, Path(result["run_dir"]) / "checkpoints" / "epoch-0001.npz")
    latent = tf.random.stateless_normal([6, 100], [1, 2])
    labels = tf.constant([0, 1, 0, 1, 1, 1], tf.int32)
    expected = np.clip(gan.generator([latent, labels]).numpy(), 0, 1)
    loaded, record = load_generator(result["export_dir"])
    served = loaded.signatures["serving_default"](latent=latent, label=labels)["images"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert record.alpha == 0.75 and record.image_size == 32


def test_generate_cli(tmp_path, trained, capsys):
    result = trained["dcgan"]
    out = tmp_path / "pngs"
    assert main(["generate", "--generator", result["export_dir"], "--n", "300", "--label", "1", "--out", str(out)]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 300
    from PIL import Image

    assert Image.open(files[0]).size == (32, 32) and Image.open(files[0]).mode == "L"
    assert main(["generate", "--generator", result["export_dir"], "--n", "2", "--label", "0", "--out", str(out)]) == 2
    assert "trained on label 1 only" in capsys.readouterr().err
    assert main(["generate", "--generator", str(tmp_path / "missing"), "--n", "2", "--out", str(out)]) == 2


MIRRORED = textwrap.dedent("""
    import sys, json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_cxr.config import load_preset
    from keras_cxr.pipeline.gan_run import train_gan
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    config = load_preset("tiny", ["gan.cdcgan_epochs=2"])
    r = train_gan("cdcgan", config, sys.argv[2], manifest=sys.argv[1], verbose=0, strategy=strategy)
    # The issue 23 settings that add state to a step: the moving average, spectral norm's u and
    # the label gates of a transition (set in the replicas' step).
    extra = load_preset("tiny", ["gan.cdcgan_epochs=2", "gan.ema=0.9", "gan.spectral_norm=true",
                                 "gan.discriminator_head=projection", "gan.transition=[1,2]"])
    train_gan("cdcgan", extra, sys.argv[2] + "_recipe", manifest=sys.argv[1], verbose=0, strategy=strategy)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, **r}))
""")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, tiny_data):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    proc = subprocess.run([sys.executable, str(script), str(tiny_data), str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and out["epochs"] == 2
    for out in ("out", "out_recipe"):
        rows = list(csv.DictReader(open(tmp_path / out / "cdcgan_a050" / "log.csv")))
        assert len(rows) == 2 and all(np.isfinite(float(r["g_loss"])) for r in rows)
    # The replicas set the label gates: 0 through epoch 1, then rising to 1 at the run's last step.
    weights = [float(r["label_weight"]) for r in rows]
    assert weights[0] == 0 and 0.5 < weights[1] < 1, weights


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_run_trains_and_exports_float32(tmp_path, tiny_data, precision):
    import keras
    import tensorflow as tf

    from keras_cxr.gan.export import load_generator
    from keras_cxr.gan.train import build_gan

    config = load_preset("tiny", ["gan.cdcgan_epochs=2", f"gan.precision={precision}"])
    gan = build_gan("cdcgan", config, 0.5)
    assert gan.generator.get_layer("up1_conv_transpose").compute_dtype == precision.split("_")[1]
    assert gan.generator.get_layer("up1_conv_transpose").kernel.dtype == "float32"  # variables stay float32
    assert gan.generator.get_layer("output_conv").compute_dtype == "float32"
    assert gan.discriminator.get_layer("output_dense").compute_dtype == "float32"
    scaled = isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16") and isinstance(gan.d_optimizer, type(gan.g_optimizer))
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored

    result = train_gan("cdcgan", config, tmp_path, alpha=0.5, manifest=tiny_data, verbose=0)
    with open(tmp_path / "cdcgan_a050" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(np.isfinite(float(r[k])) for r in rows for k in ("d_loss_real", "d_loss_fake", "g_loss"))
    loaded, _ = load_generator(result["export_dir"])
    images = loaded.signatures["serving_default"](latent=tf.zeros([3, 100]), label=tf.constant([0, 1, 1]))["images"]
    assert images.dtype == tf.float32 and images.shape == (3, 32, 32, 1)
