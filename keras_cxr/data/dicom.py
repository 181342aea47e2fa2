"""DICOM radiographs to 8-bit grayscale (the optional extra: pip install 'keras_cxr[dicom]').

Hospitals and the public challenges (RSNA Pneumonia, SIIM, NIH) ship chest X-rays as DICOM. One
file becomes the same uint8 (H, W) array a PNG gives, by the display pipeline of DICOM PS3.3:
1. the modality transform (Rescale Slope / Intercept, or a Modality LUT);
2. the VOI transform: a VOI LUT when the file has one, else its first window (C.11.2.1.2: LINEAR,
   LINEAR_EXACT or SIGMOID), else the full range the stored bits can hold, so a 12- or 16-bit
   image is scaled to 8 bits the way a 16-bit PNG is (a fixed scale, not a per-image stretch);
3. MONOCHROME1 ("white is low") inverted, so that bone is bright in every image.
Multi-frame and colour files are refused: a chest radiograph is one grayscale frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_cxr.errors import ImageError

DICOM_SUFFIXES = (".dcm", ".dicom")
_GRAY = ("MONOCHROME1", "MONOCHROME2")


def _pydicom():
    try:
        import pydicom
    except ImportError:
        return None
    return pydicom


def _first(value) -> float:
    """A DICOM value that may be multi-valued (several windows): the first one, as float."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]
    return float(value)


def _stored_range(ds) -> tuple[float, float]:
    """The values the stored bits can hold, after the modality transform."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)))
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if int(ds.get("PixelRepresentation", 0)) else (0, 2 ** bits - 1)
    if "ModalityLUTSequence" in ds:
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    ends = sorted((lo * slope + intercept, hi * slope + intercept))
    return ends[0], ends[1]


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2-3: the window (center, width) as float values in [0, 1]."""
    x = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _voi(pixels: np.ndarray, ds, path: Path) -> np.ndarray:
    """The VOI transform of modality values, as floats in [0, 1]."""
    if "VOILUTSequence" in ds:
        from pydicom.pixels import apply_voi_lut

        lut_bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        indices = np.round(pixels).astype(np.int64)  # a LUT is indexed by integer modality values
        return np.clip(apply_voi_lut(indices, ds, index=0, prefer_lut=True) / float(2 ** lut_bits - 1), 0.0, 1.0)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        if width <= 0 or (function == "LINEAR" and width < 1):  # PS3.3 C.11.2.1.2-3
            raise ImageError(f"DICOM window width must be at least 1 (LINEAR) or above 0. Received: "
                               f"WindowWidth={width:g} in {path}")
        return window(pixels, center, width, function)
    lo, hi = _stored_range(ds)
    return np.clip((pixels - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros(pixels.shape)


def _check_shape(ds, path: Path) -> str:
    """The photometric interpretation of a one-frame grayscale file; an error for anything else."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageError(f"multi-frame DICOM ({frames} frames) is not a radiograph keras_cxr reads: {path}")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if int(ds.get("SamplesPerPixel", 1)) != 1 or photometric not in _GRAY:
        raise ImageError(f"colour DICOM ({photometric or 'no PhotometricInterpretation'}, "
                           f"{ds.get('SamplesPerPixel', 1)} samples per pixel): a chest X-ray is grayscale "
                           f"(MONOCHROME1 or MONOCHROME2): {path}")
    return photometric


def read_dicom(path: str | Path) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Reads one DICOM file; returns (uint8 gray pixels, mode such as "DICOM MONOCHROME1 12-bit",
    (width, height)), as `images.decode` does for PNG and JPEG.

    Raises:
        ImageError: pydicom is not installed, or the file is not a readable one-frame grayscale
            DICOM.
    """
    path = Path(path)
    pydicom = _pydicom()
    if pydicom is None:
        raise ImageError(f"{path} is a DICOM file and pydicom is not installed: pip install 'keras_cxr[dicom]'")
    try:
        ds = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise ImageError(f"not a readable DICOM file: {path} ({exc})") from None
    if "PixelData" not in ds:
        raise ImageError(f"DICOM file without pixel data: {path}")
    photometric = _check_shape(ds, path)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds (missing codec, bad length)
        raise ImageError(f"cannot decode the pixel data of {path} ({type(exc).__name__}: {exc}); a compressed "
                           f"transfer syntax may need a decoder plugin such as pylibjpeg") from None
    from pydicom.pixels import apply_modality_lut

    scaled = _voi(np.asarray(apply_modality_lut(stored, ds), dtype=np.float64), ds, path)
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    gray = np.round(scaled * 255.0).astype(np.uint8)
    bits = int(ds.get("BitsStored", 8))
    return gray, f"DICOM {photometric} {bits}-bit", (gray.shape[1], gray.shape[0])
