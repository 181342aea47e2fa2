"""`python -m keras_cxr ...` (also `keras-cxr`): the one command-line entry.

Heavy imports (TensorFlow) happen inside the commands that need them, so `data summary` starts
fast. Every error a user can cause (KerasCXRError, and OSError such as a full disk or a read-only
--out) becomes one `error: <message>` line on stderr and exit status 2; `--debug` adds the
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from keras_cxr.errors import KerasCXRError


def _class_names(value: str) -> tuple:
    names = tuple(n.strip() for n in value.split(","))
    if len(names) != 2 or not all(names):
        raise argparse.ArgumentTypeError(f"expected two comma-separated names, e.g. NORMAL,PNEUMONIA; got {value!r}")
    return names


def _add_data_source(p: argparse.ArgumentParser, positional: bool) -> None:
    if positional:
        p.add_argument("path", nargs="?", help="dataset folder or .npz (default: the bundled sample)")
    p.add_argument("--class-names", type=_class_names, default=("NORMAL", "PNEUMONIA"),
                   help="class folder names in label order (default: NORMAL,PNEUMONIA)")
    p.add_argument("--extra-normal", help="folder of extra class-0 images added to train (paper: NIH normals)")
    p.add_argument("--skip-corrupt", action="store_true", help="skip and list unreadable files instead of failing")
    g = p.add_argument_group("a flat image folder with a CSV of labels (RSNA, CheXpert style) instead of class folders")
    g.add_argument("--labels", metavar="CSV", help="label file: one row per image (repeated rows of one image merge)")
    g.add_argument("--path-column", help="column of image paths, relative to the folder; a name without a suffix "
                                         "may end in .dcm, .png, .jpg (default: the first column)")
    g.add_argument("--label-column", help="column of label values (default: the second column)")
    g.add_argument("--label-map", metavar="VALUE=CLASS,...",
                   help="label values to class names, e.g. 1=PNEUMONIA,0=NORMAL (default: values that are class names)")
    g.add_argument("--skip-unmapped", action="store_true",
                   help="leave out rows whose value --label-map does not name (e.g. CheXpert's -1.0 and blanks)")
    g.add_argument("--split-column", help="column of train / val / test (default: carve a stratified test split)")
    g.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of each class carved as test when there is no --split-column (default 0.2)")


def _label_table(args, seed: int = 0):
    """The `--labels` options as one LabelTable, or None; label options without --labels are an error."""
    from keras_cxr.data.labels import LabelTable, parse_label_map

    given = [f"--{k.replace('_', '-')}" for k in ("path_column", "label_column", "label_map", "split_column")
             if getattr(args, k) is not None] + (["--skip-unmapped"] if args.skip_unmapped else [])
    if args.labels is None:
        if given:
            raise KerasCXRError(f"{', '.join(given)} read a CSV of labels, and none was given: pass it with --labels FILE")
        return None
    return LabelTable(args.labels, args.path_column, args.label_column,
                      parse_label_map(args.label_map) if args.label_map else (), args.skip_unmapped,
                      args.split_column, args.test_fraction, seed)


def cmd_data_summary(args) -> dict:
    from keras_cxr.data import default_data_path, scan_dataset

    path = default_data_path(args.path)
    scan = scan_dataset(path, args.class_names, args.extra_normal, args.skip_corrupt, labels=_label_table(args))
    names = scan.class_names
    print(f"data: {path} ({scan.kind}; labels {names[0]}=0, {names[1]}=1)")
    width = max(len(n) for n in names) + 2
    print(f"{'split':<7}" + "".join(f"{n:>{width}}" for n in names) + f"{'total':>9}")
    counts = scan.counts()
    for split, c in counts.items():
        print(f"{split:<7}" + "".join(f"{n:>{width},}" for n in c) + f"{sum(c):>9,}")
    print("image sizes: " + ", ".join(f"{k} ({v:,})" for k, v in scan.sizes.most_common()))
    print("image modes: " + ", ".join(f"{k} ({v:,})" for k, v in scan.modes.most_common()))
    redundant = sum(len(g) - 1 for g in scan.duplicates)
    print(f"duplicates: {len(scan.duplicates)} groups of pixel-identical images "
          f"({sum(len(g) for g in scan.duplicates)} files, {redundant} redundant)")
    for group in scan.duplicates:
        print("  " + " = ".join(group))
    for path_ignored in scan.ignored:
        print(f"ignored (not a split folder): {path_ignored}")
    for file, reason in scan.skipped:
        print(f"skipped: {reason}")
    return {"counts": counts, "duplicates": scan.duplicates, "skipped": scan.skipped}


def cmd_data_prepare(args) -> dict:
    from keras_cxr.data import default_data_path, imbalanced_from_path, write_prepared

    path = default_data_path(args.path)
    data_config = _config(args).data  # the preset's data section, then the options
    labels = _label_table(args, data_config.seed)
    records, _, info, scan = imbalanced_from_path(path, data_config, args.class_names, args.extra_normal,
                                                  args.skip_corrupt, labels)
    out = Path(args.out)
    summary = {
        "data": str(path), "data_config": dataclasses.asdict(data_config), "kind": scan.kind,
        "class_names": list(scan.class_names), "labels": labels.to_dict() if labels else None,
        "extra_normal": args.extra_normal, **info,
        "duplicate_groups": len(scan.duplicates),
        "skipped": [{"file": f, "reason": r} for f, r in scan.skipped],
    }
    write_prepared(out, records, scan.class_names, summary)
    n0, n1 = scan.class_names
    b, minority = info["before_val_carve"], info["minority_class"]
    how = ("natural balance, nothing deleted" if info["natural"]
           else f"deleted {info['deleted'][minority]:,} {minority}")
    val = "the dataset's own val split" if info["keep_val"] else f"{info['val_per_class']} per class carved from train"
    print(f"preset {args.preset}: train before the validation carve {b[n0]:,} {n0} / {b[n1]:,} {n1} ({how}); "
          f"validation: {val}")
    for split in ("train", "val", "test"):
        print(f"  {split:<5} {info[split][n0]:>6,} {n0} {info[split][n1]:>6,} {n1}")
    if scan.skipped:
        print(f"skipped {len(scan.skipped)} unreadable file(s): listed in {out / 'summary.json'}")
    print(f"wrote {out / 'manifest.csv'} and {out / 'summary.json'}")
    return summary


def cmd_data_fetch(args) -> dict:
    from keras_cxr.data.fetch import KERMANY_URL, fetch

    root = fetch(args.url or KERMANY_URL, args.dest, args.sha256, max_bytes=args.max_extract_bytes,
                 max_files=args.max_files)
    return {"root": str(root)}


def cmd_train_gan(args) -> dict:
    from keras_cxr.pipeline.prepared import prepare_manifest
    from keras_cxr.pipeline.tracking import quality_probe
    from keras_cxr.pipeline.run_folder import RunFolder
    from keras_cxr.pipeline.gan_run import train_gan
    from keras_cxr.methods import GeneratorSpec

    if args.seed is not None:
        args.set = list(args.set or []) + [f"gan.seed={args.seed}"]
    config = _config(args)
    spec = GeneratorSpec(args.model, args.alpha, recipe=args.recipe)
    manifest, probe = args.manifest, None
    if config.gan.eval_every and RunFolder(args.out, spec).done() is None:
        # Tracking measures against the extractor of one manifest: fix the data split first.
        manifest = prepare_manifest(config, Path(args.out), args.data, args.manifest)
        probe = quality_probe(config.for_generator(recipe=args.recipe), args.out, manifest, spec)
    result = train_gan(
        kind=args.model, config=config, out_dir=args.out, alpha=args.alpha,
        data=None if manifest else args.data, manifest=manifest, verbose=0 if args.quiet else 1, probe=probe,
        recipe=args.recipe,
    )
    keys = ("run_dir", "export_dir", "epochs", "wall_s", "export", "export_epoch")
    print(json.dumps({k: result[k] for k in keys if k in result}, indent=2))
    return result


def cmd_generate(args) -> dict:
    from keras_cxr.gan.export import generate_to_folder

    label = args.label
    if label is None:  # the class the generator was made to add: its data's minority
        from keras_cxr.gan.export import load_generator

        record = load_generator(args.generator)[1]  # loads it whole: a broken SavedModel fails here, by name
        label = record.minority_label
        if label is None:
            raise KerasCXRError(f"{args.generator} does not record its minority label (exported before "
                                f"keras_cxr recorded it); pass --label 0 or --label 1")
        print(f"label: {label} ({(record.class_names or ('?', '?'))[label]}, the generator's minority class)")
    count = generate_to_folder(args.generator, args.n, label, args.seed, args.out)
    print(f"wrote {count} images to {args.out}")
    return {"count": count}


def _weights_file(args):
    if args.weights in (None, "scratch"):
        return None
    if args.weights != "imagenet-file" or not args.weights_path:
        raise KerasCXRError("--weights takes `scratch` or `imagenet-file PATH` (a converted .npz or a torchvision .pth)")
    from keras_cxr.classify.convert import read_weight_arrays

    read_weight_arrays(args.weights_path)  # a wrong file fails here, before anything is written
    return args.weights_path


def _add_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", nargs="+", metavar=("KIND", "PATH"), default=None,
                   help="`scratch` (default) or `imagenet-file PATH`: ResNet18 ImageNet weights from a local file")


def _split_weights(args) -> None:
    w = args.weights or ["scratch"]
    args.weights, args.weights_path = w[0], (w[1] if len(w) > 1 else None)
    if len(w) > 2 or args.weights not in ("scratch", "imagenet-file"):
        raise KerasCXRError(f"--weights takes `scratch` or `imagenet-file PATH`. Received: {' '.join(w)}")


# The manifest options every manifest-building command takes, as the `data.*` keys they set.
DATA_OPTIONS = {"minority_class": "--minority-class", "minority_fraction": "--minority-fraction",
                "val_per_class": "--val-per-class", "keep_val": "--keep-val", "natural": "--natural"}


def _data_overrides(args) -> list[str]:
    """The data options given on the line, as `--set data.*` items (after the user's own --set)."""
    given = {key: value for key in DATA_OPTIONS
             if (value := getattr(args, key, None)) is not None and value is not False}  # 0 is a value
    if given and getattr(args, "manifest", None):
        raise KerasCXRError(f"manifest options ({', '.join(DATA_OPTIONS[k] for k in given)}) apply when a manifest "
                            f"is built from --data; --manifest {args.manifest} is one already built. Received both")
    for flag, clash in (("natural", "minority_fraction"), ("keep_val", "val_per_class")):
        if flag in given and clash in given:
            raise KerasCXRError(f"{DATA_OPTIONS[clash]} does not apply with {DATA_OPTIONS[flag]}. "
                                f"Received: {DATA_OPTIONS[clash]} {given[clash]}")
    if getattr(args, "data_seed", None) is not None:
        given["seed"] = args.data_seed
    return [f"data.{key}={json.dumps(value)}" for key, value in given.items()]


def _config(args):
    from keras_cxr.config import load_preset

    overrides = list(args.set or []) + _data_overrides(args)
    if getattr(args, "seeds", None):
        overrides.append(f"classifier.seeds=[{', '.join(map(str, args.seeds))}]")
    if getattr(args, "methods", None):
        overrides.append(f"classifier.methods=[{', '.join(args.methods)}]")
    if getattr(args, "export", None):
        overrides.append(f"gan.export={args.export}")
    from keras_cxr.pipeline.checks import check
    from keras_cxr.precision import resolve_config

    config = check(load_preset(args.preset, overrides))
    if "auto" in (config.gan.precision, config.classifier.precision):
        resolved = resolve_config(config)
        print(f"precision: auto -> classifier {resolved.classifier.precision}, gan {resolved.gan.precision}", flush=True)
        return resolved
    return config


def cmd_train_classifier(args) -> dict:
    from keras_cxr.classify.datasets import Splits
    from keras_cxr.data import manifest_sha256
    from keras_cxr.pipeline.cells import cell_identity, run_cell
    from keras_cxr.pipeline.prepared import prepare_manifest
    from keras_cxr.methods import get_method

    _split_weights(args)
    config = _config(args)
    get_method(args.method, config.gan.alphas)  # an unknown name fails before any data is read
    weights = _weights_file(args)
    out = Path(args.out)
    manifest = prepare_manifest(config, out, args.data, args.manifest)
    splits = Splits.load(manifest, config.image_size)
    models = args.models or out / "models"
    identity = cell_identity(args.method, args.seed, config, manifest_sha256(manifest), models, weights)
    r = run_cell(args.method, args.seed, config, splits, out, models, weights,
                 verbose=0 if args.quiet else 1, identity=identity)
    m = r["metrics"]
    print(json.dumps({k: m[k] for k in ("precision", "recall", "specificity", "f1", "roc_auc", "confusion_matrix")}))
    return r


def cmd_evaluate_all(args) -> dict:
    from keras_cxr.pipeline.matrix import evaluate_all

    _split_weights(args)
    config = _config(args)
    weights = _weights_file(args)
    return evaluate_all(config, args.out, args.data, args.manifest, args.shard, weights,
                        args.only_generators, verbose=0 if args.quiet else 1, rebuild=args.rebuild)


def cmd_report(args) -> dict:
    from keras_cxr.pipeline.report import write_report

    if args.n_generated < 2:  # checked before any work: the quality section needs a covariance
        raise KerasCXRError(f"`--n-generated` must be >= 2. Received: n_generated={args.n_generated}")
    path = write_report(args.results, n_generated=args.n_generated, extractor_seeds=tuple(args.extractor_seeds),
                        compare=tuple(args.compare or ()))
    print(f"wrote {path}")
    return {"report": str(path)}


def cmd_convert_weights(args) -> dict:
    from keras_cxr.classify.convert import convert_file

    out = convert_file(args.torch, args.out)
    print(f"wrote {out}")
    return {"out": str(out)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras_cxr", description=__doc__.splitlines()[0],
                                     epilog="anywhere on the line: --debug shows an error's traceback; --verbose "
                                            "lets TensorFlow print its own start-up and log lines")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    _add_gan_commands(sub)
    _add_classifier_commands(sub)
    return parser


def _add_run_options(p: argparse.ArgumentParser, out_help: str | None = None) -> None:
    """What every training command shares: the preset, its overrides, the data and how its manifest
    is built, --out, --quiet."""
    _add_preset(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help="dataset folder or .npz (default: the bundled sample)")
    src.add_argument("--manifest", help="manifest.csv from `data prepare`")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a preset value, e.g. gan.batch_size=64")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_options(p)


def _add_preset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", help="paper, quick, demo, tiny or a YAML path (default quick)")


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """How a manifest is built from --data: the same options, defaults from the preset's `data:`."""
    g = p.add_argument_group("manifest options (default: the preset's data section; shorthand for --set data.*)")
    g.add_argument("--minority-class", help="class whose train images are deleted (default PNEUMONIA)")
    g.add_argument("--minority-fraction", type=float, help="minority share of train, in (0, 0.5] (default 0.25)")
    g.add_argument("--val-per-class", type=int,
                   help="balanced validation images per class carved from train (default: 10%% of the minority count)")
    g.add_argument("--keep-val", action="store_true",
                   help="keep the dataset's own val split as validation instead of merging it into train and carving one")
    g.add_argument("--natural", action="store_true",
                   help="keep the class balance as it is, deleting nothing (with --keep-val: the split as published)")


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--export", choices=("best", "last"),
                   help="which epoch's generator to export: the tracked best or the last (shorthand for "
                        "--set gan.export=...; a finished run is re-exported if this changes)")


