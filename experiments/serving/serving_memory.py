"""Peak memory of one `generate` request through TensorFlow's C++ SavedModel loader.

    python experiments/serving/serving_memory.py [--before GIT_REV]

Exports a quick-preset cDCGAN generator (64x64, 64 filters; weights as initialised: memory does
not depend on their values) and, for each request size, runs `saved_model_cli run` on its
`generate` signature in a fresh process and reads that process's peak resident memory
(`ru_maxrss`). With `--before REV`, the same generator is also exported by the export code of
git revision REV (run from a scratch copy of that revision's `keras_cxr/gan/export.py`), so the
table shows the peak before and after a change side by side. Writes
experiments/serving/results/serving_memory.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "experiments" / "serving" / "results"
SIZES = (4, 256, 1024, 4096)


def _cli() -> str:
    local = Path(sys.executable).parent / "saved_model_cli"
    return str(local) if local.exists() else shutil.which("saved_model_cli")


# A fresh wrapper process per request: its RUSAGE_CHILDREN peak is that one request's alone.
WRAPPER = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
           "sys.stderr.write(p.stderr[-800:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
           "sys.exit(p.returncode)")


def peak_rss_mib(model_dir: Path, n: int, scratch: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one `saved_model_cli run` of generate(n) in a fresh process."""
    out = scratch / f"out_{n}"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, _cli(), "run", "--dir", str(model_dir), "--tag_set", "serve",
                           "--signature_def", "generate", "--input_exprs",
                           f"num_images={n};label=1;seed=0",
                           "--outdir", str(out), "--overwrite"], capture_output=True, text=True,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"saved_model_cli failed for n={n}: {proc.stderr[-800:]}")
    shutil.rmtree(out, ignore_errors=True)
    return int(proc.stdout.split()[-1]) / 1024, wall


def _export_module(rev: str | None, scratch: Path):
    if rev is None:
        from keras_cxr.gan import export

        return export
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:keras_cxr/gan/export.py"],
                            capture_output=True, text=True, check=True).stdout
    path = scratch / "export_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("export_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision whose export code to measure beside today's")
    args = parser.parse_args()
    from keras_cxr.config import load_preset
    from keras_cxr.gan.train import build_gan

    config = load_preset("quick")
    gan = build_gan("cdcgan", config, 0.5)
    meta = {"name": "cdcgan_a050", "kind": "cdcgan", "alpha": 0.5, "generated_label": None,
            "latent_dim": config.gan.latent_dim, "pixel_range": config.gan.pixel_range,
            "image_size": config.image_size, "class_names": ["NORMAL", "PNEUMONIA"], "minority_label": 1,
            "majority_label": 0, "max_images": 4096}
    scratch = Path(tempfile.mkdtemp(prefix="serving_memory_"))
    variants = [("after (this checkout)", None)] + ([(f"before ({args.before})", args.before)] if args.before else [])
    rows = []
    for label, rev in variants:
        from keras_cxr.gan.record import GeneratorRecord

        # An older revision's export takes the metadata dict; today's takes its record.
        model_dir = _export_module(rev, scratch).export_generator(gan.generator, scratch / label.split()[0] / "1",
                                                                  meta if rev else GeneratorRecord.from_json(meta))
        for n in SIZES:
            rss, wall = peak_rss_mib(Path(model_dir), n, scratch)
            rows.append((label, n, rss, wall))
            print(f"{label}: generate({n}) peak RSS {rss:,.0f} MiB ({wall:.1f} s)", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    lines = ["# Peak memory of one `generate` request (`saved_model_cli run`, fresh process each)", "",
             f"`python experiments/serving/serving_memory.py{' --before ' + args.before if args.before else ''}`: "
             f"quick-preset cDCGAN generator (64x64, {config.gan.filters} filters), TensorFlow's C++ loader, "
             f"peak resident memory of the `saved_model_cli` process (`ru_maxrss`). Host: {platform.processor() or platform.machine()}, "
             f"{_cpu_model()}.", "",
             "| export code | num_images | peak RSS (MiB) | wall (s) |", "|---|---|---|---|"]
    lines += [f"| {label} | {n:,} | {rss:,.0f} | {wall:.1f} |" for label, n, rss, wall in rows]
    lines += ["", "Each reading is one request's own process (a fresh wrapper reads its child's `ru_maxrss`)."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving_memory.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'serving_memory.md'}")


def _cpu_model() -> str:
    from keras_cxr.pipeline.provenance import cpu_model

    return cpu_model()


if __name__ == "__main__":
    main()
