"""Sample grids: a square mosaic of generated images saved as one PNG."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from keras_cxr.io_utils import atomic_path


def to_uint8(images01: np.ndarray) -> np.ndarray:
    """float [N, H, W(, 1)] in [0, 1] -> uint8 [N, H, W]."""
    arr = np.clip(np.asarray(images01, dtype=np.float32), 0.0, 1.0)
    if arr.ndim == 4:
        arr = arr[..., 0]
    return np.round(arr * 255.0).astype(np.uint8)


def save_grid(images01: np.ndarray, path: str | os.PathLike, pad: int = 2) -> None:
    """Tiles N images (float in [0, 1]) into a near-square grid PNG, written atomically."""
    tiles = to_uint8(images01)
    n, h, w = tiles.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y:y + h, x:x + w] = tile
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")
