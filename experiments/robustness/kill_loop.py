"""Kill -9 loop: a `train-gan` run killed five times, resumed each time, must end with the same
weights and the same exported generator as an uninterrupted run.

Kills, in order: at a random moment, while a checkpoint file is being written, at a random moment
(then the newest checkpoint is truncated, as a cut-off write on a filesystem without atomic
rename would leave it, to show the fallback), while a checkpoint is being written, and while the
generator is being exported. "While being written" is observed, not arranged: the loop watches
the run folder and sends SIGKILL the moment a temporary of that kind appears, so nothing in
keras_cxr knows it is being tested.

    python experiments/robustness/kill_loop.py [--workdir DIR] [--seed 0]

Writes experiments/robustness/results/kill_loop.{md,json}. Tiny preset with 64 filters (so a
checkpoint write takes long enough to be caught), cDCGAN alpha 0.5, 8 epochs, bundled sample.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "experiments" / "robustness" / "results"
SETTINGS = ["--preset", "tiny", "--set", "gan.filters=64", "--set", "gan.cdcgan_epochs=8", "--set", "gan.seed=0"]
RUN = "cdcgan_a050"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "keras_cxr", *args]


def train_cmd(manifest: Path, out: Path) -> list[str]:
    return cli("train-gan", "--model", "cdcgan", "--alpha", "0.5", *SETTINGS, "--manifest", str(manifest),
               "--out", str(out), "--quiet")


def litter(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*.tmp"))


def checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / RUN / "checkpoints").glob("epoch-*.npz*"))


def watch_and_kill(proc: subprocess.Popen, out: Path, target: str, rng: random.Random) -> dict:
    """Sends SIGKILL when `target` happens: 'random' (a uniform moment 4-12 s after start),
    'checkpoint' (a checkpoint temporary exists) or 'export' (a SavedModel temporary exists)."""
    t0 = time.perf_counter()
    deadline = t0 + rng.uniform(4.0, 12.0)
    ckpt_dir, models_dir = out / RUN / "checkpoints", out / "models" / RUN
    while proc.poll() is None:
        now = time.perf_counter()
        if target == "random" and now >= deadline:
            break
        if target == "checkpoint" and ckpt_dir.is_dir() and any(n.endswith(".tmp") for n in os.listdir(ckpt_dir)):
            break
        if target == "export" and models_dir.is_dir() and any(n.endswith(".tmp") for n in os.listdir(models_dir)):
            break
        time.sleep(0.0002 if target != "random" else 0.01)
    if proc.poll() is not None:
        return {"target": target, "killed": False, "note": "the run ended before the moment came"}
    os.kill(proc.pid, signal.SIGKILL)
    stdout, stderr = proc.communicate()
    return {"target": target, "killed": True, "after_s": round(time.perf_counter() - t0, 2),
            "litter_left_by_kill": litter(out), "checkpoints_after_kill": checkpoints(out),
            "said": said(stdout + stderr)}


def said(output: str) -> list[str]:
    """What keras_cxr printed about resuming (TensorFlow's own start-up lines left out)."""
    keys = ("resuming", "set it aside", "took over", "error:", "already trained")
    return [line.strip() for line in output.splitlines()
            if any(k in line for k in keys) and not re.match(r"[IWEF]\d{4} ", line)]


def final_state(out: Path, probe_latent: np.ndarray) -> tuple[dict, np.ndarray]:
    import tensorflow as tf

    last = sorted((out / RUN / "checkpoints").glob("epoch-*.npz"))[-1]
    with np.load(last) as z:
        arrays = {k: z[k] for k in z.files}
    model = tf.saved_model.load(str(out / "models" / RUN / "1"))
    images = model.signatures["serving_default"](latent=tf.constant(probe_latent),
                                                 label=tf.constant([0, 1] * 4, tf.int32))["images"].numpy()
    return arrays, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="scratch folder (default: a new temporary one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kill_loop_"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    subprocess.run(cli("data", "prepare", "--val-per-class", "4", "--out", str(data)), check=True, env=ENV,
                   cwd=REPO, capture_output=True)
    manifest = data / "manifest.csv"

    t = time.perf_counter()
    ref = work / "uninterrupted"
    subprocess.run(train_cmd(manifest, ref), check=True, env=ENV, cwd=REPO, capture_output=True)
    ref_wall = time.perf_counter() - t
    print(f"uninterrupted run: {ref_wall:.1f} s", flush=True)

    out = work / "killed"
    kills, resumes = [], []
    for i, target in enumerate(["random", "checkpoint", "random", "checkpoint", "export"], start=1):
        proc = subprocess.Popen(train_cmd(manifest, out), env=ENV, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        event = watch_and_kill(proc, out, target, rng)
        event["kill"] = i
        if i == 3 and checkpoints(out):  # then a cut-off newest checkpoint, for the fallback
            newest = out / RUN / "checkpoints" / [c for c in checkpoints(out) if c.endswith(".npz")][-1]
            newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])
            event["truncated"] = newest.name
        kills.append(event)
        print(json.dumps(event), flush=True)
        if event["killed"] is False:
            break
    t = time.perf_counter()
    final = subprocess.run(train_cmd(manifest, out), env=ENV, cwd=REPO, capture_output=True, text=True)
    resumes.append({"returncode": final.returncode, "wall_s": round(time.perf_counter() - t, 1),
                    "said": said(final.stdout + final.stderr)})
    assert final.returncode == 0, final.stderr[-2000:]

    probe = np.random.default_rng(1).standard_normal((8, 100)).astype(np.float32)
    ref_arrays, ref_images = final_state(ref, probe)
    arrays, images = final_state(out, probe)
    weight_diff = max(float(np.abs(ref_arrays[k].astype(np.float64) - arrays[k]).max()) for k in ref_arrays)
    identical = ref_arrays.keys() == arrays.keys() and all(np.array_equal(ref_arrays[k], arrays[k]) for k in ref_arrays)
    image_diff = float(np.abs(ref_images - images).max())
    done = json.loads((out / RUN / "done.json").read_text())
    summary = {
        "settings": " ".join(SETTINGS), "seed_of_kill_moments": args.seed, "uninterrupted_wall_s": round(ref_wall, 1),
        "kills": kills, "final_resume": resumes[-1], "epochs": done["epochs"],
        "final_checkpoint_bit_identical": identical, "final_checkpoint_max_abs_diff": weight_diff,
        "exported_images_max_abs_diff": image_diff, "litter_after_final_resume": litter(out),
        "corrupt_set_aside": [c for c in checkpoints(out) if c.endswith(".corrupt")],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kill_loop.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Kill -9 loop over `train-gan`",
        "",
        f"`python experiments/robustness/kill_loop.py --seed {args.seed}` (this project's 2-core CPU machine, "
        f"TensorFlow {__import__('tensorflow').__version__}). Run: `train-gan --model cdcgan --alpha 0.5 "
        f"{' '.join(SETTINGS)}` on the bundled sample; the uninterrupted run took {ref_wall:.1f} s.",
        "",
        "| kill | aimed at | after (s) | what the killed process had printed | temporaries the kill left | checkpoints on disk after the kill |",
        "|---|---|---|---|---|---|",
    ]
    for k in kills:
        extra = f" (then truncated {k['truncated']})" if k.get("truncated") else ""
        printed = "<br>".join(f"`{line}`" for line in k.get("said", [])) or "-"
        lines.append(f"| {k['kill']} | {k['target']} | {k.get('after_s', '-')} | {printed} | "
                     f"{', '.join(k.get('litter_left_by_kill', [])) or 'none'} | "
                     f"{', '.join(k.get('checkpoints_after_kill', [])) or 'none'}{extra} |")
    lines += [
        "",
        f"Final resume: exit {resumes[-1]['returncode']} in {resumes[-1]['wall_s']} s; it printed (TensorFlow's start-up "
        "lines left out):",
        "",
        "```",
        *resumes[-1]["said"],
        "```",
        "",
        f"- Final checkpoint (G, D, both Adam states, epoch {done['epochs']}) against the uninterrupted run: "
        f"{'bit-identical' if identical else f'max |diff| {weight_diff:.2e}'}.",
        f"- Exported generator, 8 fixed latents through `serving_default`: max |diff| {image_diff:.2e}.",
        f"- Temporaries left after the final resume: {', '.join(summary['litter_after_final_resume']) or 'none'}; "
        f"set aside as corrupt: {', '.join(summary['corrupt_set_aside']) or 'none'}.",
    ]
    (RESULTS / "kill_loop.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
