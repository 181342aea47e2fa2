"""How a benchmark child process hands its numbers to the parent: one `RESULT {json}` line on
stdout. Kept free of TensorFlow so a parent can read results without starting it (children fix
their thread pools before TensorFlow starts)."""

from __future__ import annotations

import json

PREFIX = "RESULT "


def emit(row: dict) -> None:
    print(PREFIX + json.dumps(row), flush=True)


def parse(stdout: str) -> dict:
    """The child's result from its stdout (other lines, e.g. warnings, are skipped)."""
    return json.loads(next(ln for ln in stdout.splitlines() if ln.startswith(PREFIX))[len(PREFIX):])
