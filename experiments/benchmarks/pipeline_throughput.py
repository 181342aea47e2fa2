"""Input-pipeline throughput: decode + resize (Pillow, threads) and augment (tf.data), 128x128,
batch 32. Writes results/pipeline_throughput.{json,md}. Not a test: numbers depend on the host.

    python experiments/benchmarks/pipeline_throughput.py [--data PATH] [--size 128] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_cxr.data import default_data_path, scan_dataset  # noqa: E402
from keras_cxr.data.pipeline import load_images, make_dataset  # noqa: E402
from keras_cxr.io_utils import write_json, write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def measure(data: Path, size: int, batch: int, epochs: int) -> dict:
    records = [r for r in scan_dataset(data).records if r.split == "train"]
    t = time.perf_counter()
    images, labels = load_images(records, size)
    decode_s = time.perf_counter() - t
    ds = make_dataset(images, labels, batch_size=batch, training=True, seed=0)
    for _ in ds.take(3):  # trace the graph once before timing
        pass
    t = time.perf_counter()
    seen = 0
    for _ in range(epochs):
        for x, _ in ds:
            seen += int(x.shape[0])
    augment_s = time.perf_counter() - t
    n = len(records)
    return {
        "data": str(data), "images": n, "size": size, "batch_size": batch, "epochs_timed": epochs,
        "decode_resize_images_per_s": round(n / decode_s, 1),
        "augment_batch_images_per_s": round(seen / augment_s, 1),
        "first_epoch_end_to_end_images_per_s": round(n / (decode_s + augment_s / epochs), 1),
        "host": {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
                 "processor": platform.processor() or "unknown"},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="dataset folder or .npz (default: the bundled sample)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    r = measure(default_data_path(args.data), args.size, args.batch, args.epochs)
    write_json(RESULTS / "pipeline_throughput.json", r)
    write_text(RESULTS / "pipeline_throughput.md", (
        f"# Input pipeline throughput\n\n"
        f"`python experiments/benchmarks/pipeline_throughput.py --data {args.data or '(bundled sample)'}`; "
        f"{r['images']:,} train images, {r['size']}x{r['size']}, batch {r['batch_size']}, "
        f"{r['host']['cpus']} CPUs ({r['host']['machine']}).\n\n"
        f"| stage | images/s |\n|---|---:|\n"
        f"| decode + resize (Pillow, {r['host']['cpus']} threads, once per run) | {r['decode_resize_images_per_s']:,} |\n"
        f"| shuffle + flip + rotate + crop + batch (tf.data, every epoch) | {r['augment_batch_images_per_s']:,} |\n"
        f"| first epoch end to end (decode + augment) | {r['first_epoch_end_to_end_images_per_s']:,} |\n"
    ))
    print(r)


if __name__ == "__main__":
    main()
