"""The torchvision ResNet18 golden file: its outputs for fixed weights and a fixed input.

    /path/to/venv-with-torchvision/bin/python experiments/torchvision_golden/make_golden.py

writes `experiments/torchvision_golden/resnet18_golden.npz`: the input batch (two 64x64 bundled
sample images, gray in [0, 1]) and torchvision's 1000 logits for it, with the torch and
torchvision versions that made them. The weights are not stored (45 MB): `state_dict(seed)`
rebuilds them from numpy alone, so `tests/test_resnet18.py` checks keras_cxr's ResNet18 and
weight converter against torchvision without torch installed. Run once; rerun only to refresh.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "resnet18_golden.npz"
SAMPLE = HERE.parents[1] / "keras_cxr" / "data" / "sample" / "test"
SEED = 0
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def state_dict(seed: int = SEED) -> dict:
    """A torchvision resnet18 state dict of float32 numpy arrays, from a numpy seed only.

    He-scaled convolutions, BatchNorm statistics away from (0, 1) so that the running mean and
    variance are really used, residual-branch gammas below 1 and a small fc, so the logits stay
    in sigmoid's unsaturated range (an equality test of saturated outputs would prove little).
    """
    rng = np.random.default_rng(seed)
    state = {}

    def conv(name, cout, cin, k):
        state[name] = rng.normal(0.0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))

    def bn(prefix, c, gamma=(0.8, 1.2)):
        state[f"{prefix}.weight"] = rng.uniform(*gamma, c)
        state[f"{prefix}.bias"] = rng.normal(0.0, 0.1, c)
        state[f"{prefix}.running_mean"] = rng.normal(0.0, 0.2, c)
        state[f"{prefix}.running_var"] = rng.uniform(0.5, 2.0, c)
        state[f"{prefix}.num_batches_tracked"] = np.array(100)

    conv("conv1.weight", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for stage, c in enumerate((64, 128, 256, 512), start=1):
        for block in (0, 1):
            p = f"layer{stage}.{block}"
            conv(f"{p}.conv1.weight", c, cin if block == 0 else c, 3)
            bn(f"{p}.bn1", c)
            conv(f"{p}.conv2.weight", c, c, 3)
            bn(f"{p}.bn2", c, gamma=(0.2, 0.5))
            if block == 0 and stage > 1:
                conv(f"{p}.downsample.0.weight", c, cin, 1)
                bn(f"{p}.downsample.1", c)
        cin = c
    state["fc.weight"] = rng.normal(0.0, 0.5 / np.sqrt(512), (1000, 512))
    state["fc.bias"] = rng.normal(0.0, 0.1, 1000)
    return {k: np.asarray(v, dtype=np.float32) if v.dtype.kind == "f" else v for k, v in state.items()}


def golden_input() -> np.ndarray:
    """Two bundled test images (one per class), 64x64 gray in [0, 1]: (2, 64, 64, 1) float32."""
    from PIL import Image

    files = [sorted((SAMPLE / name).glob("*.png"))[0] for name in ("NORMAL", "PNEUMONIA")]
    images = [np.asarray(Image.open(f).convert("L").resize((64, 64), Image.LANCZOS), dtype=np.float32) / 255.0
              for f in files]
    return np.stack(images)[..., None]


def main() -> int:
    import torch
    import torchvision

    net = torchvision.models.resnet18(weights=None).eval()
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict().items()})
    x = golden_input()
    x_torch = ((np.repeat(x, 3, -1) - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2).astype(np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(x_torch)).double().numpy()
    np.savez(GOLDEN, x=x, logits=logits, seed=np.array(SEED), torch=np.array(torch.__version__),
             torchvision=np.array(torchvision.__version__))
    print(f"wrote {GOLDEN}: logits mean {logits.mean():+.3f} sd {logits.std():.3f} "
          f"(torch {torch.__version__}, torchvision {torchvision.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
