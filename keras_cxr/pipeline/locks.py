"""One writer per run folder, matrix cell or summary, across processes and machines sharing a
filesystem (`run_lock`), and the clean-up of temporaries a killed writer left (`remove_stale_tmp`)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from keras_cxr.errors import KerasCXRError


def remove_stale_tmp(*folders: str | os.PathLike, prefix: str = "") -> list[Path]:
    """Deletes the temporaries `atomic_path` leaves behind when a process is killed mid-write.

    Only safe while holding the lock that covers those files: another writer's live temporary
    looks the same. `prefix` narrows it to one destination's (e.g. "baseline__seed0.": that
    cell's files only). Returns what was removed.
    """
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for tmp in folder.glob(f".{glob.escape(prefix)}*.tmp"):
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


# A lock's holder refreshes its file's mtime every HEARTBEAT_S; another machine's lock (whose pid
# cannot be checked from here) is stale once its mtime is older than KERAS_CXR_LOCK_STALE_S
# (default 600 s): a node lost mid-run on a cluster does not block the others for ever.
HEARTBEAT_S = 30.0
POLL_S = 2.0  # how often a waiting lock looks again


class LockBusy(KerasCXRError):
    """The lock file `path` is held by a live process (`holder`: pid, host, what it does)."""

    def __init__(self, path: Path, holder: dict):
        self.path, self.holder = path, holder
        super().__init__(f"{self.in_use()}; lock file {path}. Wait for it to finish; if that process is gone "
                         f"for good, delete {path}")

    def in_use(self) -> str:
        h = self.holder
        return f"{self.path.parent} is in use by another {h.get('what', 'keras_cxr')} process (pid {h.get('pid')} on {h.get('host')})"


def _stale_after_s() -> float:
    value = os.environ.get("KERAS_CXR_LOCK_STALE_S", "600")
    try:
        return float(value)
    except ValueError:
        raise KerasCXRError(f"KERAS_CXR_LOCK_STALE_S must be a number of seconds. Received: {value!r}") from None


def _holder_alive(holder: dict, path: Path) -> bool:
    if holder.get("host") != socket.gethostname():
        try:
            return time.time() - path.stat().st_mtime < _stale_after_s()  # its heartbeat
        except FileNotFoundError:
            return False
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


def raise_if_held(folder: str | os.PathLike, name: str = ".lock") -> None:
    """LockBusy if a live process holds `folder/name` now (a cheap look before costly set-up;
    taking the lock is still what decides)."""
    path = Path(folder) / name
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if _holder_alive(holder, path):
        raise LockBusy(path, holder)


def _is_mine(path: Path, me: dict) -> bool:
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (held.get("pid"), held.get("host"), held.get("started")) == (me["pid"], me["host"], me["started"])


def _heartbeat(path: Path, me: dict, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        if _is_mine(path, me):
            with contextlib.suppress(OSError):
                os.utime(path)


def _try_take(folder: Path, name: str, me: dict) -> None:
    """Takes `folder/name` for `me`, or raises LockBusy naming the live holder."""
    path = folder / name
    # Not `.tmp`: `remove_stale_tmp` must never take a contender's half-made lock.
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".pending", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        for _ in range(5):
            try:
                os.link(tmp, path)
                return
            except FileExistsError:
                try:
                    holder = json.loads(path.read_text())
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                except (OSError, ValueError):
                    holder = {}
                if _holder_alive(holder, path):
                    raise LockBusy(path, holder)
                # Stale: move it aside under a name of our own, so that of two processes taking
                # over at once only one succeeds; the other finds our fresh lock next round.
                aside = folder / f".{name}.stale-{os.getpid()}.pending"
                try:
                    os.replace(path, aside)
                except FileNotFoundError:
                    continue
                aside.unlink(missing_ok=True)
                print(f"note: took over the stale lock {path} (pid {holder.get('pid')} on "
                      f"{holder.get('host')} is gone)", file=sys.stderr)
        raise KerasCXRError(f"could not take the lock {path}; another process keeps changing it")
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, name: str = ".lock", what: str = "keras_cxr", wait: bool = False):
    """Makes this process the one writer of `folder` (or of what `name` stands for) for the block.

    The lock file (JSON: pid, host, process start time, command) appears complete or not at all
    (hard link of a finished temporary), so it is safe on a filesystem that several machines
    share. A lock whose process is gone, or whose pid now belongs to another process, or (another
    machine's) whose heartbeat stopped, is stale and taken over with a note. A live holder makes
    it raise LockBusy naming its pid, or, with `wait`, makes it wait (saying so once).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start(os.getpid()), "what": what}
    said = False
    while True:
        try:
            _try_take(folder, name, me)
            break
        except LockBusy as busy:
            if not wait:
                raise
            if not said:
                print(f"waiting: {busy.in_use()}", flush=True)
                said = True
            time.sleep(POLL_S)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, me, stop), daemon=True, name=f"heartbeat {path}")
    beat.start()
    try:
        yield path
    finally:
        stop.set()
        if _is_mine(path, me):
            with contextlib.suppress(OSError):
                path.unlink()
