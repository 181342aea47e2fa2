"""Quality tracked during GAN training: the extractor cache, the logged columns, the best
checkpoint exported (and `--export last`), a resume after a kill, alpha's meaning in both label orders."""

import csv
import json

import numpy as np
import pytest

from keras_cxr.config import load_preset
from keras_cxr.gan.export import generate_images, images_from_generator_output
from keras_cxr.gan.record import GeneratorRecord
from keras_cxr.gan.selection import best_row
from keras_cxr.gan.train import build_gan
from keras_cxr.methods import GeneratorSpec
from keras_cxr.pipeline.checks import check
from keras_cxr.pipeline.cli import main
from keras_cxr.pipeline.extractor import ensure_extractor, extractor_dir
from keras_cxr.pipeline.gan_run import train_gan
from keras_cxr.pipeline.run_folder import EVAL_FIELDS, LOG_FIELDS, RAW_FIELDS, RunFolder, read_checkpoint
from keras_cxr.pipeline.tracking import quality_probe

pytestmark = pytest.mark.slow
TRACKED = ["gan.cdcgan_epochs=3", "gan.eval_every=1", "gan.eval_images=24", "gan.export=best"]


@pytest.fixture(scope="module")
def probe_and_config(tiny_data, tmp_path_factory):
    config = load_preset("tiny", TRACKED)
    out = tmp_path_factory.mktemp("extractor")
    return quality_probe(config, out, tiny_data, GeneratorSpec("cdcgan", 0.25)), config, out


def test_extractor_is_made_once_per_manifest_and_recipe(probe_and_config, tiny_data, tmp_path):
    _, config, out = probe_and_config
    record = extractor_dir(out, tiny_data, config) / "seed0.json"
    stamp = record.stat().st_mtime_ns
    again = ensure_extractor(config, out, tiny_data, seed=0)
    assert record.stat().st_mtime_ns == stamp and again.record["seed"] == 0  # read back, not retrained
    # Another recipe or another manifest is another extractor.
    assert extractor_dir(out, tiny_data, load_preset("tiny", ["classifier.epochs=2"])) != record.parent
    other = tmp_path / "other.csv"
    other.write_text(tiny_data.read_text().replace(",val\n", ",train\n", 1))
    assert extractor_dir(out, other, config) != record.parent
    # Without tracking there is no probe (and no extractor is trained).
    assert quality_probe(load_preset("tiny"), tmp_path / "none", tiny_data, GeneratorSpec("dcgan")) is None
    assert not (tmp_path / "none").exists()


