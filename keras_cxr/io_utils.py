"""Atomic file writes: a reader never sees a half-written manifest, log or model."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from keras_cxr.errors import KerasCXRError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False):
    """Yields a temporary sibling of `path`; renames it onto `path` only if the block succeeds.

    Args:
        path: str or Path. Final destination (file or directory).
        is_dir: bool. Create the temporary path as a directory. Defaults to False.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.filename is None:  # a write through a file handle: say which file it was for
                raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
            raise
        # mkstemp/mkdtemp create 0600/0700 paths; give the result the usual umask-based
        # permissions so another user (a TF Serving process, a colleague) can read it.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    """Writes `obj` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    # numpy scalars and arrays show up in metric dicts; JSON has no type for them.
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def remove_stale_tmp(*folders: str | os.PathLike) -> list[Path]:
    """Deletes the temporaries `atomic_path` leaves behind when a process is killed mid-write.

    Only safe while holding the folder's `run_lock`: another writer's live temporary looks the same.
    Returns what was removed.
    """
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None  # field 22; Z = zombie


def _holder_alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process: we cannot tell, so it holds
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_start(pid)
    if started is None:
        return not Path("/proc").is_dir()  # no /proc: trust the kill(0) answer
    return holder.get("started") in (None, started)


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, name: str = ".lock", what: str = "keras_cxr"):
    """Makes this process the one writer of `folder` for the duration of the block.

    The lock file (JSON: pid, host, process start time, command) appears complete or not at all
    (hard link of a finished temporary). A lock whose process is gone, or whose pid now belongs
    to another process, is stale and taken over with a note; a live holder gets a KerasCXRError
    naming its pid.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start(os.getpid()), "what": what}
    # Not `.tmp`: `remove_stale_tmp` must never take a contender's half-made lock.
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".pending", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        for _ in range(5):
            try:
                os.link(tmp, path)
                break
            except FileExistsError:
                try:
                    holder = json.loads(path.read_text())
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                except (OSError, ValueError):
                    holder = {}
                if _holder_alive(holder):
                    raise KerasCXRError(
                        f"{folder} is in use by another {holder.get('what', 'keras_cxr')} process "
                        f"(pid {holder.get('pid')} on {holder.get('host')}; lock file {path}). Wait for it "
                        f"to finish; if that process is gone for good, delete {path}")
                # Stale: move it aside under a name of our own, so that of two processes taking
                # over at once only one succeeds; the other finds our fresh lock next round.
                aside = folder / f".{name}.stale-{os.getpid()}.pending"
                try:
                    os.replace(path, aside)
                except FileNotFoundError:
                    continue
                aside.unlink(missing_ok=True)
                print(f"note: took over the stale lock {path} (pid {holder.get('pid')} is gone)", file=sys.stderr)
        else:
            raise KerasCXRError(f"could not take the lock {path}; another process keeps changing it")
    finally:
        Path(tmp).unlink(missing_ok=True)
    try:
        yield path
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
