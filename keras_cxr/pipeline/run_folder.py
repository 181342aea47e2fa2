"""One GAN run's folder: its paths, lock, identity, checkpoints, log and done marker.

Layout of `<out>/<run>/` (run = dcgan, cdcgan_a025, ...):
  config.json        the resolved preset + run arguments; a rerun that would train other weights is refused
  manifest.csv       the exact images the run trained on
  log.csv            one row of metrics per completed epoch
  tensorboard/       TensorBoard event files
  samples/           per-epoch sample grids from fixed latents (one per label for cDCGAN)
  checkpoints/       epoch-NNNN.npz: G, D, both optimizers and G's average (`gan.ema`), the last `keep_checkpoints`
  tracked/           epoch-NNNN.npz: G (and its average) at every tracked epoch (`gan.eval_every`), which
                     `gan.export: best` chooses from, after training or again later
  done.json          written last; a finished run is never retrained
and the generator is exported to `<out>/models/<run>/1/` (TF Serving layout).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

from keras_cxr.config import DataConfig, GANConfig
from keras_cxr.data import write_manifest
from keras_cxr.errors import KerasCXRError
from keras_cxr.identity import differences, said
from keras_cxr.io_utils import atomic_path, write_json
from keras_cxr.methods import GeneratorSpec
from keras_cxr.pipeline.locks import remove_stale_tmp, run_lock

LOG_FIELDS = ("epoch", "d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake", "epoch_s", "images_per_s")
# Quality columns (`keras_cxr.pipeline.tracking`), filled on the epochs that were evaluated.
EVAL_FIELDS = ("fd", "kid", "fd_label0", "fd_label1", "kid_label0", "kid_label1", "fidelity_label0", "fidelity_label1")
# With `gan.ema` the quality columns are the average's and these the raw G's, so a run shows both.
RAW_FIELDS = tuple(f"raw_{f}" for f in EVAL_FIELDS)

# Settings that do not change the trained weights: a run may resume with other values.
# (XLA compiles the same algorithm, the kernels compute the same functions, and the rest only
# decide what is kept on disk, logged, or refused at serving time.)
NOT_IN_IDENTITY = {"gan": ("jit_compile", "max_images", "keep_checkpoints", "sample_grid", "max_loss",
                           "eval_every", "eval_images", "export", "min_label_fidelity"),
                   "top": ("name", "kernels")}


class CheckpointError(KerasCXRError):
    """A checkpoint file that cannot be read back whole (truncated, corrupt, not an .npz)."""


ALL_GROUPS = ("g", "d", "g_opt", "d_opt", "g_ema")
GENERATOR_GROUPS = ("g", "g_ema")  # what a tracked generator file holds


def _variables(gan, groups=ALL_GROUPS) -> dict:
    """The variables of `groups` that this GAN has (`g_ema` only with `gan.ema`)."""
    every = {"g": gan.generator.variables, "d": gan.discriminator.variables,
             "g_opt": gan.g_optimizer.variables, "d_opt": gan.d_optimizer.variables}
    if getattr(gan, "ema_generator", None) is not None:
        every["g_ema"] = gan.ema_generator.variables
    return {group: every[group] for group in groups if group in every}


def save_checkpoint(gan, path: Path, epoch: int, groups=ALL_GROUPS) -> None:
    arrays = {f"{group}/{i}": np.asarray(v.numpy()) for group, vs in _variables(gan, groups).items()
              for i, v in enumerate(vs)}
    arrays["epoch"] = np.array(epoch)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def read_checkpoint(path: Path) -> dict:
    """Every array of a checkpoint, read in full so that a bad CRC or a cut-off member shows here."""
    try:
        with np.load(path, allow_pickle=False) as ckpt:
            arrays = {k: ckpt[k] for k in ckpt.files}
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, OSError, ValueError: all "unreadable"
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from None
    if "epoch" not in arrays:
        raise CheckpointError(f"checkpoint {path} is incomplete (no epoch record)")
    return arrays


def load_checkpoint(gan, path: Path, groups=ALL_GROUPS) -> int:
    """Restores `groups` (default G, D and both optimizers) from `path`; returns its epoch. Nothing is assigned
    unless the whole file reads and matches the model."""
    ckpt = read_checkpoint(path)
    pairs = []
    for group, vs in _variables(gan, groups).items():
        for i, v in enumerate(vs):
            key = f"{group}/{i}"
            if key not in ckpt or ckpt[key].shape != tuple(v.shape):
                raise KerasCXRError(f"checkpoint {path} does not match the model ({key}); start a new --out")
            pairs.append((v, ckpt[key]))
    for v, value in pairs:
        v.assign(value)
    return int(ckpt["epoch"])


def run_identity(run_config: dict) -> dict:
    """What a resumed run must share with its start: every setting that changes the trained
    weights. GAN and data settings added after a run started count at their defaults, which is
    what it ran with."""
    identity = json.loads(json.dumps(run_config))
    preset = identity.get("preset", {})
    for section, fields in (("gan", dataclasses.fields(GANConfig)), ("data", dataclasses.fields(DataConfig))):
        values = preset.setdefault(section, {})
        for f in fields:
            values.setdefault(f.name, json.loads(json.dumps(f.default)))
    gan = preset["gan"]
    for key in NOT_IN_IDENTITY["gan"]:
        gan.pop(key, None)
    for key in NOT_IN_IDENTITY["top"]:
        preset.pop(key, None)
    return identity


def _epoch_of(path: Path) -> int:
    """epoch-0042.npz -> 42."""
    return int(path.stem.split("-")[1])


class RunFolder:
    """Paths and on-disk state of one GAN run (`<out>/<name>/` and `<out>/models/<name>/1/`)."""

    def __init__(self, out_dir, spec: GeneratorSpec):
        self.spec, self.name = spec, spec.name
        self.dir = Path(out_dir) / spec.name
        self.export_dir = spec.export_dir(Path(out_dir) / "models")
        self.config_path = self.dir / "config.json"
        self.done_path = self.dir / "done.json"
        self.log_path = self.dir / "log.csv"
        self.checkpoint_dir = self.dir / "checkpoints"
        self.samples_dir = self.dir / "samples"
        self.tracked_dir = self.dir / "tracked"
        self.tensorboard_dir = self.dir / "tensorboard"

    def lock(self):
        """One writer per run; temporaries a killed writer left behind are removed once held."""
        return run_lock(self.dir, what=f"train-gan {self.name}")

    def remove_stale_tmp(self) -> None:
        remove_stale_tmp(self.dir, self.checkpoint_dir, self.samples_dir, self.tracked_dir, self.export_dir.parent)

    def start(self, run_config: dict, train_records, class_names) -> None:
        """Records a new run's config and manifest, or checks that a resume would train the same weights."""
        if not self.config_path.exists():
            write_manifest(self.dir / "manifest.csv", train_records, class_names)
            write_json(self.config_path, run_config)
            return
        previous = json.loads(self.config_path.read_text())
        now = dict(run_config)
        if "train_sha256" not in previous:  # a run started before content was recorded: not comparable
            now.pop("train_sha256", None)
        diffs = differences(run_identity(previous), run_identity(now))
        if diffs:
            raise KerasCXRError(f"{self.dir} was started with other data or settings ({said(diffs)}): resuming "
                                f"would mix them. Use another --out, or delete {self.dir} to start over")

    def done(self) -> dict | None:
        return json.loads(self.done_path.read_text()) if self.done_path.exists() else None

    def mark_done(self, result: dict) -> None:
        write_json(self.done_path, result)

    def is_exported(self) -> bool:
        return (self.export_dir / "saved_model.pb").exists()

    # Checkpoints.
    def checkpoints(self) -> list[Path]:
        return sorted(self.checkpoint_dir.glob("epoch-*.npz"))

    def save_checkpoint(self, gan, epoch: int, keep: int) -> None:
        save_checkpoint(gan, self.checkpoint_dir / f"epoch-{epoch:04d}.npz", epoch)
        for old in self.checkpoints()[:-keep]:
            old.unlink()

    def restore_latest(self, gan) -> int:
        """Loads the newest checkpoint that reads completely; returns its epoch (0: none).

        A newer one that does not read (a kill or a full disk mid-write on a filesystem without
        atomic rename, bit rot) is reported by name and set aside as `*.npz.corrupt`, not deleted.
        """
        for path in reversed(self.checkpoints()):
            try:
                return load_checkpoint(gan, path)
            except CheckpointError as exc:
                aside = path.with_name(path.name + ".corrupt")
                os.replace(path, aside)
                print(f"{self.name}: {exc}; set it aside as {aside.name} and fell back to the previous checkpoint",
                      file=sys.stderr)
        return 0

    # The tracked generators: one file per evaluated epoch, all kept, so that the export rule is
    # applied to the whole log (and can be applied again with another gate) without retraining.
    def tracked_files(self) -> list[Path]:
        return sorted(self.tracked_dir.glob("epoch-*.npz"))

    def tracked_epochs(self) -> set[int]:
        return {_epoch_of(f) for f in self.tracked_files()}

    def save_tracked(self, gan, epoch: int) -> None:
        save_checkpoint(gan, self.tracked_dir / f"epoch-{epoch:04d}.npz", epoch, groups=GENERATOR_GROUPS)

    def drop_tracked_after(self, last_epoch: int) -> None:
        """Files past the restored checkpoint belong to epochs that are about to be retrained."""
        for f in self.tracked_files():
            if _epoch_of(f) > last_epoch:
                f.unlink()

    def load_tracked(self, gan, epoch: int) -> int:
        """Loads G (and its average) as they were at the end of tracked `epoch`; returns it."""
        return load_checkpoint(gan, self.tracked_dir / f"epoch-{epoch:04d}.npz", groups=GENERATOR_GROUPS)

    # The per-epoch log: losses every epoch, quality columns on evaluated epochs.
    def _fields(self, *rows: dict) -> tuple:
        """The log's columns: the raw G's quality columns only in a run that tracks an average, the
        label weight only in a run with a transition."""
        return (LOG_FIELDS + EVAL_FIELDS + (RAW_FIELDS if any(RAW_FIELDS[0] in r for r in rows) else ())
                + (("label_weight",) if any("label_weight" in r for r in rows) else ()))

    def append_log(self, row: dict) -> None:
        fields = self._fields(row)
        if self.log_path.exists():
            with open(self.log_path, newline="") as fh:
                header = tuple(next(csv.reader(fh), []))
            if not set(fields) <= set(header):  # a log begun before these columns existed
                self._rewrite_log(self.log_rows(), fields)
                header = fields
            fields = header
        new = not self.log_path.exists()
        with open(self.log_path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fields)
            if new:
                w.writeheader()
            w.writerow(row)

    def log_rows(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        with open(self.log_path, newline="") as fh:
            return list(csv.DictReader(fh))

    def truncate_log(self, last_epoch: int) -> None:
        """Keeps the rows up to `last_epoch` (the restored checkpoint's)."""
        if not self.log_path.exists():
            return
        # A row cut off by a kill mid-append has empty fields: it is dropped with the rest.
        # (Quality columns are empty on epochs that were not evaluated; only the loss columns count.)
        rows = [r for r in self.log_rows()
                if all(r.get(f) not in (None, "") for f in LOG_FIELDS) and int(r["epoch"]) <= last_epoch]
        self._rewrite_log(rows)

    def _rewrite_log(self, rows: list[dict], fields: tuple | None = None) -> None:
        fields = fields or self._fields(*rows)
        with atomic_path(self.log_path) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fields, extrasaction="ignore")
                w.writeheader()
                w.writerows({f: r.get(f, "") for f in fields} for r in rows)