def _add_data_commands(sub) -> None:
    import keras_cxr.data.fetch as fetch_caps  # standard library only: cheap at start-up

    data = sub.add_parser("data", help="inspect, prepare or fetch a dataset")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("summary", help="counts per split and class, image sizes/modes, duplicates")
    _add_data_source(p, positional=True)
    p.set_defaults(func=cmd_data_summary)

    p = data_sub.add_parser("prepare", help="write the imbalanced train / balanced val / test manifest")
    _add_data_source(p, positional=True)
    _add_preset(p)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a preset value, e.g. data.seed=1")
    _add_data_options(p)
    p.add_argument("--seed", type=int, dest="data_seed", help="seed of the deletion and the carve (data.seed; default 0)")
    p.add_argument("--out", required=True, help="output folder for manifest.csv and summary.json")
    p.set_defaults(func=cmd_data_prepare)

    p = data_sub.add_parser("fetch", help="download and extract the official Kermany archive")
    p.add_argument("dataset", choices=["kermany"])
    p.add_argument("--dest", required=True)
    p.add_argument("--url", help="archive URL (http(s):// or file://); default: Mendeley Data v2")
    p.add_argument("--sha256", help="expected sha256 of the archive")
    p.add_argument("--max-extract-bytes", type=int, default=fetch_caps.MAX_EXTRACT_BYTES,
                   help=f"refuse an archive that extracts to more bytes (default {fetch_caps.MAX_EXTRACT_BYTES:,}; "
                        f"also refused: over {fetch_caps.MAX_RATIO}x its own size)")
    p.add_argument("--max-files", type=int, default=fetch_caps.MAX_FILES,
                   help=f"refuse an archive with more files (default {fetch_caps.MAX_FILES:,})")
    p.set_defaults(func=cmd_data_fetch)


