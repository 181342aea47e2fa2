"""`train-gan`: one resumable GAN run, from manifest to exported SavedModel generator.

The run's folder (config, manifest, log, samples, checkpoints, done marker) is a
`run_folder.RunFolder`; this module builds the GAN (`keras_cxr.gan.train.build_gan`), trains it
and exports the generator.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from keras_cxr.config import Config
from keras_cxr.data import default_data_path, imbalanced_from_path, minority_label, read_manifest
from keras_cxr.data.pipeline import load_images
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.export import export_generator, images_from_generator_output
from keras_cxr.gan.gan import GAN
from keras_cxr.gan.grid import save_grid
from keras_cxr.gan.record import GeneratorRecord
from keras_cxr.gan.selection import ABSOLUTE, best_row
from keras_cxr.gan.settings import check_image_size
from keras_cxr.gan.train import DivergenceGuard, build_gan, real_batches
from keras_cxr.identity import folder_sha256, records_sha256
from keras_cxr.methods import GeneratorSpec
from keras_cxr.pipeline.run_folder import EVAL_FIELDS, LOG_FIELDS, RunFolder


class GANDivergedError(KerasCXRError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class EpochEnd(keras.callbacks.Callback):
    """Per completed epoch: the quality evaluation (when due), the CSV row, the sample grids, the
    tracked generator (when evaluated), then the checkpoint. In that order, so a checkpoint always
    has its log row and its tracked file; rows and tracked files past the restored checkpoint are
    dropped on resume. `spans` adds up this sitting's seconds per part (train
    steps, tracking, sample grids, log/tracked/checkpoint files): where a run's time goes."""

    def __init__(self, run: RunFolder, guard: DivergenceGuard, fixed_latents: np.ndarray, conditional: bool,
                 pixel_range: str, keep: int, images_per_epoch: int, probe=None, eval_every: int = 0,
                 last_epoch: int = 0):
        super().__init__()
        self.run, self.guard, self.keep = run, guard, keep
        self.fixed_latents, self.conditional, self.pixel_range = fixed_latents, conditional, pixel_range
        self.images_per_epoch = images_per_epoch
        self.probe, self.eval_every, self.last_epoch = probe, eval_every, last_epoch
        self.t0 = time.perf_counter()
        self.spans = {"train_steps": 0.0, "tracking": 0.0, "sample_grids": 0.0, "files": 0.0}

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.diverged is not None:
            return
        seconds = time.perf_counter() - self.t0
        done = epoch + 1
        row = {"epoch": done, **{k: float(logs[k]) for k in LOG_FIELDS[1:6]},
               "epoch_s": round(seconds, 3), "images_per_s": round(self.images_per_epoch / seconds, 2)}
        if "label_weight" in logs:  # transitional conditioning: the epoch's mean label weight
            row["label_weight"] = round(float(logs["label_weight"]), 6)
        self.spans["train_steps"] += seconds
        evaluated = self.probe is not None and (done % self.eval_every == 0 or done == self.last_epoch)
        t = time.perf_counter()
        if evaluated:
            quality = self.probe(self.model.sampler)
            if self.model.ema_generator is not None:  # the raw G beside its average
                quality.update({f"raw_{k}": v for k, v in self.probe(self.model.generator).items()})
            row.update(quality)
            logs.update({f"quality_{k}": v for k, v in quality.items()})  # TensorBoard (the next callback)
        t = self._span("tracking", t)
        self.run.append_log(row)
        t = self._span("files", t)
        self.save_samples(done)
        t = self._span("sample_grids", t)
        if evaluated:
            self.run.save_tracked(self.model, done)
        self.run.save_checkpoint(self.model, done, self.keep)
        self._span("files", t)

    def _span(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.spans[name] += now - since
        return now

    def save_samples(self, epoch: int) -> None:
        gen = self.model.sampler
        if not self.conditional:
            out = gen(self.fixed_latents, training=False)
            save_grid(images_from_generator_output(out, self.pixel_range), self.run.samples_dir / f"epoch-{epoch:04d}.png")
            return
        for label in (0, 1):
            labels = np.full(len(self.fixed_latents), label, dtype=np.int32)
            out = gen([self.fixed_latents, labels], training=False)
            save_grid(images_from_generator_output(out, self.pixel_range),
                      self.run.samples_dir / f"epoch-{epoch:04d}_label{label}.png")


def _resolve_records(config: Config, data, manifest):
    if manifest is not None:
        return read_manifest(manifest)
    records, class_names, _, _ = imbalanced_from_path(default_data_path(data), config.data)
    return records, class_names


def default_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def train_gan(kind: str, config: Config, out_dir, alpha: float | None = 0.5, data=None, manifest=None,
              verbose: int = 1, strategy: tf.distribute.Strategy | None = None, max_epochs: int | None = None,
              probe=None, gan_seed: int | None = None, recipe: bool = False) -> dict:
    """Trains (or resumes) one GAN and exports its generator.

    Args:
        kind: str. "dcgan" (minority-class train images only, paper 4.4) or "cdcgan" (all of
            train with true labels, paper 4.5).
        config: Config. The preset.
        out_dir: folder holding the run directory and `models/`.
        alpha: float. cDCGAN: share of fake labels from the train split's majority class, in
            [0, 1] (paper 4.5, where the majority is "normal"); ignored for DCGAN. Defaults to 0.5.
        data: dataset path (imbalanced with the preset's data settings); default the bundled
            sample. Exclusive with `manifest`.
        manifest: manifest.csv from `data prepare`.
        verbose: int. Keras progress bar (1) or silent (0). Defaults to 1.
        strategy: tf.distribute.Strategy. Defaults to MirroredStrategy over several GPUs, else none.
        max_epochs: int or None. Stop after this epoch this time (the run stays resumable);
            used to simulate an interruption. Defaults to None.
        probe: callable generator -> dict of quality columns (`keras_cxr.pipeline.tracking`);
            required when `gan.eval_every` >= 1, called every `eval_every` epochs and at the last;
            its `real_fidelity` (the extractor's fidelity on real images of label 0 and 1) scales
            a cDCGAN's export gate.
        gan_seed: int or None. Train with this `gan.seed` as a generator of its own, named
            `<name>_g<seed>` (`classifier.generator_per_seed`); None: the preset's seed, plain name.
        recipe: bool. A cDCGAN with issue 23's recipe over the preset's gan settings
            (`keras_cxr.gan.settings.RECIPE`), named `cdcgan_plus_aNNN`. Defaults to False.

    Returns:
        dict with run_dir, export_dir, epochs, wall_s, the last epoch's metrics and, once done,
        the exported epoch and the rule that chose it.
    """
    spec = GeneratorSpec(kind, alpha, gan_seed, recipe)
    config = config.for_generator(gan_seed, recipe)
    check_image_size(config.image_size)
    run = RunFolder(out_dir, spec)
    if config.gan.eval_every and probe is None and run.done() is None:
        raise KerasCXRError(f"`gan.eval_every`={config.gan.eval_every} needs a quality probe "
                            f"(keras_cxr.pipeline.tracking.quality_probe); set gan.eval_every=0 to train without one")
    records, class_names = _resolve_records(config, data, manifest)
    train, run_config = _plan(spec, config, records, class_names, manifest or default_data_path(data))
    # Everything above only reads: bad input has written nothing. From here on, one writer.
    with run.lock():
        run.remove_stale_tmp()
        run.start(run_config, train, class_names)
        record = _generator_record(run_config, spec, _epochs(spec, config), config.gan.max_images)
        done = run.done()
        if done is not None:
            return _reexport_if_needed(run, config, record, done)
        return _fit(run, config, train, record, verbose, strategy, max_epochs, probe)


def _epochs(spec: GeneratorSpec, config: Config) -> int:
    return config.gan.dcgan_epochs if spec.kind == "dcgan" else config.gan.cdcgan_epochs


def _plan(spec: GeneratorSpec, config: Config, records, class_names, source) -> tuple[list, dict]:
    """The run's train records and its config record; checks that the data can train it."""
    g = config.gan
    train = [r for r in records if r.split == "train"]
    counts = [sum(1 for r in train if r.label == c) for c in (0, 1)]
    if spec.conditional and min(counts) == 0:
        raise KerasCXRError(f"a cDCGAN learns both labels, but the train split of {source} has "
                            f"{counts[0]} {class_names[0]} and {counts[1]} {class_names[1]} images")
    minority = minority_label(counts)  # which class is the minority is read from the data
    if not spec.conditional:
        train = [r for r in train if r.label == minority]
    if len(train) // g.batch_size == 0:
        raise KerasCXRError(
            f"{spec.name}: {len(train)} training images is fewer than `batch_size`={g.batch_size}; "
            f"lower it with --set gan.batch_size=N"
        )
    # Only what shapes the GAN identifies the run: classifier settings may change freely.
    gan_preset = {k: v for k, v in config.to_dict().items() if k not in ("classifier", "resample")}
    run_config = {"kind": spec.kind, "alpha": spec.alpha, "preset": gan_preset,
                  "generated_label": None if spec.conditional else minority, "class_names": list(class_names),
                  "train_files": len(train), "train_counts": counts,
                  "train_sha256": records_sha256(train)}  # the images' bytes: a resume on changed data is refused
    return train, run_config


def _reexport_if_needed(run: RunFolder, config: Config, record: GeneratorRecord, done: dict) -> dict:
    """A finished run: exports its generator again when the export is gone or the `gan.export`
    rule now picks another epoch (`--export last` after `best`, or back; another
    `gan.min_label_fidelity`)."""
    rule = config.gan.export
    wanted = record.epochs
    if rule == "best":  # a run folder committed without its tracked/ files still records its choice
        real_fidelity = tuple(done.get("real_fidelity", ABSOLUTE))
        wanted = (_best_epoch(run, config, real_fidelity)
                  or (done.get("export_epoch") if done.get("export") == "best" else 0))
    if rule == "best" and not wanted:
        raise KerasCXRError(f"{run.name} was trained without quality tracking, so it has no best epoch "
                            f"({run.tracked_dir} is empty); export it with --export last")
    current = GeneratorRecord.read(run.export_dir) if run.is_exported() else None
    if current is not None and (current.export, current.export_epoch) == (rule, wanted):
        print(f"{run.name}: already trained ({done['epochs']} epochs); generator (epoch {wanted}) at {run.export_dir}")
        return done
    gan = build_gan(run.spec.kind, config, run.spec.alpha, majority_label=record.majority_label)
    if run.restore_latest(gan) != record.epochs:
        raise KerasCXRError(f"{run.name} is marked done but its final checkpoint is missing from "
                            f"{run.checkpoint_dir}; delete {run.done_path} to retrain")
    done = {**done, **_export_chosen(run, gan, record, rule, wanted)}
    run.mark_done(done)
    print(f"{run.name}: generator of epoch {done['export_epoch']} ({rule}) exported to {run.export_dir}")
    return done


def _best_epoch(run: RunFolder, config: Config, real_fidelity: tuple[float, float]) -> int:
    """The epoch `gan.export: best` picks among the tracked epochs whose generator is on disk
    (all of them, in a run trained since generators are kept per tracked epoch); 0: none."""
    on_disk = run.tracked_epochs()
    rows = [r for r in run.log_rows() if int(r["epoch"]) in on_disk]
    best = best_row(rows, run.spec.conditional, config.gan.min_label_fidelity, real_fidelity)
    return int(best["epoch"]) if best is not None else 0


def _export_chosen(run: RunFolder, gan: GAN, record: GeneratorRecord, rule: str, epoch: int) -> dict:
    """Exports G as it is ("last") or as it was at tracked `epoch` ("best"); returns what
    done.json records about it."""
    if rule == "best":
        if not epoch:
            raise KerasCXRError(f"{run.name}: `gan.export: best` but no epoch was evaluated ({run.tracked_dir} is empty)")
        run.load_tracked(gan, epoch)
    export_generator(gan.sampler, run.export_dir, record.exported(rule, epoch))
    # The export's bytes, kept with the run: cells record them, and a clone without the (ignored)
    # generator folders still knows which generator its finished cells were made from.
    return {"export": rule, "export_epoch": epoch, "export_sha256": folder_sha256(run.export_dir)}


def _fit(run: RunFolder, config: Config, train, record: GeneratorRecord, verbose, strategy, max_epochs, probe) -> dict:
    """Trains from the latest checkpoint to the last epoch (or `max_epochs`), then exports."""
    g = config.gan
    epochs = record.epochs
    steps = len(train) // g.batch_size
    images, labels = load_images(train, config.image_size)
    with (strategy or default_strategy()).scope():
        gan = build_gan(run.spec.kind, config, run.spec.alpha, majority_label=record.majority_label,
                        steps_per_epoch=steps)
    start = run.restore_latest(gan)
    if start:
        print(f"{run.name}: resuming after epoch {start} of {epochs}")
    run.truncate_log(start)
    run.drop_tracked_after(start)
    stop = min(epochs, max_epochs) if max_epochs else epochs
    t0 = time.perf_counter()
    guard = DivergenceGuard(g.max_loss)
    fixed = np.random.default_rng(g.seed).standard_normal((g.sample_grid, g.latent_dim)).astype("float32")
    epoch_end = EpochEnd(run, guard, fixed, run.spec.conditional, g.pixel_range, g.keep_checkpoints, steps * g.batch_size,
                         probe if g.eval_every else None, g.eval_every, epochs)
    if start < stop:
        print(f"{run.name}: training epochs {start + 1}-{stop} of {epochs} ({len(train)} images)", flush=True)
        balanced = g.real_sampling == "balanced" and run.spec.conditional  # a DCGAN's images have one label
        ds = real_batches(images, labels, g.batch_size // 2, start * steps, stop * steps, g.seed, g.pixel_range,
                          balanced)
        callbacks = [guard, epoch_end, keras.callbacks.TensorBoard(log_dir=str(run.tensorboard_dir), write_graph=False)]
        gan.fit(ds, epochs=stop, initial_epoch=start, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose, shuffle=False)
    if guard.diverged is not None:
        _raise_diverged(run, guard)
    wall = time.perf_counter() - t0
    result = {"run_dir": str(run.dir), "export_dir": str(run.export_dir), "epochs": stop, "wall_s": round(wall, 1),
              "resumed_after": start,  # wall_s and timings_s cover epochs start+1..stop, this sitting's
              # this sitting's seconds by part; "other": start-up, tracing, the input pipeline's first fill
              "timings_s": {**{k: round(v, 1) for k, v in epoch_end.spans.items()},
                            "other": round(wall - sum(epoch_end.spans.values()), 1)}}
    if stop < epochs:
        result["epochs_total"] = epochs
        return result  # interrupted on purpose (max_epochs): resumable, not done
    rows = run.log_rows()
    result["last_epoch"] = _numbers(rows[-1], LOG_FIELDS) if rows else {}
    real_fidelity = probe.real_fidelity if probe is not None else ABSOLUTE
    best = best_row(rows, run.spec.conditional, g.min_label_fidelity, real_fidelity)
    if best is not None:
        result["best"] = _numbers(best, ("epoch",) + EVAL_FIELDS)
        if run.spec.conditional:  # the gate's scale, kept so that a re-export applies the same rule
            result["real_fidelity"] = list(real_fidelity)
    epoch = _best_epoch(run, config, real_fidelity) if g.export == "best" else epochs
    result.update(_export_chosen(run, gan, record, g.export, epoch))
    run.mark_done(result)
    return result


def _numbers(row: dict, fields) -> dict:
    return {k: (int(row[k]) if k == "epoch" else float(row[k])) for k in fields if row.get(k) not in (None, "")}


def _raise_diverged(run: RunFolder, guard: DivergenceGuard):
    epoch, batch, bad = guard.diverged
    last = run.checkpoints()
    raise GANDivergedError(
        f"{run.name} diverged at epoch {epoch}, step {batch} ({', '.join(f'{k}={v}' for k, v in bad.items())}); "
        f"last good checkpoint: {last[-1] if last else 'none'}. Try a lower --set gan.learning_rate "
        f"(both reference codes use 2e-4) in a new --out"
    )


def _generator_record(run_config: dict, spec: GeneratorSpec, epochs: int, max_images: int) -> GeneratorRecord:
    """The run's generator, described once from its config (the export adds which epoch)."""
    p = run_config["preset"]
    return GeneratorRecord(
        kind=run_config["kind"], latent_dim=p["gan"]["latent_dim"], pixel_range=p["gan"]["pixel_range"],
        image_size=p["image_size"], minority_label=minority_label(run_config["train_counts"]),  # `generate`'s default
        alpha=run_config["alpha"], class_names=tuple(run_config["class_names"]), name=spec.name, preset=p["name"],
        epochs=epochs, max_images=max_images, diffaugment=p["gan"].get("diffaugment", "none"),
        ema=p["gan"].get("ema", 0.0), gan_seed=spec.gan_seed, recipe=spec.recipe)
