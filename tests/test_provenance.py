"""Every cell says what made it; results.md names the commits, versions and CPUs and warns on a mix."""

import subprocess

import pytest

from keras_cxr.pipeline.provenance import code_version, provenance
from keras_cxr.pipeline.summary import provenance_lines
from tests.conftest import REPO


def test_provenance_names_this_checkout_and_the_libraries():
    p = provenance()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert p["commit"] == head and isinstance(p["dirty"], bool)
    assert set(p["versions"]) == {"keras_cxr", "tensorflow", "keras", "numpy"}
    assert p["versions"]["tensorflow"].startswith("2.21") and p["threads"] >= 1 and p["cpu"]
    assert code_version() is code_version()  # asked once per process


def _cell(commit, dirty=False, tf="2.21.0"):
    return {"provenance": {"commit": commit, "dirty": dirty, "cpu": "AMD EPYC", "threads": 2,
                           "versions": {"keras_cxr": "0.1.0", "tensorflow": tf, "keras": "3.15.1", "numpy": "2.3.0"}}}


def test_results_warn_when_cells_come_from_mixed_code_or_versions():
    same = "\n".join(provenance_lines([_cell("a" * 40), _cell("a" * 40)]))
    assert "- Code: aaaaaaaaaaaa (2 cells)." in same and "Warning" not in same
    mixed = "\n".join(provenance_lines([_cell("a" * 40), _cell("b" * 40, tf="2.21.1"), {}]))
    assert "**Warning: the cells come from more than one commit and more than one set of library versions**" in mixed
    assert "1 cell(s) record no provenance" in mixed
    dirty = "\n".join(provenance_lines([_cell("a" * 40, dirty=True)]))
    assert "aaaaaaaaaaaa with uncommitted changes" in dirty and "come from code with uncommitted changes" in dirty


def test_a_long_command_logs_its_sitting_with_the_code_it_ran(tmp_path):
    import json
    import sys

    from keras_cxr.pipeline.provenance import code_version, run_logged

    assert run_logged([sys.executable, "-c", "raise SystemExit(3)"], tmp_path) == 3
    assert run_logged([sys.executable, "-c", "pass"], tmp_path) == 0
    sittings = json.loads((tmp_path / "sittings.json").read_text())
    assert [s["exit"] for s in sittings] == [3, 0]
    assert all(s["commit"] == code_version()["commit"] and "dirty" in s and s["wall_s"] >= 0 for s in sittings)


@pytest.mark.parametrize("signum, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_sitting_stopped_by_hand_is_logged_too(tmp_path, signum, code):
    """Ctrl-C (SIGINT to the process group) or `kill` (SIGTERM, the only way to stop a background job
    that ignores SIGINT) ends a long experiment between sessions: the sitting still lands in
    sittings.json, with its exit status, so its wall time is on record."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    started = tmp_path / "started"
    child = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(120)"
    script = ("import sys; from keras_cxr.pipeline.provenance import run_logged; "
              f"sys.exit(run_logged([sys.executable, '-c', {child!r}], {str(tmp_path)!r}))")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    os.killpg(proc.pid, getattr(signal, signum))
    assert proc.wait(timeout=60) == code
    sittings = json.loads((tmp_path / "sittings.json").read_text())
    assert [s["exit"] for s in sittings] == [code] and sittings[0]["wall_s"] < 60


def test_results_list_each_gan_rows_generators_and_warn_when_seeds_share_one():
    from keras_cxr.pipeline.summary import generator_lines

    def gan(method, seed, sha, gan_seed):
        return {"method": method, "seed": seed, "generator": {"sha256": sha * 64, "gan_seed": gan_seed,
                                                              "export_epoch": 250}}

    cells = [gan("dcgan", 1, "b", 1), gan("dcgan", 0, "a", 0), gan("cdcgan_a050", 0, "c", None),
             gan("cdcgan_a050", 1, "c", None), {"method": "baseline", "seed": 0, "generator": None}]
    lines = generator_lines(cells, ["baseline", "dcgan", "cdcgan_a050"])
    text = "\n".join(lines)
    dcgan = next(x for x in lines if x.startswith("- dcgan:"))
    assert dcgan == ("- dcgan: 2 distinct in 2 cells that record their generator's sha256. seed 0: aaaaaaaaaaaa "
                     "(GAN seed 0, epoch 250); seed 1: bbbbbbbbbbbb (GAN seed 1, epoch 250).")
    assert "- cdcgan_a050: 1 distinct in 2 cells" in text and "**cdcgan_a050 shares a generator" in text
    assert "dcgan shares" not in text.replace("cdcgan_a050 shares", "") and "baseline" not in text
    assert text.index("- dcgan:") < text.index("- cdcgan_a050:")  # the matrix's row order
    assert generator_lines([cells[-1]], ["baseline"]) == []


def test_wall_time_counts_every_sittings_train_steps_and_leaves_resumed_runs_out_of_the_run_column(tmp_path):
    import json

    from keras_cxr.pipeline.summary import wall_time_lines

    for name, resumed in (("dcgan_g0", 0), ("dcgan_g1", 59)):
        run = tmp_path / name
        run.mkdir()
        (run / "log.csv").write_text("epoch,epoch_s\n1,10.5\n2,9.5\n")
        (run / "done.json").write_text(json.dumps({"wall_s": 30.0, "resumed_after": resumed}))

    def cell(method, seed, total, run=None):
        g = ({"path": str(tmp_path / "models" / run / "1"), "sha256": run, "kind": "dcgan", "alpha": None,
              "gan_seed": int(run[-1])} if run else None)  # as train_cell records a generator
        return {"method": method, "seed": seed, "timings_s": {"total": total}, "generator": g}

    cells = [cell("baseline", 0, 100.0), cell("baseline", 1, 300.0), cell("baseline", 2, 200.0),
             cell("dcgan", 0, 150.0, "dcgan_g0"), cell("dcgan", 1, 250.0, "dcgan_g1")]
    lines = wall_time_lines(tmp_path, cells, ["baseline", "dcgan"])
    assert "| baseline | 3 | 600 | 200 | - | - | - |" in lines
    assert "| dcgan | 2 | 400 | 200 | 2 | 40 | 30 (1) |" in lines  # g1 was resumed: its 30 s are one sitting's
    assert wall_time_lines(tmp_path, [], []) == []
    older = [{"method": "baseline", "seed": 0, "timings_s": {"train": 1.0}, "generator": None}]  # no total recorded
    assert "| baseline | 1 | - | - | - | - | - |" in wall_time_lines(tmp_path, older, ["baseline"])
    assert "| dcgan | 1 | 150 | 150 | 1 | - | - |" in wall_time_lines(tmp_path / "elsewhere", cells[3:4], ["dcgan"])


def test_the_committed_matrices_cells_written_before_hashes_and_totals_still_summarise():
    """Cells of the committed quick matrices predate the generator sha256 and the total seconds:
    the sections that read them say so instead of failing (`report` rewrites those results.md)."""
    from keras_cxr.pipeline.cells import read_cells
    from keras_cxr.pipeline.summary import generator_lines, wall_time_lines

    out = REPO / "experiments" / "results" / "quick"
    cells = read_cells(out)
    methods = sorted({c["method"] for c in cells})
    text = "\n".join(generator_lines(cells, methods) + wall_time_lines(out, cells, methods))
    assert "- dcgan: 0 distinct in 0 cells that record their generator's sha256 (of 5). seed 0: not recorded" in text
    assert "| dcgan | 5 | " in text
