"""Decoding one image file to 8-bit grayscale, whatever mode it was saved in."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_cxr.data.dicom import DICOM_SUFFIXES, read_dicom
from keras_cxr.errors import ImageError, KerasCXRError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", *DICOM_SUFFIXES)
# 16-bit grayscale PNGs open in one of these modes; their pixels span 0..65535.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_gray8(img: Image.Image) -> np.ndarray:
    """Converts any PIL image to a uint8 (H, W) array.

    16-bit grayscale is scaled by 255/65535 (not clipped, which would saturate X-rays);
    alpha is dropped (radiographs carry no transparency); CMYK, palette and RGB go through
    Pillow's ITU-R 601 luma conversion.
    """
    if img.mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img, dtype=np.float64)
        return np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return np.round(scaled * 255).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGB" if img.mode != "LA" else "L")
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def decode(path: str | Path) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Reads a file fully; returns (uint8 gray pixels at native size, original mode, (w, h)).

    PNG and JPEG go through Pillow, DICOM (`.dcm`) through `keras_cxr.data.dicom`.

    Raises:
        ImageError: the file is empty, truncated, corrupt or not an image.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"empty image file (0 bytes): {path}")
        if path.suffix.lower() in DICOM_SUFFIXES:
            return read_dicom(path)
        with Image.open(path) as img:
            img.load()  # Image.open is lazy: force the full decode so truncation shows here
            return to_gray8(img), img.mode, img.size
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not a readable image: {path}") from None
    except Image.DecompressionBombError as exc:
        # Pillow refuses images over 2 x MAX_IMAGE_PIXELS before decoding them: a bomb, or a scan
        # far larger than any radiograph; neither is something to decode into memory here.
        raise ImageError(f"image too large to decode safely: {path} ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image: {path} ({exc})") from None


def resize_gray(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resizes a uint8 (H, W) array to (size, size) with Lanczos, as the shared data was made."""
    if pixels.shape == (size, size):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.LANCZOS), dtype=np.uint8)


def read_grayscale(path: str | Path, size: int | None = 128) -> np.ndarray:
    """Reads an image file as a uint8 (size, size) grayscale array.

    Args:
        path: str or Path. A PNG or JPEG, any mode (L, RGB, RGBA, P, CMYK, 16-bit), or a
            grayscale DICOM (`keras_cxr.data.dicom`).
        size: int or None. Output side; None keeps the native size. Defaults to 128 (paper).
    """
    pixels, _, _ = decode(path)
    return pixels if size is None else resize_gray(pixels, size)


def pixel_digest(pixels: np.ndarray) -> str:
    """md5 of the decoded pixels and shape: equal for pixel-identical images in any file format."""
    h = hashlib.md5(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def load_npz(path: str) -> dict:
    """Loads a MedMNIST-style .npz whole (they are small) and caches it per path."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise KerasCXRError(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise KerasCXRError(f"not a readable .npz file: {path} ({exc})") from None


def read_npz_image(path: str, split: str, index: int, size: int | None) -> np.ndarray:
    """One image of a MedMNIST .npz as uint8 (size, size)."""
    arr = load_npz(path)[f"{split}_images"][index]
    arr = np.squeeze(arr)
    if arr.ndim == 3:  # RGB MedMNIST variants
        arr = to_gray8(Image.fromarray(arr.astype(np.uint8)))
    pixels = np.asarray(arr, dtype=np.uint8)
    return pixels if size is None else resize_gray(pixels, size)
