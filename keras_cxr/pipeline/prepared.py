"""`<out>/data/`: the manifest a GAN run or a matrix trains on, prepared once from a dataset
folder and reused only for the same data, data settings and image bytes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from keras_cxr.config import Config, DataConfig
from keras_cxr.data import default_data_path, imbalanced_from_path, manifest_sha256, read_manifest, write_prepared
from keras_cxr.errors import KerasCXRError
from keras_cxr.identity import differences, records_sha256, said


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
    # A manifest beside its summary is complete (`write_prepared`); one without (a kill between the
    # two writes of an older version) is prepared again.
    if path.exists() and info_path.exists():
        _check_prepared(out_dir, json.loads(info_path.read_text()), source, config, path)
        return path
    records, class_names, info, _ = planned or imbalanced_from_path(source, config.data)
    return write_prepared(path.parent, records, class_names, {
        "data": source, "data_config": config.to_dict()["data"], "content_sha256": records_sha256(records), **info})


def _check_prepared(out_dir: Path, info: dict, source: str, config: Config, path: Path) -> None:
    """A prepared `<out>/data/` is reused only for the same data (by real path), the same data
    settings and unchanged image bytes."""
    # Data settings added since the folder was prepared count at their defaults (what it used).
    prepared = {**dataclasses.asdict(DataConfig()), **(info.get("data_config") or {})}
    before = {"data": os.path.realpath(str(info.get("data"))), "data_config": prepared}
    diffs = differences(before, {"data": os.path.realpath(source), "data_config": config.to_dict()["data"]})
    if diffs:
        raise KerasCXRError(f"{out_dir} was prepared from other data or data settings ({said(diffs)}); "
                            f"use another --out")
    recorded = info.get("content_sha256")  # absent in folders prepared before it was recorded
    if recorded and manifest_sha256(path) != recorded:
        raise KerasCXRError(f"the images listed in {path} changed since it was prepared (content sha256 "
                            f"{recorded[:12]}... -> now another): resuming would mix old and new pixels. Use "
                            f"another --out, or put the original files back")
