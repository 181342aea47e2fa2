"""`evaluate-all --preset tiny` end to end on the bundled sample: every cell, the summary, resume."""

import json
import math
import re
from pathlib import Path

import h5py
import pytest

from keras_cxr.methods import get_method, method_names
from keras_cxr.metrics import metrics_from_confusion
from keras_cxr.pipeline.cli import main

pytestmark = pytest.mark.slow
METHODS = method_names()  # the tiny preset's: the paper's alphas
# Quality tracked and the best epoch exported, as the quick preset does.
TRACKED = ["--export", "best", "--set", "gan.eval_every=1", "--set", "gan.eval_images=16"]


@pytest.fixture(scope="module")
def tiny_matrix(tmp_path_factory):
    """One `evaluate-all --preset tiny` run on the bundled sample, shared by the tests below."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("tiny") / "matrix"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["evaluate-all", "--preset", "tiny", "--out", str(out), "--quiet", *TRACKED]) == 0
    return out, buf.getvalue()


def test_evaluate_all_tiny(tiny_matrix, capsys):
    out, printed = tiny_matrix
    assert "[22/22]" in printed and "ETA" in printed
    for method in METHODS:
        for seed in (0, 1):
            cell = json.loads((out / "cells" / f"{method}__seed{seed}.json").read_text())
            derived = metrics_from_confusion(cell["metrics"]["confusion_matrix"])
            scalars = {k: v for k, v in cell["metrics"].items() if k != "confusion_matrix"}
            assert scalars and all(isinstance(v, (int, float)) and math.isfinite(v) for v in scalars.values()), \
                (method, seed, scalars)  # a NaN metric (e.g. AUC of a one-class split) fails here
            for k in ("precision", "recall", "specificity", "f1", "accuracy"):
                assert cell["metrics"][k] == pytest.approx(derived[k]), (method, seed, k)
            assert sum(map(sum, cell["metrics"]["confusion_matrix"])) == 100  # the sample's test split
            n0, n1 = cell["train_counts"]
            if method in ("baseline", "class_weights"):
                assert n0 > n1, (method, cell["train_counts"])
            elif method == "adasyn":  # ADASYN's per-sample rounding balances only approximately
                assert abs(n0 - n1) <= 0.05 * max(n0, n1), cell["train_counts"]
            else:
                assert n0 == n1, (method, cell["train_counts"])
            assert cell["train_counts_before"] == [196, 62]  # the real imbalanced train set
            spec = get_method(method).generator
            if spec is not None:
                g = cell["generator"]
                assert g["path"].endswith(f"models/{method}/1") and g["label"] == 1 and g["count"] == 134
                assert (g["kind"], g["alpha"]) == (spec.kind, spec.alpha)
            else:
                assert cell["generator"] is None
            assert Path(cell["weights"]).is_file()
            with h5py.File(cell["weights"]) as h5:  # model weights only, no optimizer slots
                assert "optimizer" not in h5 and "layers" in h5
    md = (out / "results.md").read_text()
    assert all(f"| {m} |" in md for m in METHODS)
    assert "Missing cells" not in md
    # tiny shares one generator per GAN row between seeds (generator_per_seed off): said, with a warning
    assert "- dcgan: 1 distinct in 2 cells that record" in md and "**dcgan shares a generator between seeds**" in md
    assert re.search(r"\| dcgan \| 2 \| \d+ \| \d+ \| 1 \| \d+ \| \d+ \(1\) \|", md)  # wall time, one sitting
    assert re.search(r"\| baseline \| 2 \| \d+ \| \d+ \| - \| - \| - \|", md)
    assert (out / "results.csv").read_text().count("\n") == 23

    # A rerun does no work, and a shard only sees its cells.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    assert main(["evaluate-all", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    assert "22 already done, 0 to run" in capsys.readouterr().out
    assert before == {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    # A clone without the generator folders (they stay out of git) still knows its GAN cells' generators:
    # their runs' done.json recorded the exports' bytes. No cell is stale, no generator retrained.
    (out / "models").rename(out / "models.away")
    try:
        assert main(["evaluate-all", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
        assert "22 already done, 0 to run" in capsys.readouterr().out and not (out / "models").exists()
    finally:
        (out / "models.away").rename(out / "models")
    assert main(["evaluate-all", "--preset", "tiny", "--out", str(out), "--shard", "1/4", "--quiet"]) == 0
    assert "6 cells in this shard (1/4), 6 already done" in capsys.readouterr().out


def test_evaluate_all_bad_arguments(tmp_path, capsys):
    assert main(["evaluate-all", "--preset", "tiny", "--out", str(tmp_path), "--methods", "gan9000"]) == 2
    assert "unknown method(s) ['gan9000']" in capsys.readouterr().err
    assert main(["evaluate-all", "--preset", "tiny", "--out", str(tmp_path), "--shard", "4/4"]) == 2
    assert "`--shard` must be K/N" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path), "--n-generated", "1"]) == 2
    assert "error: `--n-generated` must be >= 2. Received: n_generated=1" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_shard_auto_reads_the_cluster_variables():
    from keras_cxr.errors import KerasCXRError
    from keras_cxr.pipeline.matrix import parse_shard

    assert parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "8"}) == (7, 8)
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1",
             "SLURM_ARRAY_TASK_STEP": "2"}  # --array=1-5:2
    assert parse_shard("auto", slurm) == (2, 3)
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "0", "KERAS_CXR_SHARD_COUNT": "4"}) == (0, 4)
    for env, message in (({"JOB_COMPLETION_INDEX": "0"}, "KERAS_CXR_SHARD_COUNT is not"),
                         ({"SLURM_ARRAY_TASK_ID": "3"}, "SLURM_ARRAY_TASK_COUNT is not"),
                         ({"JOB_COMPLETION_INDEX": "4", "KERAS_CXR_SHARD_COUNT": "4"}, "Received: K=4, N=4"),
                         ({"JOB_COMPLETION_INDEX": "x", "KERAS_CXR_SHARD_COUNT": "4"}, "JOB_COMPLETION_INDEX must be an integer"),
                         ({}, "none is set")):
        with pytest.raises(KerasCXRError, match=message):
            parse_shard("auto", env)


def test_report_writes_every_section_and_no_broken_links(tiny_matrix):
    import re

    out, _ = tiny_matrix
    assert main(["report", "--results", str(out), "--n-generated", "60", "--extractor-seeds", "0", "1"]) == 0
    report = (out / "report.md").read_text()
    for section in ("## Generated samples", "## GAN losses", "## Results", "## Confusion matrices", "## ROC curves",
                    "## Grad-CAM", "## Generated-image quality", "## Memorisation"):
        assert section in report, section
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert len(links) >= 15 and all((out / link).is_file() for link in links)
    for run in ("dcgan", "cdcgan_a025", "cdcgan_a050", "cdcgan_a075"):  # tracked Frechet by epoch
        assert f"report/frechet_{run}.png" in links
        done = json.loads((out / run / "done.json").read_text())
        assert done["export"] == "best" and done["export_epoch"] == done["best"]["epoch"]
    # The bundled sample has 62 real pneumonia train images against the tiny extractor's 128
    # features: the table is shown with the warning to read ratios, not absolute distances.
    assert "With 62 real reference images against 128 feature dimensions the covariances are rank-deficient" in report
    assert "| real train vs real test | " in report and "Not shown: " not in report
    assert "| cdcgan_a050 | " in report and "| dcgan | - | " in report  # label fidelity (DCGAN: its label only)
    quality = json.loads((out / "report.json").read_text())["quality"]
    # Frechet spread: one value per extractor seed, from extractors cached beside the cells.
    for q in quality.values():
        assert len(q["frechet_per_seed"]) == 2 and q["extractor_seeds"] == [0, 1]
    assert len(list((out / "extractor").glob("*/seed1.json"))) == 1
    shares = json.loads((out / "report.json").read_text())["lung_share"]
    assert set(shares) == set(METHODS)
    # 32x32 input: the last block is 1x1, every CAM is uniform, its share is the mask's area.
    from keras_cxr.explain.gradcam import lung_mask

    # (nan where a 1-epoch model's CAMs are all zero: no positive evidence anywhere.)
    values = [v for vs in shares.values() for v in vs]
    assert any(v == v for v in values)
    assert all(v != v or v == pytest.approx(lung_mask(32).mean(), abs=1e-6) for v in values)


# Loss weights + shuffle + augmentation + init, and streamed generated images. (imbalanced-learn's
# draws take an explicit random_state; the full tiny matrix above runs them.)
IDENTITY_METHODS = ("class_weights", "cdcgan_a050")


def _evaluate_all(out, *args, env=None):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "keras_cxr", "evaluate-all", "--preset", "tiny", "--out", str(out), "--quiet",
           *TRACKED, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


def _finish(proc):
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    return output


def _same_start(reference, out, parts=("data", "cdcgan_a050", "models")):
    """A fresh --out holding the reference run's manifest and trained generator, nothing else."""
    import shutil

    for part in parts:
        shutil.copytree(reference / part, out / part)
    return out


