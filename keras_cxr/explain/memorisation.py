"""Does a generator copy its training images? Nearest training image of each generated image.

Distances: pixel RMSE (images in [0, 1]) and feature cosine distance. A generated image is a
near-copy when its pixel RMSE to the nearest training image is below the 1st percentile of the
real training images' distances to their nearest *other* training image (exact duplicates, at
distance 0, left out: they are the dataset's). That threshold is set by how close real images of
this dataset come to each other, from thousands of pairs rather than one closest pair. The same
distance from each real test image to the training set is reported beside it: real unseen
images are what "not a copy" looks like.
"""

from __future__ import annotations

import numpy as np


def _rmse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise pixel RMSE, computed directly in float64. The nearest neighbour is found with the
    |a|^2 + |b|^2 - 2ab expansion (one matrix product), whose float32 cancellation leaves about
    1e-4 RMSE between identical images on some CPUs' BLAS kernels; the chosen pair's distance is
    therefore recomputed, so that an exact duplicate is exactly 0."""
    return np.sqrt(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(1))


def nearest_rmse(query: np.ndarray, reference: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per query image: (RMSE to the nearest reference image, its index). Images [N, H, W(, 1)] in [0, 1]."""
    q = query.reshape(len(query), -1).astype(np.float32)
    r = reference.reshape(len(reference), -1).astype(np.float32)
    r2 = (r ** 2).sum(1)
    dist, idx = [], []
    for s in range(0, len(q), chunk):
        block = q[s:s + chunk]
        d2 = (block ** 2).sum(1)[:, None] + r2[None] - 2 * block @ r.T
        j = d2.argmin(1)
        dist.append(_rmse(block, r[j]).astype(np.float32))
        idx.append(j)
    return np.concatenate(dist), np.concatenate(idx)


def nearest_cosine(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query feature vector: (cosine distance to the nearest reference vector, its index)."""
    qn = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    rn = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    sim = qn @ rn.T
    j = sim.argmax(1)
    return 1.0 - sim[np.arange(len(qn)), j], j


NEAR_COPY_PERCENTILE = 1.0


def train_nearest_rmse(train: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Per training image: the pixel RMSE to its nearest other training image."""
    flat = train.reshape(len(train), -1).astype(np.float32)
    sq = (flat ** 2).sum(1)
    out = np.empty(len(flat), np.float32)
    for s in range(0, len(flat), chunk):
        d2 = sq[s:s + chunk, None] + sq[None] - 2 * flat[s:s + chunk] @ flat.T
        d2[np.arange(len(d2)), np.arange(s, s + len(d2))] = np.inf  # not itself
        out[s:s + chunk] = _rmse(flat[s:s + chunk], flat[d2.argmin(1)])
    return out


def near_copy_threshold(train: np.ndarray, percentile: float = NEAR_COPY_PERCENTILE) -> float:
    """The `percentile` of the training images' distances to their nearest other training image,
    exact duplicates (distance 0) left out."""
    d = train_nearest_rmse(train)
    d = d[d > 0]
    return float(np.percentile(d, percentile)) if len(d) else 0.0


def memorisation(generated, train, test, gen_features=None, train_features=None, test_features=None,
                 threshold: float | None = None) -> dict:
    """Nearest-train distances of generated vs real test images, and the near-copies.

    Returns:
        dict with quantiles of both distributions (pixel, and feature if given), the threshold,
        the near-copy count and indices, and each generated image's nearest train index.
    """
    g_d, g_i = nearest_rmse(generated, train)
    t_d, _ = nearest_rmse(test, train)
    threshold = near_copy_threshold(train) if threshold is None else threshold  # the same for every generator
    copies = np.flatnonzero(g_d < threshold)
    q = [0.0, 0.05, 0.5, 0.95]
    out = {
        "n_generated": len(generated), "n_test": len(test),
        "pixel_rmse_generated": dict(zip(["min", "p05", "median", "p95"], np.quantile(g_d, q).round(4).tolist())),
        "pixel_rmse_test": dict(zip(["min", "p05", "median", "p95"], np.quantile(t_d, q).round(4).tolist())),
        "near_copy_threshold_rmse": round(threshold, 4),
        "near_copy_rule": f"pixel RMSE below percentile {NEAR_COPY_PERCENTILE:g} of the train images' "
                          "distances to their nearest other train image",
        "near_copies": int(len(copies)), "near_copy_indices": copies.tolist(),
        "nearest_train_index": g_i.tolist(), "generated_rmse": g_d.tolist(),
    }
    if gen_features is not None:
        gf, _ = nearest_cosine(gen_features, train_features)
        tf_, _ = nearest_cosine(test_features, train_features)
        out["feature_cosine_generated"] = dict(zip(["min", "p05", "median", "p95"], np.quantile(gf, q).round(4).tolist()))
        out["feature_cosine_test"] = dict(zip(["min", "p05", "median", "p95"], np.quantile(tf_, q).round(4).tolist()))
    return out
