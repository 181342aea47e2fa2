"""Record the constants of issue 23's first m25 extractor, whose weights were lost with the machine
that trained them, so that the runs tracked under it stay readable.

    python experiments/migrations/cgan_lost_extractor.py experiments/results/cgan/m25

experiments/cgan/table.py reads each run's tracked ratios against the extractor it was tracked
with (<split>/instruments.json, by `extractor_id`). The screen's runs (2026-11/12, AMD EPYC) were
all tracked under one seed-0 extractor, whose weights were never committed; retrained from the
same seed on another CPU it is a different extractor. Its constants are still in committed files:
- real fidelity per label: the extractor's recall of each label on the real test images, which is
  its record's `specificity` (label 0) and `recall` (label 1);
- seed-0 real-vs-real: `real_vs_real_per_extractor[0]` of any quality.json measured under it.
This writes them, after checking that every run folder under the split that holds that record
and a quality.json agrees on both, and marks the entry `weights_lost`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "cgan"))
from table import extractor_id  # noqa: E402  (sibling experiment module)


def main(split_dir: Path) -> None:
    found: dict[str, list] = {}
    for record_path in sorted(split_dir.glob("*/seed*/extractor/*/seed0.json")):
        run_dir = record_path.parents[2]
        record = json.loads(record_path.read_text())
        quality = run_dir / "quality.json"
        if not quality.exists() or "extractor" in json.loads(quality.read_text()):
            continue  # not measured, or measured after instruments.json existed
        rvr0 = json.loads(quality.read_text())["real_vs_real_per_extractor"][0]
        m = record["test_metrics"]
        found.setdefault(extractor_id(record), []).append((run_dir, (m["specificity"], m["recall"]), rvr0, m["roc_auc"]))
    if len(found) != 1:
        sys.exit(f"error: expected the screen's runs to share one seed-0 extractor. Received: {sorted(found)}")
    (key, runs), = found.items()
    constants = {(fid, rvr0) for _, fid, rvr0, _ in runs}
    if len(constants) != 1:
        sys.exit(f"error: runs under extractor {key} disagree on its constants. Received: {sorted(constants)}")
    (fidelity, rvr0), = constants
    # Seeds 1 and 2 of the same training, where the split's extractor folder still holds its records.
    auc = [runs[0][3]]
    split_records = sorted(split_dir.glob("extractor/*/seed*.json"))
    if split_records and extractor_id(json.loads(split_records[0].read_text())) == key:
        auc = [json.loads(r.read_text())["test_metrics"]["roc_auc"] for r in split_records]
    path = split_dir / "instruments.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    known[key] = {"real_fidelity_per_label": list(fidelity), "real_vs_real0": rvr0, "cpu": "AMD EPYC",
                  "test_roc_auc": auc, "weights_lost": True,
                  "runs": [str(r.relative_to(split_dir)) for r, *_ in runs]}
    path.write_text(json.dumps(known, indent=2) + "\n")
    print(f"{path}: extractor {key} from {len(runs)} runs (real-vs-real {rvr0:.4f}, fidelity {fidelity})")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit(f"error: give the split folder (e.g. experiments/results/cgan/m25). Received: {sys.argv[1:]}")
    main(Path(sys.argv[1]))
