"""What made a result: the code (commit, uncommitted changes), the library versions, the threads
and the CPU. Recorded in every cell beside its identity (`keras_cxr.pipeline.cells`), which says
what a cell's numbers depend on; provenance says what produced them, so that `results.md` can
name every commit and version its cells came from and warn when they are mixed."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from keras_cxr.kernels import cpuinfo

PACKAGES = ("keras_cxr", "tensorflow", "keras", "numpy")


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """The git commit of the checkout keras_cxr runs from and whether it has uncommitted changes
    (None for both when installed from a wheel, outside any checkout)."""
    root = Path(__file__).resolve().parents[2]  # keras_cxr/pipeline/provenance.py -> the checkout

    def git(*args):
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", "keras_cxr")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    return cpuinfo("model name") or platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=1)
def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    """Code, versions, op threads (the KERAS_CXR_THREADS cap, or the CPU count TensorFlow uses) and CPU."""
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return {**code_version(), "versions": dict(versions()), "threads": threads, "cpu": cpu_model(),
            "cpus": os.cpu_count()}


class _Terminated(Exception):
    """SIGTERM reached the parent of a logged sitting."""


def _raise_terminated(signum, frame):
    raise _Terminated


def run_logged(cmd: list[str], folder, cwd=None) -> int:
    """Runs `cmd` (a long experiment command) and appends one sitting to `<folder>/sittings.json`:
    the command, its start (UTC), wall seconds, exit status, CPU, the op-thread cap and the code
    (commit, uncommitted changes) it ran, also when it is stopped with Ctrl-C (exit 130) or SIGTERM
    (exit 143: `kill`, a scheduler's preemption; a background job started from a script ignores
    SIGINT, so SIGTERM is how it is stopped). Returns the exit status."""
    import json
    import signal
    import subprocess
    import threading
    import time
    from pathlib import Path

    folder = Path(folder)
    print("$", " ".join(cmd[1:]), flush=True)
    t0 = time.time()
    in_main = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        with subprocess.Popen(cmd, cwd=cwd) as child:
            try:
                rc = child.wait()
            except (KeyboardInterrupt, _Terminated) as stop:  # stopped by hand or by a scheduler: a sitting too
                child.terminate()  # resumable commands: stopped between their checkpoints, not corrupted
                child.wait()
                rc = 130 if isinstance(stop, KeyboardInterrupt) else 143
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "sittings.json"
    sittings = json.loads(log.read_text()) if log.exists() else []
    sittings.append({"command": " ".join(cmd[1:]), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t0)),
                     "wall_s": round(time.time() - t0, 1), "exit": rc, "cpu": cpu_model(), "cpus": os.cpu_count(),
                     "threads": os.environ.get("KERAS_CXR_THREADS", "all"), **code_version()})
    log.write_text(json.dumps(sittings, indent=2) + "\n")
    return rc