def _cluster_shard(out, methods, env):
    """One shard as a cluster starts it: the SLURM array script, or the Kubernetes Job's command."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    env.pop("SLURM_CPUS_PER_TASK", None)  # same op-thread count as the reference (see below)
    extra = [*TRACKED, "--methods", *methods]
    if "SLURM_ARRAY_TASK_ID" in env:
        cmd = ["bash", str(REPO / "experiments" / "cluster" / "slurm_array.sh"), *extra]
        env.update(PYTHON=sys.executable, PRESET="tiny", OUT=str(out))
    else:
        cmd = [sys.executable, "-m", "keras_cxr", "evaluate-all", "--preset", "tiny", "--out", str(out),
               "--shard", "auto", "--quiet", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_cell_numbers_depend_only_on_data_settings_method_and_seed(tiny_matrix, tmp_path):
    """(a) the whole matrix in one process (the fixture: all 11 methods, default order, generators
    trained mid-run); (b) `--methods` and `--seeds` reversed, killed with SIGKILL after 2 cells
    and resumed, so every cell runs after other cells than in (a), or first in its process;
    (c) three shard processes at once, started as a SLURM array and a Kubernetes Indexed Job
    start them (`_sharded_like_a_cluster`). Every cell's metrics and per-image test scores must
    be identical."""
    import os
    import signal
    import time

    reference, _ = tiny_matrix
    reversed_order = ["--methods", *reversed(IDENTITY_METHODS), "--seeds", "1", "0"]
    b = _same_start(reference, tmp_path / "b")
    proc = _evaluate_all(b, *reversed_order)
    while len(list((b / "cells").glob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before_kill = len(list((b / "cells").glob("*.json")))
    assert 2 <= done_before_kill < 2 * len(IDENTITY_METHODS)
    resumed = _finish(_evaluate_all(b, *reversed_order))
    assert f"{done_before_kill} already done" in resumed
    c = _sharded_like_a_cluster(reference, tmp_path / "c")

    compared = 0
    for method in IDENTITY_METHODS:
        for seed in (0, 1):
            name = f"{method}__seed{seed}.json"
            want = json.loads((reference / "cells" / name).read_text())
            for run in (b, c):
                got = json.loads((run / "cells" / name).read_text())
                assert got["metrics"] == want["metrics"], (run.name, name)
                assert got["test_scores"] == want["test_scores"], (run.name, name)
                compared += 1
    assert compared == 2 * 2 * len(IDENTITY_METHODS)
    for run in (b, c):
        assert not list(run.rglob(".*.tmp")), run  # the kill's half-written files are gone


def _sharded_like_a_cluster(reference, c):
    """Three `--shard auto` processes on one --out at once: tasks 1 and 2 of a SLURM array
    `--array=1-3` (through experiments/cluster/slurm_array.sh) and pod 2 of a 3-completion
    Kubernetes Indexed Job. The cDCGAN's generator is not there yet: two shards need it. Every
    cell must run exactly once, the generator be trained exactly once, and the summary equal an
    unsharded run's over the same cells."""
    from keras_cxr.pipeline.cli import main

    c = _same_start(reference, c, parts=("data", "extractor"))
    slurm = {"SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"}
    envs = [{**slurm, "SLURM_ARRAY_TASK_ID": "1"}, {**slurm, "SLURM_ARRAY_TASK_ID": "2"},
            {"JOB_COMPLETION_INDEX": "2", "KERAS_CXR_SHARD_COUNT": "3"}]
    # Same op-thread count as (a): KERAS_CXR_THREADS changes float summation order, like another CPU.
    outputs = [_finish(proc) for proc in [_cluster_shard(c, IDENTITY_METHODS, env) for env in envs]]
    for k, output in enumerate(outputs):
        assert f"cells in this shard ({k}/3)" in output, output[-2000:]
    ran = [line.split("] ", 1)[1].split(":")[0] for output in outputs for line in output.splitlines()
           if line.startswith("[") and "] " in line and " seed " in line]
    cells = [f"{m} seed {s}" for m in IDENTITY_METHODS for s in (0, 1)]
    assert sorted(ran) == sorted(cells), outputs  # every cell once, in one shard
    assert sum(output.count("cdcgan_a050: training epochs") for output in outputs) == 1, outputs

    # The unsharded summary of the same cells: the reference run's, written by evaluate-all.
    # With the generators the cells were made from: a cell's identity includes its generator's bytes.
    unsharded = _same_start(reference, c.parent / "unsharded", parts=("data", "models"))
    (unsharded / "cells").mkdir()
    for cell in cells:
        name = cell.replace(" seed ", "__seed") + ".json"
        (unsharded / "cells" / name).write_bytes((reference / "cells" / name).read_bytes())
    assert main(["evaluate-all", "--preset", "tiny", "--out", str(unsharded), "--quiet", *TRACKED,
                 "--methods", *IDENTITY_METHODS]) == 0
    def table(folder):  # results.md up to the sections on how the cells were made (generator files, wall time)
        return (folder / "results.md").read_text().replace(str(folder), "OUT").split("\n## Generators")[0]

    assert table(c) == table(unsharded) and "## Provenance" in table(c)

    def numbers(folder):  # results.csv without its wall-time column
        return [line.rsplit(",", 1)[0] for line in (folder / "results.csv").read_text().splitlines()]

    assert numbers(c) == numbers(unsharded) and numbers(c)[0].endswith("train_pneumonia")
    return c
