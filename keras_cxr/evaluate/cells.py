"""Per-cell result files: `<out>/cells/<method>__seed<S>.json`, one per finished (method, seed).

A cell file is written atomically, last, after the cell's weights: its presence is what "done"
means to `evaluate-all` (resume, shards) and all that `report` and the summary read.
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_cxr.io_utils import write_json


def cell_path(out_dir, method: str, seed: int) -> Path:
    return Path(out_dir) / "cells" / f"{method}__seed{seed}.json"


def is_done(out_dir, method: str, seed: int) -> bool:
    return cell_path(out_dir, method, seed).exists()


def read_cells(out_dir) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((Path(out_dir) / "cells").glob("*.json"))]


def run_cell(method: str, seed: int, config, splits, out_dir, models_dir=None, imagenet_weights=None,
             verbose: int = 0, session=None) -> dict:
    """Trains and tests one cell (`classify.train.train_classifier`), then writes its file."""
    from keras_cxr.classify.train import train_classifier

    result = train_classifier(method, seed, config, splits, out_dir, models_dir, imagenet_weights, verbose, session)
    write_json(cell_path(out_dir, method, seed), result)
    return result
