"""Which tracked epoch is the best generator (`gan.export: best`).

The score is the log's `fd`: the Frechet distance of the generator's minority-class images (the
ones a rebalanced train set gets) to the real minority train images. A DCGAN's best epoch has the
lowest. A cDCGAN's must also make labels that mean what they say: among the epochs whose label
fidelity (the extractor's accuracy on generated images of each label) is at least
`gan.min_label_fidelity` for both labels, the lowest `fd`; while no epoch reaches that fidelity,
the one with the highest fidelity of its worse label. Ties keep the earlier epoch.
"""

from __future__ import annotations

import math


def rank(row: dict, conditional: bool, min_fidelity: float) -> tuple | None:
    """A sortable score of one log row (higher is better); None for an epoch that was not evaluated."""
    if row.get("fd") in (None, ""):
        return None
    fd = float(row["fd"])
    if not math.isfinite(fd):
        return (-1, 0.0)
    if not conditional:
        return (1, -fd)
    fidelity = min(float(row["fidelity_label0"]), float(row["fidelity_label1"]))
    return (1, -fd) if fidelity >= min_fidelity else (0, fidelity)


def best_row(rows: list[dict], conditional: bool, min_fidelity: float) -> dict | None:
    """The best evaluated row of a run's log (None if no epoch was evaluated)."""
    best, best_rank = None, None
    for row in rows:
        r = rank(row, conditional, min_fidelity)
        if r is not None and (best_rank is None or r > best_rank):
            best, best_rank = row, r
    return best