def _add_gan_commands(sub) -> None:
    from keras_cxr.methods import GAN_KINDS

    p = sub.add_parser("train-gan", help="train a DCGAN or cDCGAN, resumably, and export its generator")
    p.add_argument("--model", choices=GAN_KINDS, required=True)
    p.add_argument("--alpha", type=float, default=0.5,
                   help="cDCGAN: share of fake labels from the majority class (paper 4.5; default 0.5)")
    p.add_argument("--seed", type=int, help="shorthand for --set gan.seed=S")
    p.add_argument("--recipe", action="store_true",
                   help="cDCGAN: issue 23's conditional recipe over the preset's gan settings (cdcgan_plus_aNNN; "
                        "a departure from the paper, docs/faithful.md)")
    _add_run_options(p, "output folder: <out>/<run>/ and <out>/models/<run>/1/")
    _add_export(p)
    p.set_defaults(func=cmd_train_gan, needs_tensorflow=True)

    p = sub.add_parser("generate", help="write PNGs from an exported generator SavedModel")
    p.add_argument("--generator", required=True, help="SavedModel folder (<models>/<name>/<version>)")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--label", type=int, default=None,
                   help="class label to generate (default: the minority class of the generator's training data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_generate, needs_tensorflow=True)


def _add_classifier_commands(sub) -> None:
    from keras_cxr.methods import method_names

    methods = f"{', '.join(method_names(extra=True))} (cDCGAN rows follow gan.alphas)"
    p = sub.add_parser("train-classifier", help="train and test the classifier for one (method, seed) cell")
    p.add_argument("--method", required=True, help=f"one of: {methods}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", help="folder of exported generators (default: <out>/models)")
    _add_run_options(p)
    _add_weights(p)
    p.set_defaults(func=cmd_train_classifier, needs_tensorflow=True)

    p = sub.add_parser("evaluate-all", help="the whole (method, seed) matrix and results.md")
    p.add_argument("--seeds", type=int, nargs="+", help="override the preset's seeds")
    p.add_argument("--methods", nargs="+", help=f"a subset of: {methods}")
    p.add_argument("--shard", help="K/N: run only cells k with k %% N == K (K = 0..N-1); auto: K and N from a SLURM "
                                   "job array or a Kubernetes Indexed Job (+ KERAS_CXR_SHARD_COUNT)")
    p.add_argument("--only-generators", action="store_true",
                   help="train the missing generators, then stop (with --shard: every N-th generator)")
    p.add_argument("--rebuild", action="store_true",
                   help="run again the finished cells that were made from other data, settings or generators "
                        "(without it they are refused, never mixed into one table)")
    _add_run_options(p)
    _add_export(p)
    _add_weights(p)
    p.set_defaults(func=cmd_evaluate_all, needs_tensorflow=True)

    p = sub.add_parser("report", help="report.md of an evaluate-all folder: samples, losses, results, "
                                      "ROC, Grad-CAM, lung share, quality, memorisation")
    p.add_argument("--results", required=True, help="the --out folder of evaluate-all")
    p.add_argument("--n-generated", type=int, default=500, help="generated images per generator for quality (default 500)")
    p.add_argument("--extractor-seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the feature extractors the quality section spreads over (default 0 1 2)")
    p.add_argument("--compare", nargs="+", metavar="FOLDER",
                   help="other evaluate-all folders of the same data at other minority fractions: adds the imbalance "
                        "curve (each method's paired delta AUC and delta F1 against the minority share)")
    p.set_defaults(func=cmd_report, needs_tensorflow=True)

    p = sub.add_parser("convert-weights", help="torchvision resnet18 .pth -> keras_cxr ImageNet .npz (needs torch)")
    p.add_argument("--torch", required=True, help="torchvision resnet18 .pth state dict")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_convert_weights)


