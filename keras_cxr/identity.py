"""What a result is made of: content digests of images and generators, and the differences
between two identity records, said in one line.

A resumed GAN run, a reused matrix cell and a reused manifest are each checked against the
identity they were made with (`pipeline.run_folder`, `pipeline.cells`, `pipeline.matrix`): the
sha256 of the image bytes they read (paths do not count, so `./data` and `/abs/data` are the
same data) and the settings that change their numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

_CHUNK = 1 << 20
# (real path, size, mtime_ns) -> sha256: a file is hashed once per process unless it changes.
_FILE_DIGESTS: dict = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, cached by its size and modification time."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(real, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]


def records_sha256(records) -> str:
    """sha256 over (split, label, image bytes) of manifest records, in their order.

    An .npz row (`<file>.npz#<split>/<i>`) counts as the archive's digest plus its member.
    """
    h = hashlib.sha256()
    for r in records:
        path, member = r.file.rsplit("#", 1) if ".npz#" in r.file else (r.file, "")
        h.update(f"{r.split},{r.label},{file_sha256(path)}#{member}\n".encode())
    return h.hexdigest()


def folder_sha256(folder: str | os.PathLike) -> str:
    """sha256 over every file of a folder (relative names and bytes): a SavedModel's identity."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return h.hexdigest()


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _short(value) -> str:
    if isinstance(value, str) and len(value) == 64:  # a sha256: its first 12 digits say enough
        return value[:12] + "..."
    return json.dumps(value)


def differences(before: dict, now: dict) -> list[str]:
    """`key: old -> new` for every field that differs between two (nested) identity records."""
    a, b = _flatten(before), _flatten(now)
    return [f"{k}: {_short(a.get(k))} -> {_short(b.get(k))}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def said(diffs: list[str], most: int = 3) -> str:
    """The first differences, in one line."""
    return "; ".join(diffs[:most]) + (f"; and {len(diffs) - most} more" if len(diffs) > most else "")
