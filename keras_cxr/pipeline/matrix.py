"""`evaluate-all`: the whole (method, seed) matrix, resumable and shardable, then the summary.

Layout of `<out>/`: data/ (manifest), <gan run>/ and models/ (generators, as `train-gan`
writes them), cells/<method>__seed<S>.json, weights/, results.{md,csv,json}.
A finished cell is never rerun. `--shard K/N` runs every N-th cell (K = 0..N-1) and `--shard auto`
reads K and N from a SLURM job array or a Kubernetes Indexed Job, so machines that share `<out>/`
split the matrix. Processes sharing `<out>/` coordinate through lock files: one per cell and one
per generator (what another process holds is waited for while this one runs its other cells, and
taken over if that process dies), one for the manifest and one for the summary.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from keras_cxr.classify.datasets import Splits
from keras_cxr.classify.train import ClassifierSession
from keras_cxr.config import Config
from keras_cxr.data import default_data_path, imbalanced_from_path, manifest_sha256
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.settings import check_image_size
from keras_cxr.identity import said
from keras_cxr.methods import matrix_methods, registry
from keras_cxr.pipeline.cells import cell_identity, cell_path, cell_state, read_cells, run_cell
from keras_cxr.pipeline.gan_run import train_gan
from keras_cxr.pipeline.locks import POLL_S, LockBusy, raise_if_held, remove_stale_tmp, run_lock
from keras_cxr.pipeline.paper import paper_setting_differences
from keras_cxr.pipeline.prepared import prepare_manifest
from keras_cxr.pipeline.run_folder import RunFolder
from keras_cxr.pipeline.summary import write_results
from keras_cxr.pipeline.tracking import quality_probe


def parse_shard(text: str | None, environ=None) -> tuple[int, int]:
    """`--shard`: None -> (0, 1); "K/N" -> (K, N); "auto" -> from the cluster's variables."""
    if not text:
        return 0, 1
    if text == "auto":
        k, n, source = shard_from_environment(os.environ if environ is None else environ)
    else:
        try:
            k, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise KerasCXRError(f"`--shard` must be K/N with 0 <= K < N, or auto. Received: --shard {text}") from None
        source = f"--shard {text}"
    if not 0 <= k < n:
        raise KerasCXRError(f"`--shard` must be K/N with 0 <= K < N. Received: K={k}, N={n} (from {source})")
    return k, n


