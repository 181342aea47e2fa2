"""Generated-image quality in the feature space of `keras_cxr.pipeline.extractor`.

`image_set_quality` is the project's one definition of a generated set's Frechet distance, KID and
label fidelity: training-time tracking (`keras_cxr.pipeline.tracking`) and the report both call it.
The real-vs-real distance (train vs test images of one class) gives the scale.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # a singular product is handled below, not worth a console line
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean, _ = linalg.sqrtm(s_a @ s_b, disp=False)
    if not np.isfinite(covmean).all():  # singular product: regularise as the reference code does
        eps = np.eye(len(s_a)) * 1e-6
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def image_set_quality(real_features: np.ndarray, gen_features: np.ndarray, gen_probs: np.ndarray | None = None,
                      label: int | None = None, kid_seed: int = 0) -> dict:
    """Frechet distance and KID of generated features against real ones; with class
    probabilities and the label the images were generated as, the share the extractor
    classifies as that label (label fidelity)."""
    kid, kid_sd = kernel_inception_distance(real_features, gen_features, seed=kid_seed)
    out = {"frechet": frechet_distance(real_features, gen_features), "kid": kid, "kid_sd": kid_sd}
    if gen_probs is not None and label is not None:
        out["fidelity"] = label_fidelity(gen_probs, label)
    return out


def label_fidelity(probs: np.ndarray, label: int) -> float:
    """The share of images whose most probable class is `label` (of generated images: label
    fidelity; of real images of that label: the extractor's recall of it, the scale of the former)."""
    return float((np.asarray(probs).argmax(1) == label).mean())


def _poly_kernel(x, y):
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al. 2018, KID)."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kernel_inception_distance(a, b, subsets: int = 20, subset_size: int = 100, seed: int = 0) -> tuple[float, float]:
    """KID: mean and sd of the unbiased MMD^2 over random subsets (without replacement within one)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    vals = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
            for _ in range(subsets)]
    return float(np.mean(vals)), float(np.std(vals, ddof=1))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict:
    """Precision, recall, density, coverage with k-NN balls (Naeem et al. 2020)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)

    def dists(x, y):
        d = (x ** 2).sum(1)[:, None] + (y ** 2).sum(1)[None] - 2 * x @ y.T
        return np.sqrt(np.maximum(d, 0))

    rr, ff, rf = dists(real, real), dists(fake, fake), dists(real, fake)
    r_radius = np.sort(rr, axis=1)[:, k]  # column 0 is the point itself
    f_radius = np.sort(ff, axis=1)[:, k]
    inside_real = rf < r_radius[:, None]  # [real, fake]: fake within the real point's ball
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((rf.T < f_radius[:, None]).any(axis=0).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((rf.min(axis=1) < r_radius).mean()),
    }
