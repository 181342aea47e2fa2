"""`evaluate-all`: the whole (method, seed) matrix, resumable and shardable, then the summary.

Layout of `<out>/`: data/ (manifest), <gan run>/ and models/ (generators, as `train-gan`
writes them), cells/<method>__seed<S>.json, weights/, results.{md,csv,json}.
A finished cell is never rerun; `--shard K/N` runs every N-th cell (K = 0..N-1), so a SLURM array
or a Kubernetes indexed Job can spread the matrix over machines that share `<out>/`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from keras_cxr.classify.datasets import Splits
from keras_cxr.classify.train import ClassifierSession
from keras_cxr.config import Config
from keras_cxr.data import default_data_path, imbalanced_from_path, read_manifest, write_manifest
from keras_cxr.errors import KerasCXRError
from keras_cxr.evaluate.cells import is_done, read_cells, run_cell
from keras_cxr.evaluate.summary import write_results
from keras_cxr.evaluate.tracking import quality_probe
from keras_cxr.gan.run_folder import RunFolder
from keras_cxr.gan.train import train_gan
from keras_cxr.io_utils import remove_stale_tmp, run_lock, write_json
from keras_cxr.methods import registry


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise KerasCXRError(f"`--shard` must be K/N with 0 <= K < N. Received: --shard {text}") from None
    if not 0 <= k < n:
        raise KerasCXRError(f"`--shard` must be K/N with 0 <= K < N. Received: --shard {text}")
    return k, n


def prepare_manifest(config: Config, out_dir: Path, data=None, manifest=None, planned=None) -> Path:
    """The matrix's manifest: the given one, or `<out>/data/manifest.csv` built once from `data`.

    `planned`: what `imbalanced_from_path` returned for `data`, when the caller already scanned
    it (to check the data before writing anything).
    """
    if manifest is not None:
        read_manifest(manifest)  # validate early
        return Path(manifest)
    path = out_dir / "data" / "manifest.csv"
    source = str(default_data_path(data))
    info_path = out_dir / "data" / "summary.json"
    if path.exists():
        info = json.loads(info_path.read_text())
        if info.get("data") != source or info.get("data_config") != config.to_dict()["data"]:
            raise KerasCXRError(f"{out_dir} was prepared from other data or data settings ({info_path}); use another --out")
        return path
    records, class_names, info, _ = planned or imbalanced_from_path(source, config.data)
    write_manifest(path, records, class_names)
    write_json(info_path, {"data": source, "data_config": config.to_dict()["data"], **info})
    return path


def matrix_lock(out_dir: Path, k: int, n: int):
    """One writer per `--out` (per shard when sharded: shards share the folder by design)."""
    name = ".lock" if n == 1 else f".lock-shard-{k}-of-{n}"
    return run_lock(out_dir, name, what=f"evaluate-all{'' if n == 1 else f' --shard {k}/{n}'}")


def generators_of(config: Config, methods) -> list:
    """The GeneratorSpecs the given methods need, in order (classic methods need none)."""
    known = registry(config.gan.alphas)
    return [known[m].generator for m in methods if known[m].generator is not None]


def ensure_generators(config: Config, out_dir: Path, manifest: Path, methods, verbose: int) -> None:
    """Trains the generators the GAN methods need; finished ones are reused."""
    for spec in generators_of(config, methods):
        done = RunFolder(out_dir, spec).done() is not None
        probe = None if done else quality_probe(config, out_dir, manifest, spec)  # None: not tracked
        train_gan(spec.kind, config, out_dir, alpha=spec.alpha, manifest=manifest, verbose=verbose, probe=probe)


def evaluate_all(config: Config, out_dir, data=None, manifest=None, shard: str | None = None,
                 imagenet_weights=None, only_generators: bool = False, verbose: int = 0) -> dict:
    """Runs the preset's (method, seed) matrix; returns the summary of every cell present."""
    out_dir = Path(out_dir)
    k, n = parse_shard(shard)
    # Bad data or a bad manifest fails here, before <out> exists.
    planned = None
    if manifest is not None:
        manifest = prepare_manifest(config, out_dir, data, manifest)  # checks it; writes nothing
    elif not (out_dir / "data" / "manifest.csv").exists():
        planned = imbalanced_from_path(default_data_path(data), config.data)
    with matrix_lock(out_dir, k, n):
        if n == 1:  # shards share the folders: another shard's temporary may be live
            remove_stale_tmp(out_dir, out_dir / "data", out_dir / "cells", out_dir / "weights")
        manifest = manifest or prepare_manifest(config, out_dir, data, None, planned)
        return _evaluate_locked(config, out_dir, manifest, k, n, imagenet_weights, only_generators, verbose)


def _evaluate_locked(config, out_dir, manifest, k, n, imagenet_weights, only_generators, verbose) -> dict:
    c = config.classifier
    gan_methods = [m for m in c.methods if registry(config.gan.alphas)[m].generator is not None]
    models_dir = out_dir / "models"
    if n > 1 and any(not (s.export_dir(models_dir) / "saved_model.pb").exists() for s in generators_of(config, gan_methods)):
        raise KerasCXRError("with --shard, train the generators first, once: rerun without --shard and with --only-generators")
    if only_generators:
        ensure_generators(config, out_dir, manifest, gan_methods, verbose)
        return {}
    cells = [(m, s) for m in c.methods for s in c.seeds][k::n]
    todo = [(m, s) for m, s in cells if not is_done(out_dir, m, s)]
    # Classic methods first: their results appear while no generator has been trained yet.
    todo.sort(key=lambda cell: cell[0] in gan_methods)
    print(f"matrix: {len(cells)} cells in this shard ({k}/{n}), {len(cells) - len(todo)} already done, {len(todo)} to run")
    splits = Splits.load(manifest, config.image_size) if todo else None
    session = ClassifierSession(config, imagenet_weights) if todo else None
    t0 = time.perf_counter()
    for i, (method, seed) in enumerate(todo, start=1):
        if method in gan_methods:
            ensure_generators(config, out_dir, manifest, [method], verbose)  # reused once trained
        r = run_cell(method, seed, config, splits, out_dir, models_dir, imagenet_weights, verbose, session)
        elapsed = time.perf_counter() - t0
        eta = elapsed / i * (len(todo) - i)
        m = r["metrics"]
        print(f"[{i}/{len(todo)}] {method} seed {seed}: F1 {m['f1']:.3f} recall {m['recall']:.3f} "
              f"specificity {m['specificity']:.3f} ({r['timings_s']['total']:.0f} s; elapsed {elapsed / 60:.1f} min, "
              f"ETA {eta / 60:.1f} min)", flush=True)
    cells_done = [cell for cell in read_cells(out_dir) if cell["method"] in c.methods and cell["seed"] in c.seeds]
    context = (f"Preset `{config.name}` ({config.image_size}x{config.image_size}, {c.epochs} classifier epochs, "
               f"batch {c.batch_size}), manifest `{manifest}`; ResNet18 initialised "
               f"{'from ImageNet weights' if imagenet_weights else 'from scratch'}.")
    summary = write_results(out_dir, cells_done, list(c.methods), list(c.seeds), c.bootstrap,
                            f"Rebalancing methods compared ({config.name} preset)", context)
    print(f"wrote {out_dir / 'results.md'} ({len(cells_done)} cells; {len(summary['missing'])} missing)")
    return summary
