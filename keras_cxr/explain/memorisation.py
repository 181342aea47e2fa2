"""Does a generator copy its training images? Nearest training image of each generated image.

Distances: pixel RMSE (images in [0, 1]) and feature cosine distance. The reference is the same
distance from each real test image to its nearest training image: real unseen images are what
"not a copy" looks like. A generated image is a near-copy when its pixel RMSE to the nearest
training image is below the smallest such test-to-train distance (the closest any real unseen
image comes to the training set), so the threshold is set by the data, not by hand.
"""

from __future__ import annotations

import numpy as np


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
        dist.append(np.sqrt(np.maximum(d2[np.arange(len(block)), j], 0) / q.shape[1]))
        idx.append(j)
    return np.concatenate(dist), np.concatenate(idx)


def nearest_cosine(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query feature vector: (cosine distance to the nearest reference vector, its index)."""
    qn = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    rn = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    sim = qn @ rn.T
    j = sim.argmax(1)
    return 1.0 - sim[np.arange(len(qn)), j], j


def memorisation(generated, train, test, gen_features=None, train_features=None, test_features=None) -> dict:
    """Nearest-train distances of generated vs real test images, and the near-copies.

    Returns:
        dict with quantiles of both distributions (pixel, and feature if given), the threshold,
        the near-copy count and indices, and each generated image's nearest train index.
    """
    g_d, g_i = nearest_rmse(generated, train)
    t_d, _ = nearest_rmse(test, train)
    threshold = float(t_d[t_d > 0].min()) if (t_d > 0).any() else 0.0
    copies = np.flatnonzero(g_d < threshold)
    q = [0.0, 0.05, 0.5, 0.95]
    out = {
        "n_generated": len(generated), "n_test": len(test),
        "pixel_rmse_generated": dict(zip(["min", "p05", "median", "p95"], np.quantile(g_d, q).round(4).tolist())),
        "pixel_rmse_test": dict(zip(["min", "p05", "median", "p95"], np.quantile(t_d, q).round(4).tolist())),
        "near_copy_threshold_rmse": round(threshold, 4),
        "near_copies": int(len(copies)), "near_copy_indices": copies.tolist(),
        "nearest_train_index": g_i.tolist(), "generated_rmse": g_d.tolist(),
    }
    if gen_features is not None:
        gf, _ = nearest_cosine(gen_features, train_features)
        tf_, _ = nearest_cosine(test_features, train_features)
        out["feature_cosine_generated"] = dict(zip(["min", "p05", "median", "p95"], np.quantile(gf, q).round(4).tolist()))
        out["feature_cosine_test"] = dict(zip(["min", "p05", "median", "p95"], np.quantile(tf_, q).round(4).tolist()))
    return out