def _env_int(env, name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise KerasCXRError(f"--shard auto: {name} must be an integer. Received: {name}={env[name]!r}") from None


def shard_from_environment(env) -> tuple[int, int, str]:
    """(K, N, where they came from) of a SLURM job array task or a Kubernetes Indexed Job pod.

    SLURM numbers tasks from SLURM_ARRAY_TASK_MIN in steps of SLURM_ARRAY_TASK_STEP (`--array=1-8`
    is shards 0..7). Kubernetes gives the pod its JOB_COMPLETION_INDEX but not the Job's
    completions, so the Job passes that as KERAS_CXR_SHARD_COUNT.
    """
    if "SLURM_ARRAY_TASK_ID" in env:
        if "SLURM_ARRAY_TASK_COUNT" not in env:
            raise KerasCXRError("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not "
                                "(Slurm sets both for a job array, sbatch --array)")
        first = _env_int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        step = _env_int(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
        k = (_env_int(env, "SLURM_ARRAY_TASK_ID") - first) // max(step, 1)
        return k, _env_int(env, "SLURM_ARRAY_TASK_COUNT"), "SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT"
    if "JOB_COMPLETION_INDEX" in env:
        if "KERAS_CXR_SHARD_COUNT" not in env:
            raise KerasCXRError("--shard auto: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but "
                                "KERAS_CXR_SHARD_COUNT is not: set it to the Job's completions")
        return (_env_int(env, "JOB_COMPLETION_INDEX"), _env_int(env, "KERAS_CXR_SHARD_COUNT"),
                "JOB_COMPLETION_INDEX / KERAS_CXR_SHARD_COUNT")
    raise KerasCXRError("--shard auto needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (a SLURM job array) or "
                        "JOB_COMPLETION_INDEX and KERAS_CXR_SHARD_COUNT (a Kubernetes Indexed Job); none is set. "
                        "Pass --shard K/N to choose the shard by hand")


def generators_of(config: Config, methods) -> list:
    """The GeneratorSpecs the given methods need over the preset's seeds, in order, each once
    (classic methods need none; one per seed under `classifier.generator_per_seed`)."""
    known = registry(config.gan.alphas)
    specs = [known[m].generator_for(s, config) for m in methods for s in config.classifier.seeds]
    return list(dict.fromkeys(spec for spec in specs if spec is not None))


def ensure_generator(config: Config, out_dir: Path, manifest: Path, spec, verbose: int) -> None:
    """Trains the generator `spec` unless it is finished (then reuses it). LockBusy: another
    process is training it now."""
    run = RunFolder(out_dir, spec)
    done = run.done() is not None
    if not done:
        raise_if_held(run.dir)  # before loading the probe's extractor, which a waiting shard would redo
    # A generator of its own seed is tracked with that seed's fixed latents, as `train-gan --seed` tracks it.
    probe = None if done else quality_probe(config.for_generator(spec.gan_seed, spec.recipe), out_dir, manifest, spec)
    train_gan(spec.kind, config, out_dir, alpha=spec.alpha, manifest=manifest, verbose=verbose, probe=probe,
              gan_seed=spec.gan_seed, recipe=spec.recipe)


def evaluate_all(config: Config, out_dir, data=None, manifest=None, shard: str | None = None,
                 imagenet_weights=None, only_generators: bool = False, verbose: int = 0, rebuild: bool = False) -> dict:
    """Runs the preset's (method, seed) matrix, or this shard's part; returns the summary of every
    cell present."""
    out_dir = Path(out_dir)
    k, n = parse_shard(shard)
    specs = generators_of(config, matrix_methods(config))
    if specs:
        check_image_size(config.image_size)
    # Bad data or a bad manifest fails here, before <out> exists.
    planned = None
    if manifest is not None:
        manifest = prepare_manifest(config, out_dir, data, manifest)  # checks it; writes nothing
    elif not (out_dir / "data" / "manifest.csv").exists():
        planned = imbalanced_from_path(default_data_path(data), config.data)
    if manifest is None:
        with run_lock(out_dir / "data", what="evaluate-all (manifest)", wait=True):
            remove_stale_tmp(out_dir / "data")
            manifest = prepare_manifest(config, out_dir, data, None, planned)
    if only_generators:
        _train_generators(config, out_dir, manifest, specs[k::n], verbose)
        return {}
    return _run_matrix(config, out_dir, manifest, k, n, imagenet_weights, verbose, rebuild)


def _train_generators(config, out_dir, manifest, specs, verbose) -> None:
    waiting, said = list(specs), set()
    while waiting:
        busy = [spec for spec in waiting if not _generator_ready(config, out_dir, manifest, spec, verbose, said)]
        if len(busy) == len(waiting):
            time.sleep(POLL_S)
        waiting = busy


def _generator_ready(config, out_dir, manifest, spec, verbose, said: set) -> bool:
    """True once the generator is exported (trained here if need be); False while another
    process trains it (said once per generator)."""
    try:
        ensure_generator(config, out_dir, manifest, spec, verbose)
        return True
    except LockBusy as busy:
        if spec.name not in said:
            print(f"waiting: {busy.in_use()}; running other cells meanwhile", flush=True)
            said.add(spec.name)
        return False


def _run_matrix(config, out_dir, manifest, k, n, imagenet_weights, verbose, rebuild=False) -> dict:
    c = config.classifier
    known = registry(config.gan.alphas)
    cells = [(m, s) for m in matrix_methods(config) for s in c.seeds][k::n]
    # A threshold control re-thresholds its source cell (baseline, same seed): that cell is run
    # here too when this shard needs it (its lock keeps it from running twice across shards).
    sources = [(known[m].derived_from, s) for m, s in cells if known[m].derived_from]
    cells += [cell for cell in dict.fromkeys(sources) if cell not in cells]
    models_dir = out_dir / "models"
    data_sha256 = manifest_sha256(manifest)

    def identity(method, seed):
        return cell_identity(method, seed, config, data_sha256, models_dir, imagenet_weights)

    todo = _cells_to_run(out_dir, cells, identity, rebuild)
    # Classic methods first: their results appear while no generator has been trained yet;
    # threshold controls after the cells they re-threshold.
    todo.sort(key=lambda cell: (known[cell[0]].derived_from is not None, known[cell[0]].generator is not None))
    print(f"matrix: {len(cells)} cells in this shard ({k}/{n}), {len(cells) - len(todo)} already done, {len(todo)} to run")
    splits = Splits.load(manifest, config.image_size) if todo else None
    session = ClassifierSession(config, imagenet_weights) if todo else None
    pending, said_busy, ran, elsewhere = list(todo), set(), 0, []
    t0 = time.perf_counter()
    while pending:
        progressed = False
        for method, seed in list(pending):
            spec, source = known[method].generator_for(seed, config), known[method].derived_from
            if spec is not None and not _generator_ready(config, out_dir, manifest, spec, verbose, said_busy):
                continue  # another process trains it: come back to this cell later
            if source is not None and cell_state(out_dir, source, seed, identity(source, seed)) not in ("same", "unrecorded"):
                continue  # its source cell is still running (here or in another process)
            r = _run_cell_locked(method, seed, config, splits, out_dir, models_dir, imagenet_weights, verbose,
                                 session, said_busy, identity(method, seed))
            if r is BUSY:
                continue  # another process runs it (or died running it: its lock goes stale)
            pending.remove((method, seed))
            progressed = True
            if r is None:
                elsewhere.append(f"{method} seed {seed}")
                continue
            ran += 1
            elapsed = time.perf_counter() - t0
            eta = elapsed / ran * len(pending)
            m = r["metrics"]
            print(f"[{ran + len(elsewhere)}/{len(todo)}] {method} seed {seed}: F1 {m['f1']:.3f} recall {m['recall']:.3f} "
                  f"specificity {m['specificity']:.3f} ({r['timings_s']['total']:.0f} s; elapsed {elapsed / 60:.1f} min, "
                  f"ETA {eta / 60:.1f} min)", flush=True)
        if pending and not progressed:
            time.sleep(POLL_S)
    if elsewhere:
        print(f"finished by another process: {', '.join(elsewhere)}")
    return _write_summary(config, out_dir, manifest, imagenet_weights)


def _cells_to_run(out_dir, cells, identity, rebuild: bool) -> list:
    """The cells not yet finished with today's identity. A finished cell made from other data,
    settings or generator is refused (nothing mixed in one results table), or with `rebuild`
    run again; cells written before identities were recorded are reused, with a note."""
    todo, stale, unrecorded = [], [], 0
    for method, seed in cells:
        state = cell_state(out_dir, method, seed, identity(method, seed))
        if state == "unrecorded":
            unrecorded += 1
        elif state != "same":
            todo.append((method, seed))
            if state != "missing":
                stale.append(f"{method} seed {seed}: {said(state, 2)}")
    if stale and not rebuild:
        raise KerasCXRError(f"{len(stale)} finished cell(s) in {out_dir / 'cells'} were made from other data, settings "
                            f"or generators ({'; '.join(stale[:2])}{'; ...' if len(stale) > 2 else ''}): reusing them "
                            f"would mix results. Rerun with --rebuild to replace those cells, or use another --out")
    if stale:
        print(f"rebuild: {len(stale)} cell(s) made from other data, settings or generators run again", flush=True)
    if unrecorded:
        print(f"note: {unrecorded} finished cell(s) predate identity records and are reused unchecked", flush=True)
    return todo


BUSY = object()  # a cell whose lock another live process holds


def _run_cell_locked(method, seed, config, splits, out_dir, models_dir, imagenet_weights, verbose, session, said_busy,
                     identity):
    """Runs one cell under its lock: its result; None when another process has finished it; BUSY
    while another process holds it (said once)."""
    name = cell_path(out_dir, method, seed).stem
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(run_lock(out_dir / "cells", f".{name}.lock", what=f"evaluate-all cell {name}"))
        except LockBusy as busy:
            if name not in said_busy:
                print(f"waiting: {busy.in_use()}", flush=True)
                said_busy.add(name)
            return BUSY
        if cell_state(out_dir, method, seed, identity) in ("same", "unrecorded"):  # finished by another process
            return None
        remove_stale_tmp(out_dir / "cells", out_dir / "weights", prefix=f"{name}.")  # a killed run's
        return run_cell(method, seed, config, splits, out_dir, models_dir, imagenet_weights, verbose, session, identity)


def _write_summary(config, out_dir, manifest, imagenet_weights) -> dict:
    """results.{md,csv,json} from every cell present. Under a lock, and after this process's
    cells are written: of shards finishing together, the last to write sees every cell."""
    c = config.classifier
    with run_lock(out_dir, ".results.lock", what="evaluate-all summary", wait=True):
        remove_stale_tmp(out_dir, prefix="results.")
        rows = matrix_methods(config)
        cells_done = [cell for cell in read_cells(out_dir) if cell["method"] in rows and cell["seed"] in c.seeds]
        context = (f"Preset `{config.name}` ({config.image_size}x{config.image_size}, {c.epochs} classifier epochs, "
                   f"batch {c.batch_size}), manifest `{manifest}`; ResNet18 initialised "
                   f"{'from ImageNet weights' if imagenet_weights else 'from scratch'}.")
        summary = write_results(out_dir, cells_done, list(rows), list(c.seeds), c.bootstrap,
                                f"Rebalancing methods compared ({config.name} preset)", context,
                                paper_setting_differences(manifest, config, bool(imagenet_weights)), manifest=manifest)
    print(f"wrote {out_dir / 'results.md'} ({len(cells_done)} cells; {len(summary['missing'])} missing)")
    return summary