def test_tracked_run_exports_its_best_epoch_and_last_on_request(probe_and_config, tiny_data, tmp_path):
    probe, config, _ = probe_and_config
    result = train_gan("cdcgan", config, tmp_path, alpha=0.25, manifest=tiny_data, verbose=0, probe=probe)
    run = RunFolder(tmp_path, GeneratorSpec("cdcgan", 0.25))
    with open(run.log_path) as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == LOG_FIELDS + EVAL_FIELDS and [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert all(r[f] != "" for r in rows for f in EVAL_FIELDS)
    best = int(best_row(rows, True, config.gan.min_label_fidelity, probe.real_fidelity)["epoch"])
    done = json.loads(run.done_path.read_text())
    assert result["export"] == done["export"] == "best" and done["export_epoch"] == best == done["best"]["epoch"]
    spans = done["timings_s"]  # where the run's time went, by part, adding up to its wall time
    assert spans["tracking"] > 0 and spans["train_steps"] > 0 and sum(spans.values()) == pytest.approx(done["wall_s"], abs=0.5)
    assert GeneratorRecord.read(run.export_dir).export_epoch == best
    assert sorted(run.tracked_epochs()) == [1, 2, 3]  # every tracked epoch's generator is kept
    assert len(done["real_fidelity"]) == 2 and all(0 <= f <= 1 for f in done["real_fidelity"])
    assert done["real_fidelity"] == list(probe.real_fidelity)

    # The exported generator is G at the best epoch: same images as G restored from its file.
    gan = build_gan("cdcgan", config, 0.25)
    assert run.load_tracked(gan, best) == best
    z = np.random.default_rng(0).standard_normal((4, config.gan.latent_dim)).astype(np.float32)
    exported = _served(run.export_dir, z)
    restored = images_from_generator_output(gan.generator([z, np.ones(4, np.int32)], training=False), config.gan.pixel_range)
    np.testing.assert_allclose(exported, restored.numpy(), atol=1e-5)

    # --export last re-exports the finished run from its final checkpoint, and back again.
    last = train_gan("cdcgan", load_preset("tiny", TRACKED[:-1] + ["gan.export=last"]), tmp_path, alpha=0.25,
                     manifest=tiny_data, verbose=0)
    assert (last["export"], last["export_epoch"]) == ("last", 3) and GeneratorRecord.read(run.export_dir).export_epoch == 3
    back = train_gan("cdcgan", config, tmp_path, alpha=0.25, manifest=tiny_data, verbose=0)
    assert (back["export"], back["export_epoch"]) == ("best", best)

    # A run folder as committed (no tracked/ files, no checkpoints) is reused as it is: done.json
    # and the export record the chosen epoch.
    import shutil

    shutil.rmtree(run.tracked_dir)
    shutil.rmtree(run.checkpoint_dir)
    again = train_gan("cdcgan", config, tmp_path, alpha=0.25, manifest=tiny_data, verbose=0)
    assert (again["export"], again["export_epoch"]) == ("best", best)
    assert GeneratorRecord.read(run.export_dir).export_epoch == best


def _served(export_dir, z):
    import tensorflow as tf

    fn = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    out = fn(latent=tf.constant(z), label=tf.ones([len(z)], tf.int32))
    return next(iter(out.values())).numpy()


def test_killed_tracked_run_resumes_to_the_same_log_and_best(probe_and_config, tiny_data, tmp_path):
    probe, config, _ = probe_and_config
    full = train_gan("cdcgan", config, tmp_path / "full", alpha=0.25, manifest=tiny_data, verbose=0, probe=probe)
    train_gan("cdcgan", config, tmp_path / "cut", alpha=0.25, manifest=tiny_data, verbose=0, probe=probe, max_epochs=2)
    resumed = train_gan("cdcgan", config, tmp_path / "cut", alpha=0.25, manifest=tiny_data, verbose=0, probe=probe)
    assert resumed["export_epoch"] == full["export_epoch"]
    logs = []
    for out in ("full", "cut"):
        with open(tmp_path / out / "cdcgan_a025" / "log.csv") as fh:
            logs.append([float(r["fd"]) for r in csv.DictReader(fh)])
    np.testing.assert_allclose(logs[1], logs[0], rtol=1e-3)


def test_an_ema_run_tracks_both_exports_the_average_and_resumes_to_the_same_log(probe_and_config, tiny_data, tmp_path):
    probe = probe_and_config[0]
    config = load_preset("tiny", TRACKED + ["gan.ema=0.5"])
    full = train_gan("cdcgan", config, tmp_path / "full", alpha=0.25, manifest=tiny_data, verbose=0, probe=probe)
    train_gan("cdcgan", config, tmp_path / "cut", alpha=0.25, manifest=tiny_data, verbose=0, probe=probe, max_epochs=2)
    resumed = train_gan("cdcgan", config, tmp_path / "cut", alpha=0.25, manifest=tiny_data, verbose=0, probe=probe)
    run = RunFolder(tmp_path / "full", GeneratorSpec("cdcgan", 0.25))
    rows = run.log_rows()
    assert tuple(rows[0]) == LOG_FIELDS + EVAL_FIELDS + RAW_FIELDS and all(r[f] != "" for r in rows for f in RAW_FIELDS)
    assert any(r["fd"] != r["raw_fd"] for r in rows)  # two generators measured, not one twice
    cut = RunFolder(tmp_path / "cut", GeneratorSpec("cdcgan", 0.25)).log_rows()
    for f in ("fd", "raw_fd"):
        np.testing.assert_allclose([float(r[f]) for r in cut], [float(r[f]) for r in rows], rtol=1e-3)
    assert resumed["export_epoch"] == full["export_epoch"]
    assert any(k.startswith("g_ema/") for k in read_checkpoint(run.checkpoints()[-1]))
    assert any(k.startswith("g_ema/") for k in read_checkpoint(run.tracked_files()[-1]))
    assert GeneratorRecord.read(run.export_dir).ema == 0.5
    # The export is the average at the best epoch, not the raw G.
    gan = build_gan("cdcgan", config, 0.25)
    run.load_tracked(gan, full["export_epoch"])
    z = np.random.default_rng(0).standard_normal((4, config.gan.latent_dim)).astype(np.float32)
    labels = np.ones(4, np.int32)
    average, raw = (images_from_generator_output(g([z, labels], training=False), config.gan.pixel_range).numpy()
                    for g in (gan.ema_generator, gan.generator))
    np.testing.assert_allclose(_served(run.export_dir, z), average, atol=1e-5)
    assert np.abs(average - raw).max() > 1e-3


class ScriptedProbe:
    """A probe whose Frechet distances (and label fidelities) are given in advance (the real one
    is tested above): it pins which epoch is best, so the bookkeeping can be checked exactly."""

    def __init__(self, fds, fidelities=None, real_fidelity=(1.0, 1.0)):
        self.fds = list(fds)
        self.fidelities = list(fidelities or [(1.0, 1.0)] * len(self.fds))
        self.real_fidelity = real_fidelity

    def __call__(self, generator):
        f0, f1 = self.fidelities.pop(0)
        return {"fd": self.fds.pop(0), "fidelity_label0": f0, "fidelity_label1": f1}


def test_a_tracked_file_past_the_restored_checkpoint_is_dropped_on_resume(tiny_data, tmp_path):
    config = load_preset("tiny", TRACKED)
    train_gan("cdcgan", config, tmp_path, alpha=0.25, manifest=tiny_data, verbose=0,
              probe=ScriptedProbe([5.0, 1.0]), max_epochs=2)
    run = RunFolder(tmp_path, GeneratorSpec("cdcgan", 0.25))
    assert [p.name for p in run.tracked_files()] == ["epoch-0001.npz", "epoch-0002.npz"]
    # A kill after the tracked file of epoch 3 was written but before epoch 3's checkpoint: the
    # resume trains epoch 3 again, so that file is not this run's epoch 3.
    with np.load(run.tracked_files()[0]) as z:
        np.savez(run.tracked_dir / "epoch-0003.npz", **{k: (np.array(3) if k == "epoch" else z[k] * 0) for k in z.files})
    resumed = train_gan("cdcgan", config, tmp_path, alpha=0.25, manifest=tiny_data, verbose=0, probe=ScriptedProbe([0.5]))
    assert resumed["export_epoch"] == 3 and sorted(run.tracked_epochs()) == [1, 2, 3]
    gan = build_gan("cdcgan", config, 0.25)
    run.load_tracked(gan, 3)
    z = np.random.default_rng(0).standard_normal((4, config.gan.latent_dim)).astype(np.float32)
    restored = images_from_generator_output(gan.generator([z, np.ones(4, np.int32)], training=False), config.gan.pixel_range)
    np.testing.assert_allclose(_served(run.export_dir, z), restored.numpy(), atol=1e-5)
    assert float(np.abs(restored.numpy() - 0.5).max()) > 0  # not the zeroed impostor's constant output


def test_the_gate_is_relative_to_real_images_and_a_finished_run_reexports_under_another(tiny_data, tmp_path):
    # The extractor recognises 70% of real normal images: 0.65 on generated ones passes a 0.9
    # relative gate (0.93), though not an absolute one.
    config = load_preset("tiny", TRACKED)
    fidelities = [(0.65, 0.95), (0.95, 0.95), (0.60, 1.0)]  # relative to (0.7, 1.0): 0.93, 1.36, 0.86
    probe = ScriptedProbe([1.0, 5.0, 3.0], fidelities, real_fidelity=(0.7, 1.0))
    done = train_gan("cdcgan", config, tmp_path, alpha=0.25, manifest=tiny_data, verbose=0, probe=probe)
    assert done["export_epoch"] == 1 and done["real_fidelity"] == [0.7, 1.0]
    run = RunFolder(tmp_path, GeneratorSpec("cdcgan", 0.25))
    assert best_row(run.log_rows(), True, 0.9)["epoch"] == "2"  # what an absolute 0.9 would have picked
    # A stricter gate on the finished run: re-exported from the kept epoch-2 generator, not retrained.
    stamp = run.checkpoints()[-1].stat().st_mtime_ns
    strict = train_gan("cdcgan", load_preset("tiny", TRACKED + ["gan.min_label_fidelity=0.95"]), tmp_path,
                       alpha=0.25, manifest=tiny_data, verbose=0)
    assert strict["export_epoch"] == 2 and GeneratorRecord.read(run.export_dir).export_epoch == 2
    assert run.checkpoints()[-1].stat().st_mtime_ns == stamp
    gan = build_gan("cdcgan", config, 0.25)
    run.load_tracked(gan, 2)
    z = np.random.default_rng(0).standard_normal((4, config.gan.latent_dim)).astype(np.float32)
    restored = images_from_generator_output(gan.generator([z, np.ones(4, np.int32)], training=False), config.gan.pixel_range)
    np.testing.assert_allclose(_served(run.export_dir, z), restored.numpy(), atol=1e-5)


def test_tracking_without_a_probe_is_a_clear_error(tiny_data, tmp_path):
    with pytest.raises(Exception, match=r"`gan.eval_every`=1 needs a quality probe"):
        train_gan("dcgan", load_preset("tiny", ["gan.eval_every=1"]), tmp_path, manifest=tiny_data, verbose=0)
    assert not tmp_path.joinpath("dcgan").exists()


def test_best_export_needs_tracking():
    with pytest.raises(Exception, match=r"`gan.export: best` needs quality tracking.*Received: eval_every=0"):
        check(load_preset("tiny", ["gan.export=best"]))


@pytest.mark.parametrize("minority_class, majority_label", [("PNEUMONIA", 0), ("NORMAL", 1)])
def test_alpha_meaning_and_majority_are_recorded_for_either_minority(tmp_path, minority_class, majority_label):
    assert main(["data", "prepare", "--minority-class", minority_class, "--val-per-class", "4",
                 "--out", str(tmp_path / "data")]) == 0
    config = load_preset("tiny", ["gan.cdcgan_epochs=1"])
    train_gan("cdcgan", config, tmp_path, alpha=0.25, manifest=tmp_path / "data" / "manifest.csv", verbose=0)
    record = GeneratorRecord.read(tmp_path / "models" / "cdcgan_a025" / "1")
    assert record.majority_label == majority_label and record.minority_label == 1 - majority_label
    assert f"label {majority_label}, {['NORMAL', 'PNEUMONIA'][majority_label]}" in record.to_json()["alpha_meaning"]
    # The trained GAN draws its fake labels from that majority with probability alpha.
    gan = build_gan("cdcgan", config, 0.25, majority_label=record.majority_label)
    _, labels = gan._generate(4000, 1, 2, training=False)
    assert abs(np.mean(labels.numpy() == majority_label) - 0.25) < 0.03
    assert generate_images(tmp_path / "models" / "cdcgan_a025" / "1", 2, 1 - majority_label, seed=0).shape[0] == 2


def test_a_log_begun_before_the_quality_columns_gains_them(tmp_path):
    run = RunFolder(tmp_path, GeneratorSpec("dcgan"))
    run.dir.mkdir(parents=True)
    old = dict(zip(LOG_FIELDS, ["1", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0", "32.0"]))
    with open(run.log_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, LOG_FIELDS)
        w.writeheader()
        w.writerow(old)
    run.append_log({**old, "epoch": 2, "fd": 3.5})
    rows = run.log_rows()
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[0]["fd"] == "" and rows[1]["fd"] == "3.5"
    run.truncate_log(2)  # rows without quality columns are complete rows
    assert len(run.log_rows()) == 2
