"""Exported generators measured against real images: the report's quality numbers.

For each feature extractor (one per seed, `keras_cxr.pipeline.extractor`): the Frechet distance of
the real minority train images to the real minority test images (the real-vs-real scale) and to
each generator's minority images (a fresh sample per extractor), so the spread over seeds covers
both the feature space and the sample. With the first extractor also: KID, precision / recall /
density / coverage, and the label fidelity of every label a generator makes.
"""

from __future__ import annotations

from keras_cxr.data.imbalance import label_counts, minority_label
from keras_cxr.evaluate.quality import frechet_distance, image_set_quality, kernel_inception_distance, prdc
from keras_cxr.gan.export import generate_with, open_generator

REAL = "real train vs real test"


def measure_generators(generators: dict, extractors: list, x_train, y_train, x_test, y_test, n_generated: int) -> tuple[dict, dict]:
    """Quality of each generator in `generators` (name -> (SavedModel path, conditional)).

    Images are float [N, H, W, 1] in [0, 1]. Returns (quality, generated minority images of the
    first extractor's sample per generator, for the memorisation check). quality[name] has
    `frechet_per_seed` and `ratio_per_seed` (over the real-vs-real distance of the same
    extractor), `kid`, `kid_sd`, PRDC and `fidelity` ({label: share}); quality[REAL] the same
    for the real test images.
    """
    minority = minority_label(label_counts(y_train))
    real_train, real_test = x_train[y_train == minority], x_test[y_test == minority]
    opened = {}  # (name, label) -> an opened generator: each SavedModel is loaded once per label

    def generate(name, label, seed):
        if (name, label) not in opened:
            opened[name, label] = open_generator(generators[name][0], label)
        return generate_with(*opened[name, label], n_generated, label, seed)

    quality = {name: {"frechet_per_seed": [], "ratio_per_seed": []} for name in [REAL, *generators]}
    samples = {}
    for i, extractor in enumerate(extractors):
        f_train = extractor.features(real_train)
        f_test = extractor.features(real_test)
        scale = frechet_distance(f_train, f_test)
        quality[REAL]["frechet_per_seed"].append(scale)
        quality[REAL]["ratio_per_seed"].append(1.0)
        if i == 0:  # (the Frechet distance is `scale`, above)
            kid, kid_sd = kernel_inception_distance(f_train, f_test)
            quality[REAL].update({"kid": kid, "kid_sd": kid_sd, **prdc(f_train, f_test),
                                  "feature_dim": int(f_train.shape[1])})
        for name, (_, conditional) in generators.items():
            images = generate(name, minority, seed=1 if i == 0 else 1 + 1000 * extractor.seed)
            feats, probs = extractor(images)
            q = image_set_quality(f_train, feats, probs, minority)
            quality[name]["frechet_per_seed"].append(q["frechet"])
            quality[name]["ratio_per_seed"].append(q["frechet"] / scale)
            if i == 0:
                samples[name] = images
                quality[name].update({"kid": q["kid"], "kid_sd": q["kid_sd"], **prdc(f_train, feats),
                                      "fidelity": {minority: q["fidelity"]}})
                if conditional:
                    other = 1 - minority
                    _, probs = extractor(generate(name, other, seed=2))
                    quality[name]["fidelity"][other] = float((probs.argmax(1) == other).mean())
    for q in quality.values():
        q["extractor_seeds"] = [e.seed for e in extractors]
    return quality, samples


def measure_one(generator, conditional: bool, extractors: list, x_train, y_train, x_test, y_test, n_generated: int,
                near_copy_threshold: float) -> tuple[dict, object]:
    """One exported generator's quality, read per extractor, and its near-copy count.

    Returns (row, the first extractor's sample of its minority images). row: the Frechet distance
    and its ratio over real-vs-real per extractor (`*_per_extractor`), KID, PRDC precision and
    recall, `fidelity` ({label: share}), `near_copies` (minority images whose pixel RMSE to the
    nearest real train image is below `near_copy_threshold`) and `feature_dim`.
    """
    from keras_cxr.explain.memorisation import nearest_rmse

    quality, samples = measure_generators({"g": (generator, conditional)}, extractors, x_train, y_train, x_test,
                                          y_test, n_generated)
    q, real = quality["g"], quality[REAL]
    gen_d, _ = nearest_rmse(samples["g"], x_train)
    return {"frechet_ratio_per_extractor": q["ratio_per_seed"], "frechet_per_extractor": q["frechet_per_seed"],
            "real_vs_real_per_extractor": real["frechet_per_seed"], "kid": q["kid"], "precision": q["precision"],
            "recall": q["recall"], "fidelity": q["fidelity"], "near_copies": int((gen_d < near_copy_threshold).sum()),
            "near_copy_threshold_rmse": near_copy_threshold, "feature_dim": real["feature_dim"]}, samples["g"]
