"""Per-cell result files: `<out>/cells/<method>__seed<S>.json`, one per finished (method, seed).

A cell file is written atomically, last, after the cell's weights: its presence is what "done"
means to `evaluate-all` (resume, shards) and all that `report` and the summary read. It records
its identity (`cell_identity`): a finished cell is reused only when the data, settings and
generator it would be made from now are the ones it was made from.
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_cxr.identity import differences, file_sha256, folder_sha256
from keras_cxr.io_utils import write_json
from keras_cxr.methods import get_method

# Classifier settings that change no cell's numbers: which cells exist, and the summary's CIs;
# and `generator_per_seed`, whose effect is the generator's bytes, recorded on their own.
NOT_IN_CELL_IDENTITY = ("seeds", "methods", "bootstrap", "generator_per_seed")


def cell_path(out_dir, method: str, seed: int) -> Path:
    return Path(out_dir) / "cells" / f"{method}__seed{seed}.json"


def read_cells(out_dir) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((Path(out_dir) / "cells").glob("*.json"))]


def cell_identity(method: str, seed: int, config, data_sha256: str, models_dir=None, imagenet_weights=None) -> dict:
    """Everything a cell's numbers depend on: the train/val/test images' bytes, the classifier
    settings, the initial weights and, for a GAN method, the exported generator's bytes."""
    settings = config.to_dict()
    classifier = {k: v for k, v in settings["classifier"].items() if k not in NOT_IN_CELL_IDENTITY}
    spec = get_method(method, config.gan.alphas).generator_for(seed, config)
    generator = None if spec is None or models_dir is None else _generator_sha256(spec, Path(models_dir))
    return {"method": method, "seed": seed, "data_sha256": data_sha256, "image_size": settings["image_size"],
            "kernels": settings["kernels"], "classifier": classifier, "resample": settings["resample"],
            "weights_init": file_sha256(imagenet_weights) if imagenet_weights else "scratch",
            "generator_sha256": generator}


def _generator_sha256(spec, models_dir: Path) -> str | None:
    """The generator's bytes: its export's, or where the export is absent (generators stay out of
    git), what its finished run recorded when it exported (its done.json)."""
    from keras_cxr.pipeline.run_folder import RunFolder

    run = RunFolder(models_dir.parent, spec)  # the run folder and its export, beside <out>/models
    if run.export_dir.is_dir():
        return folder_sha256(run.export_dir)
    return (run.done() or {}).get("export_sha256")


def _as_today(recorded: dict) -> dict:
    """An identity recorded by an older version, in today's layout: SMOTE's k was a classifier
    setting before the `resample` section existed."""
    recorded = json.loads(json.dumps(recorded))
    classifier = recorded.get("classifier", {})
    if "resample" not in recorded:
        recorded["resample"] = {"smote_k_neighbors": classifier.pop("smote_k_neighbors", 5)}
    return recorded


def cell_state(out_dir, method: str, seed: int, identity: dict) -> str | list[str]:
    """"missing", "same", "unrecorded" (a cell written before identities were recorded), or the
    list of differences between the finished cell's identity and `identity`."""
    path = cell_path(out_dir, method, seed)
    if not path.exists():
        return "missing"
    recorded = json.loads(path.read_text()).get("identity")
    if recorded is None:
        return "unrecorded"
    diffs = differences(_as_today(recorded), identity)
    return diffs or "same"


def run_cell(method: str, seed: int, config, splits, out_dir, models_dir=None, imagenet_weights=None,
             verbose: int = 0, session=None, identity: dict | None = None) -> dict:
    """Trains and tests one cell (`pipeline.train_cell.train_classifier`), or derives a threshold
    control from its source cell (`evaluate.thresholds`), then writes its file."""
    source = get_method(method, config.gan.alphas).derived_from
    if source is not None:  # a threshold control: the source cell re-thresholded, no training
        from keras_cxr.evaluate.thresholds import derive_cell

        cell = json.loads(cell_path(out_dir, source, seed).read_text())
        result = derive_cell(method, cell, splits.test[1], splits.val[1])
    else:
        from keras_cxr.pipeline.train_cell import train_classifier

        result = train_classifier(method, seed, config, splits, out_dir, models_dir, imagenet_weights, verbose,
                                  session)
    if identity is not None:
        result["identity"] = identity
    write_json(cell_path(out_dir, method, seed), result)
    return result
