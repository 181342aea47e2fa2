"""Our GAN step against the same step written in PyTorch (CPU, channels_last), alternating.

The step is the reference codes' three updates on the DCGAN (paper 4.4): D on a half batch of
real images (target 1), D on a half batch of fakes (target 0), G on a full batch through D (only
G's weights move), BCE, Adam(2e-4, 0.5, 0.999) for both. Architecture as `keras_cxr.gan`:
G = Dense(8*8*F) + LeakyReLU -> n x [ConvTranspose(F, 4, s2) + LeakyReLU] -> Conv(1, 5) + tanh;
D = m x [Conv(F, 5, s2) + LeakyReLU] -> Linear(1) + sigmoid.

Each measurement is a child process (Keras from this checkout's venv, PyTorch from
--torch-python) that times `--steps` steps after two warm-up steps and reports the median; the
parent alternates the two frameworks for `--rounds` rounds (the order rotates), so a slow phase
of a shared VM hits both, and reports the ratio of PyTorch's step time to ours per round.

    python experiments/benchmarks/torch_gan_step.py --torch-python /work/torchvenv/bin/python

Writes results/<--name, default torch_gan_step>.{json,md}. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from child_result import emit, parse  # noqa: E402

SIZES = {"quick": {"image_size": 64, "filters": 64, "batch": 32}, "paper": {"image_size": 128, "filters": 128, "batch": 128}}


def _median_step_s(step, steps: int) -> float:
    step()
    step()  # warm-up: tracing / allocation
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def keras_child(size: str, steps: int, threads: int) -> float:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    sys.path.insert(0, str(HERE.parents[1]))
    from bench import train_function_step

    from keras_cxr.config import load_preset
    from keras_cxr.gan.train import build_gan

    s = SIZES[size]
    config = load_preset("quick", [f"image_size={s['image_size']}", f"gan.filters={s['filters']}",
                                   f"gan.batch_size={s['batch']}", "gan.jit_compile=false"])
    gan = build_gan("dcgan", config)  # the preset's kernels (`auto`), as `quick` trains on a CPU
    half = s["batch"] // 2
    x = tf.random.uniform([half, s["image_size"], s["image_size"], 1])
    ds = tf.data.Dataset.from_tensors((x, tf.ones([half], tf.int32))).repeat()
    return _median_step_s(train_function_step(gan, ds, "g_loss"), steps)


def torch_child(size: str, steps: int, threads: int) -> float:
    import math

    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    s = SIZES[size]
    side, f, batch = s["image_size"], s["filters"], s["batch"]
    ups, downs = int(math.log2(side // 8)), int(math.log2(side)) - 2
    g_layers = [nn.Linear(100, 8 * 8 * f), nn.LeakyReLU(0.2), nn.Unflatten(1, (f, 8, 8))]
    for _ in range(ups):
        g_layers += [nn.ConvTranspose2d(f, f, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    g = nn.Sequential(*g_layers, nn.Conv2d(f, 1, 5, padding=2), nn.Tanh())
    d_layers, cin = [], 1
    for _ in range(downs):
        d_layers += [nn.Conv2d(cin, f, 5, stride=2, padding=2), nn.LeakyReLU(0.2)]
        cin = f
    d = nn.Sequential(*d_layers, nn.Flatten(), nn.Linear(4 * 4 * f, 1), nn.Sigmoid())
    g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    g_opt = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    half = batch // 2
    real = torch.rand(half, 1, side, side).to(memory_format=torch.channels_last)
    ones, zeros, all_ones = torch.ones(half, 1), torch.zeros(half, 1), torch.ones(batch, 1)

    def step():
        d_opt.zero_grad(set_to_none=True)
        bce(d(real), ones).backward()  # 1: D on real, target 1
        d_opt.step()
        with torch.no_grad():
            fakes = g(torch.randn(half, 100))
        d_opt.zero_grad(set_to_none=True)
        bce(d(fakes), zeros).backward()  # 2: D on fakes, target 0
        d_opt.step()
        for p in d.parameters():
            p.requires_grad_(False)
        g_opt.zero_grad(set_to_none=True)
        loss = bce(d(g(torch.randn(batch, 100))), all_ones)  # 3: G through D, target 1
        loss.backward()
        g_opt.step()
        for p in d.parameters():
            p.requires_grad_(True)
        return float(loss)

    return _median_step_s(step, steps)


def run_child(python: str, framework: str, size: str, steps: int, threads: int) -> dict:
    cmd = [python, __file__, "--child", framework, "--size", size, "--steps", str(steps), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=HERE.parents[1])
    return parse(out.stdout)


def versions(torch_python: str) -> dict:
    tf = subprocess.run([sys.executable, "-c", "import tensorflow as t, keras as k; print(t.__version__, k.__version__)"],
                        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.split()
    torch = subprocess.run([torch_python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True).stdout.strip()
    return {"tensorflow": tf[0], "keras": tf[1], "torch": torch}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", choices=("keras", "torch"))
    p.add_argument("--size", choices=tuple(SIZES), nargs="+", default=list(SIZES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--torch-python", default="/work/torchvenv/bin/python")
    p.add_argument("--name", default="torch_gan_step", help="results/<name>.{json,md} (one per host kind)")
    args = p.parse_args()
    if args.child:
        fn = keras_child if args.child == "keras" else torch_child
        emit({"step_s": fn(args.size[0], args.steps, args.threads)})
        return
    sys.path.insert(0, str(HERE.parents[1]))
    from keras_cxr.pipeline.provenance import cpu_model

    pythons = {"keras": sys.executable, "torch": args.torch_python}
    out = {"cpu": cpu_model(), "threads": args.threads, "steps_per_child": args.steps, "rounds": args.rounds,
           "versions": versions(args.torch_python), "sizes": {}}
    for size in args.size:
        rows = []
        for r in range(args.rounds):
            order = ["keras", "torch"] if r % 2 == 0 else ["torch", "keras"]
            row = {fw: run_child(pythons[fw], fw, size, args.steps, args.threads)["step_s"] for fw in order}
            row["torch_over_ours"] = row["torch"] / row["keras"]
            rows.append(row)
            print(f"{size} round {r + 1}: ours {row['keras'] * 1000:.0f} ms, PyTorch {row['torch'] * 1000:.0f} ms, "
                  f"ratio {row['torch_over_ours']:.2f}", flush=True)
        out["sizes"][size] = {**SIZES[size], "rounds": rows,
                              "median_ratio": statistics.median(r["torch_over_ours"] for r in rows)}
    results = HERE / "results"
    (results / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    md = ["# Our GAN step vs PyTorch's (CPU, channels_last)", "",
          f"`python experiments/benchmarks/torch_gan_step.py` on {out['cpu']}, {args.threads} op thread(s) each, "
          f"{time.strftime('%Y-%m-%d')}; TensorFlow {out['versions']['tensorflow']}, Keras {out['versions']['keras']}, "
          f"PyTorch {out['versions']['torch']}. DCGAN three-update step; median of {args.steps} steps per child "
          f"process, {args.rounds} alternating rounds.", "",
          "| size | image | filters | batch | ours (ms) | PyTorch (ms) | PyTorch / ours (median over rounds) |",
          "|---|---|---|---|---|---|---|"]
    for size, s in out["sizes"].items():
        ours = statistics.median(r["keras"] for r in s["rounds"]) * 1000
        theirs = statistics.median(r["torch"] for r in s["rounds"]) * 1000
        md.append(f"| {size} | {s['image_size']} | {s['filters']} | {s['batch']} | {ours:.0f} | {theirs:.0f} | "
                  f"{s['median_ratio']:.2f} |")
    (results / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print(f"wrote {results / (args.name + '.md')}")


if __name__ == "__main__":
    main()
