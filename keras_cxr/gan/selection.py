"""Which tracked epoch is the best generator (`gan.export: best`).

The score is the log's `fd`: the Frechet distance of the generator's minority-class images (the
ones a rebalanced train set gets) to the real minority train images. A DCGAN's best epoch has the
lowest. A cDCGAN's must also make labels that mean what they say. Its label fidelity (the share
of its images of a label that the extractor classifies as that label) is read relative to the
real images' fidelity under the same extractor: a bar that real chest X-rays fail cannot pick a
generator (the quick extractor calls only 73% of real normal test images normal). Among the
epochs whose fidelity is at least `gan.min_label_fidelity` times the real images' for both
labels, the lowest `fd`; while no epoch reaches that, the one whose worse label has the highest
relative fidelity. Ties keep the earlier epoch.
"""

from __future__ import annotations

import math

ABSOLUTE = (1.0, 1.0)  # real fidelity of a perfect recogniser: the gate reads as an absolute share


def relative_fidelity(row: dict, real_fidelity: tuple[float, float] = ABSOLUTE) -> tuple[float, float]:
    """Each label's generated fidelity over the real images' (inf where real images score 0)."""
    return tuple(float(row[f"fidelity_label{label}"]) / real if real > 0 else math.inf
                 for label, real in enumerate(real_fidelity))


def rank(row: dict, conditional: bool, min_fidelity: float, real_fidelity: tuple[float, float] = ABSOLUTE
         ) -> tuple | None:
    """A sortable score of one log row (higher is better); None for an epoch that was not evaluated.

    `real_fidelity`: the extractor's fidelity on real (test) images of label 0 and 1; the default
    (1, 1) makes `min_fidelity` an absolute share."""
    if row.get("fd") in (None, ""):
        return None
    fd = float(row["fd"])
    if not math.isfinite(fd):
        return (-1, 0.0)
    if not conditional:
        return (1, -fd)
    worse = min(relative_fidelity(row, real_fidelity))
    return (1, -fd) if worse >= min_fidelity else (0, worse)


def best_row(rows: list[dict], conditional: bool, min_fidelity: float,
             real_fidelity: tuple[float, float] = ABSOLUTE) -> dict | None:
    """The best evaluated row of a run's log (None if no epoch was evaluated)."""
    best, best_rank = None, None
    for row in rows:
        r = rank(row, conditional, min_fidelity, real_fidelity)
        if r is not None and (best_rank is None or r > best_rank):
            best, best_rank = row, r
    return best