def _thread_cap(value: str | None) -> int | None:
    """KERAS_CXR_THREADS=N caps TensorFlow's op threads, so that N-way shards share one machine."""
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise KerasCXRError(f"KERAS_CXR_THREADS must be a positive integer. Received: {value!r}")
    return int(value)


def _check_out(out) -> None:
    """`--out` must be, or be creatable inside, a writable folder: said before any work starts."""
    path = Path(out)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                raise KerasCXRError(f"--out {out}: {existing} exists and is not a folder")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise KerasCXRError(f"--out {out}: {existing} is not writable")
            return


def _os_error_message(exc: OSError) -> str:
    # "No space left on device: runs/x/.log.csv.tmp", not a traceback through our writers.
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    return f"{reason}: {where}" if where else reason


@contextlib.contextmanager
def _stderr_to_scratch():
    """Sends file descriptor 2 (C++ writers included) to a scratch file for the block; replays
    it if the block fails, so an error's explanation is never swallowed."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _start_tensorflow(verbose: bool, threads: int | None = None) -> None:
    """Imports TensorFlow and says once which device the command runs on.

    TensorFlow's C++ runtime prints start-up notices (oneDNN, CUDA's `failed call to cuInit`,
    CPU features) before its logging is configured, so TF_CPP_MIN_LOG_LEVEL cannot hold them back,
    and they read like failures. Unless the user asked for them (`--verbose`, or their own
    TF_CPP_MIN_LOG_LEVEL), they go to a scratch file while TensorFlow starts.
    """
    quiet = not verbose and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    if quiet:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # later notices too (grappler's `remapper failed`)
    with _stderr_to_scratch() if quiet else contextlib.nullcontext():
        import tensorflow as tf

        if threads:  # before anything initialises the runtime
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        gpus = tf.config.list_logical_devices("GPU")  # CUDA's probe prints here
    if quiet:  # TensorFlow's Python-side notices too (e.g. "triggered tf.function retracing" when a
        tf.get_logger().setLevel("ERROR")  # report trains several feature extractors in one process)
    from keras_cxr.precision import native_bfloat16

    where = f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''}" if gpus else f"CPU ({os.cpu_count()} cores, no GPU visible)"
    bf16 = native_bfloat16()
    bf16 = f"bfloat16 native ({bf16})" if bf16 else "bfloat16 emulated"
    print(f"device: {where}, {bf16}; TensorFlow {tf.__version__}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug / --verbose anywhere on the line: an error's traceback; TensorFlow's own log lines.
    debug, verbose = "--debug" in argv, "--verbose" in argv
    argv = [a for a in argv if a not in ("--debug", "--verbose")]
    args = build_parser().parse_args(argv)
    try:
        threads = _thread_cap(os.environ.get("KERAS_CXR_THREADS"))
        if getattr(args, "out", None):
            _check_out(args.out)
        if getattr(args, "needs_tensorflow", False):
            _start_tensorflow(verbose, threads)
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except (KerasCXRError, OSError, MemoryError) as exc:
        if debug:
            traceback.print_exc()
        if isinstance(exc, KerasCXRError):
            message = str(exc)
        elif isinstance(exc, MemoryError):
            message = "out of memory (try a smaller batch_size, or fewer images per call)"
        else:
            message = _os_error_message(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
