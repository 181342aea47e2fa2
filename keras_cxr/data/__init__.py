"""Data: read chest X-ray datasets, build the imbalanced manifest, feed tf.data.

`datasets` and `imbalance` import no TensorFlow; `pipeline` does.
"""

from keras_cxr.data.datasets import Record, ScanResult, scan_dataset
from keras_cxr.data.images import ImageError, read_grayscale
from keras_cxr.data.imbalance import build_manifest, imbalanced_from_path, label_counts, minority_label
from keras_cxr.data.manifest import manifest_sha256, read_manifest, write_manifest, write_prepared
from keras_cxr.data.sample import SAMPLE_DIR, default_data_path

__all__ = [
    "ImageError",
    "Record",
    "SAMPLE_DIR",
    "ScanResult",
    "build_manifest",
    "imbalanced_from_path",
    "label_counts",
    "manifest_sha256",
    "minority_label",
    "default_data_path",
    "read_grayscale",
    "read_manifest",
    "scan_dataset",
    "write_manifest",
    "write_prepared",
]
