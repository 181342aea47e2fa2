"""Generator quality measured during GAN training (`gan.eval_every`).

`quality_probe` builds, once per run, what every evaluation reuses: the run's feature extractor,
the features of the real train images of each class the generator imitates, and fixed latents.
`train_gan` calls the probe with its generator every `eval_every` epochs and logs the row (the
columns of `keras_cxr.pipeline.run_folder.EVAL_FIELDS`); the GAN layer never imports this module
(the probe is handed in).
"""

from __future__ import annotations

import numpy as np

from keras_cxr.config import Config
from keras_cxr.data.imbalance import label_counts, minority_label
from keras_cxr.evaluate.quality import image_set_quality, label_fidelity
from keras_cxr.gan.selection import ABSOLUTE
from keras_cxr.methods import GeneratorSpec
from keras_cxr.pipeline.extractor import Extractor, ensure_extractor, unit_images

class QualityProbe:
    """Frechet distance, KID and label fidelity of a generator's images from fixed latents.

    Args:
        extractor: Extractor. The run's feature space.
        real: dict label -> real train images [N, H, W, 1] in [0, 1] of that class.
        conditional: bool. Feed labels to the generator (cDCGAN).
        latent_dim: int.
        n_images: int. Generated images per label per evaluation.
        pixel_range: str. The generator's output range ("0_1" or "-1_1").
        minority: int. The train split's minority label: the images rebalancing adds, whose
            quality is the row's `fd` and `kid`.
        seed: int. Seed of the fixed latents.
        held_out: dict label -> real test images of that class, or None. A cDCGAN's label
            fidelity is read against the extractor's fidelity on these (`real_fidelity`, the
            scale of the export gate, `keras_cxr.gan.selection`); None: (1, 1), an absolute gate.
    """

    def __init__(self, extractor: Extractor, real: dict, conditional: bool, latent_dim: int, n_images: int,
                 pixel_range: str, minority: int, seed: int = 0, held_out: dict | None = None):
        self.extractor, self.conditional, self.pixel_range, self.minority = extractor, conditional, pixel_range, minority
        self.labels = sorted(real)
        self.real_features = {label: extractor.features(images) for label, images in real.items()}
        self.real_fidelity = ABSOLUTE if held_out is None else tuple(
            label_fidelity(extractor(held_out[label])[1], label) for label in (0, 1))
        self.latents = np.random.default_rng([seed, 77]).standard_normal((n_images, latent_dim)).astype(np.float32)
        self._traced = {}  # id(generator) -> (generator, its traced inference call)

    def _forward(self, generator):
        """generator(inputs, training=False), traced once per generator when the extractor is
        `compiled` (the tracked weights are read at each call, not frozen into the trace)."""
        def call(*inputs):
            return generator(list(inputs) if self.conditional else inputs[0], training=False)

        if not self.extractor.compiled:
            return call
        if id(generator) not in self._traced:
            import tensorflow as tf

            specs = [tf.TensorSpec([None, self.latents.shape[1]], tf.float32)]
            if self.conditional:
                specs.append(tf.TensorSpec([None], tf.int32))
            self._traced[id(generator)] = (generator, tf.function(call, input_signature=specs, autograph=False))
        return self._traced[id(generator)][1]

    def generate(self, generator, label: int, batch_size: int = 128) -> np.ndarray:
        from keras_cxr.gan.export import images_from_generator_output

        forward, out = self._forward(generator), []
        for s in range(0, len(self.latents), batch_size):
            z = self.latents[s:s + batch_size]
            inputs = (z, np.full(len(z), label, np.int32)) if self.conditional else (z,)
            out.append(np.asarray(images_from_generator_output(forward(*inputs), self.pixel_range)))
        return np.concatenate(out)

    def __call__(self, generator) -> dict:
        """One log row: per label fd/kid/fidelity; `fd` and `kid` are the minority label's (the
        images a rebalanced train set gets)."""
        row = {}
        for label in self.labels:
            feats, probs = self.extractor(self.generate(generator, label))
            q = image_set_quality(self.real_features[label], feats, probs, label)
            row.update({f"fd_label{label}": q["frechet"], f"kid_label{label}": q["kid"],
                        f"fidelity_label{label}": q["fidelity"]})
        row["fd"], row["kid"] = row[f"fd_label{self.minority}"], row[f"kid_label{self.minority}"]
        return row


def quality_probe(config: Config, out_dir, manifest, spec: GeneratorSpec, log=print) -> QualityProbe | None:
    """The probe of one run, or None when the preset does not track quality (`gan.eval_every: 0`).

    A DCGAN is measured against the real images of the class it learns (the minority); a cDCGAN
    per label against the real images of each class, and its label fidelity against the real test
    images' (only the extractor reads them, to scale the gate: no GAN or classifier is fitted or
    chosen on a test score)."""
    if config.gan.eval_every == 0:
        return None
    from keras_cxr.classify.datasets import Splits

    extractor = ensure_extractor(config, out_dir, manifest, seed=0, log=log)
    splits = Splits.load(manifest, config.image_size)
    images, labels = splits.train
    minority = minority_label(label_counts(labels))
    classes = (0, 1) if spec.conditional else (minority,)
    real = {c: unit_images(images[labels == c]) for c in classes}
    held_out = None
    if spec.conditional:
        test_images, test_labels = splits.test
        held_out = {c: unit_images(test_images[test_labels == c]) for c in classes}
    return QualityProbe(extractor, real, spec.conditional, config.gan.latent_dim, config.gan.eval_images,
                        config.gan.pixel_range, minority, seed=config.gan.seed, held_out=held_out)
