"""ImageNet weights from a local torchvision `resnet18` state dict (no download at run time).

    python -m keras_cxr convert-weights --torch resnet18-f37072fd.pth --out resnet18_imagenet.npz

The .npz holds one array per Keras variable, keyed `<layer>/<variable>`; `load_imagenet_weights`
reads it (or a .pth directly, when torch is installed). torch is an optional extra.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from keras_cxr.errors import KerasCXRError
from keras_cxr.io_utils import atomic_path

_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def keras_key(torch_key: str) -> str | None:
    """torchvision key -> `<keras layer>/<variable>`; None for keys with no Keras variable."""
    if torch_key.endswith("num_batches_tracked"):
        return None
    m = re.fullmatch(r"(conv1|bn1|fc)\.(\w+)", torch_key)
    if m:
        layer, var = m.groups()
    else:
        m = re.fullmatch(r"layer(\d)\.(\d)\.(conv1|bn1|conv2|bn2|downsample\.0|downsample\.1)\.(\w+)", torch_key)
        if not m:
            raise KerasCXRError(f"unexpected key {torch_key!r}: not a torchvision resnet18 state dict")
        stage, block, part, var = m.groups()
        part = {"downsample.0": "downsample_conv", "downsample.1": "downsample_bn"}.get(part, part)
        layer = f"layer{stage}_block{int(block) + 1}_{part}"
    if layer == "fc":
        return f"fc/{'kernel' if var == 'weight' else 'bias'}"
    if "conv" in layer:
        return f"{layer}/kernel"
    return f"{layer}/{_BN[var]}"


def convert_state_dict(state: dict) -> dict:
    """Maps a torchvision resnet18 state dict (arrays) to Keras arrays (OIHW -> HWIO, fc transposed)."""
    out = {}
    for key, value in state.items():
        k = keras_key(key)
        if k is None:
            continue
        arr = np.asarray(value, dtype=np.float32)
        if k.endswith("/kernel") and arr.ndim == 4:
            arr = arr.transpose(2, 3, 1, 0)
        elif k == "fc/kernel":
            arr = arr.T
        out[k] = arr
    return out


def _read_torch(path: Path) -> dict:
    try:
        import torch
    except ImportError:
        raise KerasCXRError(
            f"{path} is a PyTorch file and torch is not installed: pip install 'keras_cxr[torch]', "
            f"or convert it elsewhere with `python -m keras_cxr convert-weights`") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in state.items()}


def convert_file(torch_path, out_path) -> Path:
    """Converts a .pth state dict to the keras_cxr .npz, written atomically."""
    torch_path = Path(torch_path)
    if not torch_path.is_file():
        raise KerasCXRError(f"weights file not found: {torch_path}")
    arrays = convert_state_dict(_read_torch(torch_path))
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return Path(out_path)


def read_weight_arrays(path: str | os.PathLike) -> dict:
    """The arrays of an ImageNet weights file (converted .npz or torchvision .pth), by name;
    checked on the command line before any work starts."""
    path = Path(path)
    if not path.is_file():
        raise KerasCXRError(f"ImageNet weights file not found: {path}")
    if path.suffix in (".pth", ".pt"):
        arrays = convert_state_dict(_read_torch(path))
    else:
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise KerasCXRError(f"not a readable weights file: {path} ({exc})") from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array has no weight names
            raise KerasCXRError(f"{path} is one bare array, not a weights file: pass the .npz that "
                                f"`convert-weights` writes (one array per weight) or a torchvision .pth")
        with loaded as z:
            arrays = {k: z[k] for k in z.files}
    return arrays


def load_imagenet_weights(model, path: str | os.PathLike, load_head: bool = False) -> int:
    """Loads converted ImageNet weights into a `build_resnet18` model; returns variables set.

    The 1000-class `fc` is skipped unless `load_head` and its shape matches.
    """
    arrays = read_weight_arrays(path)
    variables = {f"{layer.name}/{v.name}": v for layer in model.layers for v in layer.weights}
    expected = [k for k in variables if not k.startswith("fc/") or load_head]
    missing = [k for k in expected if k not in arrays and not k.startswith("imagenet_normalize/")]
    if missing:
        raise KerasCXRError(f"{path} lacks {len(missing)} ResNet18 weights, e.g. {missing[:3]}")
    n = 0
    for key, arr in arrays.items():
        if key.startswith("fc/") and not load_head:
            continue
        if key not in variables:
            raise KerasCXRError(f"{path}: weight {key!r} has no place in the model")
        v = variables[key]
        if tuple(v.shape) != arr.shape:
            raise KerasCXRError(f"{path}: {key} has shape {arr.shape}, the model expects {tuple(v.shape)}")
        v.assign(arr)
        n += 1
    return n
