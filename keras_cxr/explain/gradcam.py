"""Grad-CAM (tf-keras-vis) on the ResNet18's last conv block, and how much of it falls on the lungs.

The paper (5.3) judges its classifiers by Grad-CAM pictures and remarks that the baseline "looks
at the abdomen". `lung_share` turns that into a number: the fraction of CAM mass inside an
approximate lung mask.

Lung mask: a fixed anatomical box per lung field, in fractions of the image side, for frontal
pediatric CXRs resized to a square (Kermany): rows 0.12-0.80, columns 0.10-0.48 (patient's right
lung, image left) and 0.52-0.90 (patient's left lung). It is approximate by design (no
segmentation model can be downloaded here): it excludes the abdomen, neck, shoulders and the
image borders, which is what the paper's remark is about.
"""

from __future__ import annotations

import numpy as np

LUNG_ROWS = (0.12, 0.80)
LUNG_COLUMNS = ((0.10, 0.48), (0.52, 0.90))


def lung_mask(size: int) -> np.ndarray:
    """bool [size, size]: True inside the two lung-field boxes."""
    mask = np.zeros((size, size), dtype=bool)
    r0, r1 = (round(f * size) for f in LUNG_ROWS)
    for c0, c1 in LUNG_COLUMNS:
        mask[r0:r1, round(c0 * size):round(c1 * size)] = True
    return mask


def make_gradcam(model, clone: bool = True):
    """A tf-keras-vis Gradcam on the model's pre-activation scores (Grad-CAM's prescription,
    not the saturating sigmoid). With clone=False the model's head becomes linear in place, and
    the Gradcam can be reused across weight sets loaded into that model."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    return Gradcam(model, model_modifier=ReplaceToLinear(), clone=clone)


def gradcam_maps(model, images: np.ndarray, layer: str, batch_size: int = 32, cam=None) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of the highest-scoring class for each image.

    Args:
        model: keras.Model with a sigmoid or softmax head (or its linear-head twin under `cam`).
        images: float32 [N, H, W, 1] as the model takes them.
        layer: str. Name of the conv layer whose activations are weighted.
        batch_size: int. Defaults to 32.
        cam: a `make_gradcam` object to reuse. Defaults to a new one on a clone of `model`.

    Returns:
        (maps float32 [N, H, W] in [0, 1], each scaled by its maximum; predicted class per image).
        An all-zero map (no positive evidence) stays zero and gets a nan lung share.
    """
    from tf_keras_vis.utils.scores import CategoricalScore

    cam = cam or make_gradcam(model)
    maps, preds = [], []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        pred = np.asarray(model(x, training=False)).argmax(axis=1)  # argmax is the same for logits and sigmoids
        # Raw CAMs, scaled by their own maximum: tf-keras-vis' min-max normalisation would turn a
        # uniform CAM (a 1x1 last block at small inputs) into zeros and its lung share into 0/0.
        m = np.asarray(cam(CategoricalScore(pred.tolist()), x, penultimate_layer=layer, normalize_cam=False),
                       dtype=np.float32).reshape(len(x), *x.shape[1:3])
        peak = m.reshape(len(m), -1).max(axis=1)
        maps.append(np.where(peak[:, None, None] > 0, m / np.maximum(peak, 1e-12)[:, None, None], 0.0))
        preds.append(pred)
    return np.concatenate(maps), np.concatenate(preds)


def lung_share(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per image: CAM mass inside `mask` / total CAM mass (nan for an all-zero map)."""
    total = maps.reshape(len(maps), -1).sum(axis=1)
    inside = (maps * mask[None]).reshape(len(maps), -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def save_gradcam_grid(images: np.ndarray, maps: np.ndarray, path, title: str = "", cols: int = 8) -> None:
    """CAMs over their images (jet, alpha 0.4), with the lung boxes outlined, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from keras_cxr.io_utils import atomic_path

    n = len(images)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2 + (0.3 if title else 0)), squeeze=False)
    size = images.shape[1]
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(images[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        ax.imshow(maps[i], cmap="jet", alpha=0.4, vmin=0, vmax=1)
        r0, r1 = (f * size for f in LUNG_ROWS)
        for c0, c1 in LUNG_COLUMNS:
            ax.add_patch(Rectangle((c0 * size, r0), (c1 - c0) * size, r1 - r0, fill=False, lw=0.5, ec="white"))
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
