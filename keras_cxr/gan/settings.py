"""The rules of the `gan` settings, written once: the builders check their arguments with them and
`check` checks a preset's `gan` section with them (called by `keras_cxr.pipeline.checks.check`
before any work starts). Imports neither Keras nor TensorFlow."""

from __future__ import annotations

import math

from keras_cxr.errors import KerasCXRError

VARIANTS = ("paper", "balde")  # the discriminator (keras_cxr.gan.discriminator)
HEADS = ("concat", "projection")  # a cDCGAN discriminator's label input
UPSAMPLING = ("transpose", "resize")  # the generator's blocks (keras_cxr.gan.generator)
PIXEL_RANGES = ("0_1", "-1_1")
REAL_SAMPLING = ("dataset", "balanced")
EXPORT_RULES = ("last", "best")
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")  # keras_cxr.gan.diffaugment

# Issue 23's conditional recipe: the `gan` settings the screen at 25% minority chose by its
# pre-registered rule (experiments/results/cgan/choice_rule.md; m25/results.md, "The screen's
# choice"), laid over a preset's `gan` section for the `cdcgan_plus_aNNN` rows only. The faithful
# `cdcgan_aNNN` rows never read it. "ema": which read the screen chose (0: the raw G is exported).
RECIPE = {"real_sampling": "balanced", "ema": 0.0}


def one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise KerasCXRError(f"`{name}` must be one of {', '.join(choices)}. Received: {name.split('.')[-1]}={value!r}")


def positive(name: str, value) -> None:
    if value < 1:
        raise KerasCXRError(f"`{name}` must be >= 1. Received: {name.split('.')[-1]}={value}")


def check_alpha(alpha) -> None:
    """A cDCGAN's alpha, the share of fake labels from the majority class (paper 4.5)."""
    if alpha is None or not 0.0 <= float(alpha) <= 1.0:
        raise KerasCXRError(f"`alpha` must be in [0, 1]. Received: alpha={alpha}")


def check_image_size(image_size: int) -> None:
    """The GANs' side: a power of two >= 16 (the first map is 8x8, then doublings)."""
    if image_size < 16 or image_size & (image_size - 1):
        raise KerasCXRError(f"`image_size` must be a power of two >= 16 for the GANs (the classifier alone "
                            f"takes any size >= 28). Received: image_size={image_size}")


def parse_policies(setting: str) -> tuple[str, ...]:
    """`gan.diffaugment`: "none" -> (); "translation,cutout" -> ("translation", "cutout"), in order."""
    names = () if str(setting).strip().lower() == "none" else tuple(p.strip() for p in str(setting).split(","))
    if any(p not in DIFFAUGMENT_POLICIES for p in names) or len(set(names)) != len(names):
        raise KerasCXRError(f"`gan.diffaugment` must be 'none' or a comma list of distinct policies from "
                            f"{', '.join(DIFFAUGMENT_POLICIES)}. Received: diffaugment={setting!r}")
    return names


def check(g) -> None:
    """Every rule of a `GANConfig` that is not a type (the config parser checks types)."""
    if g.batch_size < 2 or g.batch_size % 2:
        raise KerasCXRError(f"`batch_size` must be an even number >= 2. Received: batch_size={g.batch_size}")
    one_of("discriminator", g.discriminator, VARIANTS)
    one_of("pixel_range", g.pixel_range, PIXEL_RANGES)
    for key in ("latent_dim", "filters", "embedding_dim", "dcgan_epochs", "cdcgan_epochs", "keep_checkpoints",
                "sample_grid", "max_images"):
        positive(key, getattr(g, key))
    if g.d_learning_rate is not None and not (math.isfinite(g.d_learning_rate) and g.d_learning_rate > 0):
        raise KerasCXRError(f"`gan.d_learning_rate` must be finite and > 0 (or null: gan.learning_rate). "
                            f"Received: d_learning_rate={g.d_learning_rate}")
    one_of("gan.real_sampling", g.real_sampling, REAL_SAMPLING)
    one_of("gan.discriminator_head", g.discriminator_head, HEADS)
    one_of("gan.upsample", g.upsample, UPSAMPLING)
    if not (math.isfinite(g.ema) and 0 <= g.ema < 1):
        raise KerasCXRError(f"`gan.ema` must be in [0, 1) (0: off). Received: ema={g.ema}")
    if g.transition and not (len(g.transition) == 2 and 0 <= g.transition[0] < g.transition[1] <= g.cdcgan_epochs):
        raise KerasCXRError(f"`gan.transition` must be empty (off) or [start, end] epochs with 0 <= start < end <= "
                            f"cdcgan_epochs ({g.cdcgan_epochs}). Received: transition={list(g.transition)}")
    if not g.max_loss > 0:
        raise KerasCXRError(f"`max_loss` must be > 0. Received: max_loss={g.max_loss}")
    _check_tracking(g)


def _check_tracking(g) -> None:
    parse_policies(g.diffaugment)
    if g.eval_every < 0:
        raise KerasCXRError(f"`eval_every` must be >= 0 (0: not tracked). Received: eval_every={g.eval_every}")
    if g.eval_images < 2:
        raise KerasCXRError(f"`eval_images` must be >= 2. Received: eval_images={g.eval_images}")
    one_of("export", g.export, EXPORT_RULES)
    if g.export == "best" and g.eval_every == 0:
        raise KerasCXRError("`gan.export: best` needs quality tracking: set `gan.eval_every` >= 1. Received: eval_every=0")
    if not 0 <= g.min_label_fidelity <= 1:
        raise KerasCXRError(f"`min_label_fidelity` must be in [0, 1]. Received: min_label_fidelity={g.min_label_fidelity}")
