"""How often the matrix's call rule calls a method that has no effect, and how often it finds one
that has: the whole procedure (`keras_cxr.pipeline.summary.summarize`) run on simulated matrices.

    python experiments/answer/null_calls.py [--sims 4000] [--seed 0]

Each simulated matrix has the shape and spreads of the committed quick matrix
(experiments/results/quick: 10 method rows + baseline, 5 seeds): a cell's ROC AUC is
baseline's mean + a seed effect shared by every method of that seed + the method's own noise,
with the seed effect's sd and each row's noise sd taken from the committed cells (a row's noise
sd is the sd of its paired differences over sqrt 2). Under the null no row has an effect; with a
planted effect one row is shifted by twice its MDD. Also run: the rule results.md used before
(a percentile bootstrap CI of the paired differences excluding zero, on ROC AUC or else F1, no
correction over rows), with F1 simulated the same way.

Writes experiments/results/answer/null_calls.md. tests/test_calls.py runs `simulate` with fewer
matrices.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from keras_cxr.pipeline.cells import read_cells  # noqa: E402
from keras_cxr.pipeline.summary import METRICS, minimum_detectable_difference, summarize  # noqa: E402

OUT = REPO / "experiments/results/answer/null_calls.md"
QUICK = REPO / "experiments/results/quick"


def spreads(folder: Path = QUICK, metric: str = "roc_auc") -> dict:
    """From committed cells: baseline's mean, the seed effect's sd and each row's noise sd."""
    cells = read_cells(folder)
    by = {(c["method"], c["seed"]): c["metrics"][metric] for c in cells}
    seeds = sorted({s for m, s in by if m == "baseline"})
    base = np.array([by[("baseline", s)] for s in seeds])
    rows = sorted({m for m, _ in by if m != "baseline"})
    noise = {m: float(np.std([by[(m, s)] - by[("baseline", s)] for s in seeds], ddof=1) / np.sqrt(2)) for m in rows}
    # The seed effect: what baseline's spread leaves after its own noise (the rows' typical noise).
    typical = float(np.median(list(noise.values())))
    seed_sd = float(np.sqrt(max(base.var(ddof=1) - typical ** 2, 0.0)))
    return {"mean": float(base.mean()), "seed_sd": seed_sd, "noise": {"baseline": typical, **noise},
            "seeds": len(seeds)}


def _cells(rng, auc: dict, f1: dict, n_seeds: int, planted: dict) -> list[dict]:
    out = []
    seed_auc, seed_f1 = rng.normal(0, auc["seed_sd"], n_seeds), rng.normal(0, f1["seed_sd"], n_seeds)
    for m in auc["noise"]:
        for s in range(n_seeds):
            a = auc["mean"] + seed_auc[s] + rng.normal(0, auc["noise"][m]) + planted.get(m, 0.0)
            f = f1["mean"] + seed_f1[s] + rng.normal(0, f1["noise"][m])
            metrics = {k: a for k in METRICS}
            metrics["f1"] = f
            out.append({"method": m, "seed": s, "metrics": metrics, "weights_init": "scratch"})
    return out


def _old_rule_calls(summary: dict) -> bool:
    """The former rule: any row whose AUC (else F1) bootstrap CI excludes zero."""
    return any(e["vs_baseline"]["roc_auc"]["ci_excludes_zero"] or e["vs_baseline"]["f1"]["ci_excludes_zero"]
               for m, e in summary["methods"].items() if m != "baseline")


def simulate(sims: int, seed: int = 0, planted_row: str | None = None, n_boot: int = 200) -> dict:
    """Runs the call rule on `sims` simulated matrices; returns the share with any call (no
    planted effect) or the share calling the planted row "better"."""
    auc, f1 = spreads(metric="roc_auc"), spreads(metric="f1")
    n = auc["seeds"]
    planted = {}
    if planted_row is not None:
        sd_diff = auc["noise"][planted_row] * np.sqrt(2)
        planted[planted_row] = 2 * minimum_detectable_difference(sd_diff, n)
    rng = np.random.default_rng(seed)
    any_call = found = old = 0
    for _ in range(sims):
        summary = summarize(_cells(rng, auc, f1, n, planted), n_boot=n_boot)
        calls = {m: e.get("call") for m, e in summary["methods"].items() if m != "baseline"}
        any_call += any(c != "cannot tell" for c in calls.values())
        found += planted_row is not None and calls[planted_row] == "better"
        old += _old_rule_calls(summary)
    return {"sims": sims, "rows": len(auc["noise"]) - 1, "seeds": n, "any_call": any_call / sims,
            "planted": planted, "found": found / sims, "old_rule_any_call": old / sims}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    null = simulate(args.sims, args.seed)
    se = np.sqrt(null["any_call"] * (1 - null["any_call"]) / args.sims)
    power = {row: simulate(args.sims // 4, args.seed + 1 + i, planted_row=row)
             for i, row in enumerate(("smote", "class_weights"))}  # the least and the most noisy AUC rows of the quick matrix
    lines = ["# The call rule on null matrices", "",
             f"`python experiments/answer/null_calls.py --sims {args.sims} --seed {args.seed}`: the whole call procedure "
             f"(`keras_cxr.pipeline.summary.summarize`) on simulated matrices shaped like the committed quick matrix "
             f"({null['rows']} method rows + baseline, {null['seeds']} seeds, each row's spread and the shared seed effect "
             f"from its cells).", "",
             f"family-wise false-call rate: {null['any_call']:.4f}", "",
             f"That is the share of {args.sims} matrices with no true effect in which any row was called better or "
             f"worse (Monte Carlo standard error {se:.4f}); the rule promises at most 0.05.", "",
             f"The rule results.md used before (a percentile bootstrap CI of the paired differences excluding zero, on "
             f"ROC AUC or else F1, no correction over rows) called a row in {null['old_rule_any_call']:.1%} of the same "
             f"null matrices.", "",
             "Power: one row given a true ROC AUC gain of twice its MDD (the others none):", "",
             "| planted row | its noise sd | planted gain | called better |", "|---|---|---|---|"]
    auc = spreads()
    for row, r in power.items():
        lines.append(f"| {row} | {auc['noise'][row]:.4f} | {r['planted'][row]:+.4f} | {r['found']:.1%} of {r['sims']} |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
