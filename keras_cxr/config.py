"""Presets as data: frozen dataclasses filled from `keras_cxr/presets/<name>.yaml`.

The dataclass defaults are the paper's values (the table in docs/faithful.md); a preset
file overrides only what it changes, and `--set section.key=value` overrides a preset from the
command line. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from keras_cxr.errors import KerasCXRError


# Package data, so that a wheel install (not only the editable checkout) finds them.
PRESET_DIR = Path(__file__).resolve().parent / "presets"


@dataclass(frozen=True)
class DataConfig:
    """How the imbalanced train/val/test manifest is built (paper section 3).

    Args:
        minority_class: str. Class made the minority by deleting its images. Defaults to
            "PNEUMONIA" (paper: pneumonia is 25% of train).
        minority_fraction: float. Share of the minority class in train, in (0, 0.5]. Defaults
            to 0.25 (paper section 3).
        val_per_class: int or None. Balanced validation images per class carved from train;
            None means 10% of the minority count (at least 1). Defaults to None.
        seed: int. Seed of the random deletion and the validation carve. Defaults to 0.
        keep_val: bool. Keep the dataset's own val split as validation (no merge into train, no
            carve; `val_per_class` is not used). Defaults to False (paper: carve from train).
        natural: bool. Keep the class balance as it is, deleting nothing; the minority is the
            smaller train class and `minority_class` / `minority_fraction` are not used. With
            `keep_val`, a dataset's published split trains as published. Defaults to False.
    """

    minority_class: str = "PNEUMONIA"
    minority_fraction: float = 0.25
    val_per_class: int | None = None
    seed: int = 0
    keep_val: bool = False
    natural: bool = False


@dataclass(frozen=True)
class GANConfig:
    """DCGAN / cDCGAN architecture and training (paper 4.4-4.5, FIDELITY.md).

    Args:
        latent_dim: int. Size of z. Defaults to 100 (Balde, Brownlee).
        filters: int. Channels of every conv layer in G and D. Defaults to 128 (paper).
        embedding_dim: int. Label embedding size of the conditional head. Defaults to 50.
        discriminator: str. "paper" (5 x stride-2 conv) or "balde" (first conv stride 1,
            Dropout(0.4) before the Dense). Defaults to "paper".
        pixel_range: str. "0_1" (paper, Balde) or "-1_1" (Brownlee). Defaults to "0_1".
        batch_size: int. Full batch: half real + half fake for D, all of it for G. Defaults
            to 128.
        learning_rate: float. Adam learning rate of both nets. Defaults to 2e-3 (paper text;
            both reference codes use 2e-4).
        d_learning_rate: float or None. The discriminator's own Adam learning rate (the two
            time-scale update rule, Heusel et al. 2017); None: `learning_rate`, as in the paper.
            Defaults to None.
        beta_1, beta_2: float. Adam decay rates. Defaults to 0.5 and 0.999.
        dcgan_epochs: int. DCGAN epochs on the minority images only. Defaults to 160.
        cdcgan_epochs: int. cDCGAN epochs on all of train. Defaults to 48.
        alphas: tuple of float. One cDCGAN per alpha: its generator (`make train-gan`) and its
            matrix row `cdcgan_aNNN` (`keras_cxr.methods`). Defaults to (0.25, 0.5, 0.75).
        seed: int. Seed of weights init, real-batch draws, latents and fake labels.
            Defaults to 0.
        keep_checkpoints: int. How many per-epoch checkpoints to keep on disk. Defaults to 2.
            This and `sample_grid`, `jit_compile`, `max_loss` and `max_images` do not change the
            trained weights, so a run may resume with other values.
        sample_grid: int. Images per label in the per-epoch sample grid. Defaults to 16.
        jit_compile: bool. XLA-compile the train step. Defaults to False.
        precision: str. "float32" (faithful), "mixed_float16" (GPUs; dynamic loss scaling),
            "mixed_bfloat16", or "auto": bfloat16 where the device computes it natively and
            experiments/results/precision showed it keeps the results (`keras_cxr.precision`).
            Defaults to "float32".
        max_loss: float. A loss above this (or NaN / inf) stops the run as diverged, keeping the
            last good checkpoint. BCE of a constant 0.5 guess is 0.69; healthy quick runs spiked
            to 61 and recovered; a measured collapse (quick DCGAN on Kermany, epoch 94) reached
            epoch means near 1e4. Defaults to 1000.
        max_images: int. The most images one call of an exported generator's `generate`
            signature may ask for (a serving guard, recorded in `assets.extra`; bigger
            requests are an error, not an unbounded allocation). Defaults to 4096.
        diffaugment: str. "none" (the paper) or a comma list of DiffAugment policies from
            color, translation, cutout (`keras_cxr.gan.diffaugment`). Defaults to "none".
        real_sampling: str. How a cDCGAN's real half batches are drawn: "dataset" (at random
            from all of train, as the codes do) or "balanced" (half from each label, so D sees
            the minority as often as the majority; alpha keeps its meaning, the share of fake
            labels from the majority). A DCGAN trains on one label: no effect. Defaults to
            "dataset".
        upsample: str. How the generator doubles its side: "transpose" (Conv2DTranspose(F, 4,
            stride 2), the paper) or "resize" (nearest-neighbour resize, then Conv2D(F, 3): Odena
            et al. 2016, against transposed convolutions' checkerboard). Defaults to "transpose".
        discriminator_head: str. How a cDCGAN's D takes the label: "concat" (an image plane
            from the label, concatenated with the image: Brownlee's, the paper's Figure 4) or
            "projection" (the inner product of a label embedding with D's features added to its
            logit, Miyato & Koyama 2018). Defaults to "concat".
        spectral_norm: bool. Every conv and Dense of D divided by its largest singular value
            (Miyato et al. 2018; `keras_cxr.gan.spectral_norm`). Defaults to False.
        ema: float. Decay of an exponential moving average of G's weights (BatchNorm statistics
            included), updated after every step (Karras et al., StyleGAN; keras.io `gan_ada`) and
            warmed up (step t uses min(ema, (1 + t) / (10 + t))): 0 is off (the paper), e.g.
            0.999 on. When on, tracking, sample grids, the best epoch
            and the export use the average; the raw G is tracked beside it (`raw_*` log columns).
            Defaults to 0.
        transition: list of two int, or empty. Transitional conditioning of a cDCGAN (Shahbazi
            et al. 2022; `keras_cxr.gan.transition`): [start, end] in epochs; the labels' weight
            in G and D is 0 up to the end of epoch `start` and rises linearly to 1 at the end of
            epoch `end` (<= cdcgan_epochs, so the exported generator is fully conditional).
            Empty: off (the paper). A DCGAN has no labels: no effect. Defaults to ().
        eval_every: int. Every this many epochs (and at the last), the Frechet distance, KID and
            (cDCGAN) label fidelity of `eval_images` generated images from fixed latents,
            measured with the run's feature extractor (`keras_cxr.pipeline.extractor`) and
            logged. 0: not tracked (the paper). Defaults to 0.
        eval_images: int. Generated images per label per evaluation. Defaults to 512.
        export: str. Which epoch's generator is exported: "last" (the paper) or "best" (the
            tracked best, `keras_cxr.gan.selection`; needs `eval_every` >= 1). Defaults to "last".
        min_label_fidelity: float. A cDCGAN epoch is eligible as "best" only when the extractor
            recognises its generated images of each label at least this many times as often as
            real test images of that label (relative label fidelity; an absolute bar would be
            one real images fail). Defaults to 0.9.
            This, `eval_every`, `eval_images` and `export` do not change the trained weights.
    """

    latent_dim: int = 100
    filters: int = 128
    embedding_dim: int = 50
    discriminator: str = "paper"
    pixel_range: str = "0_1"
    batch_size: int = 128
    learning_rate: float = 2e-3
    d_learning_rate: float | None = None
    beta_1: float = 0.5
    beta_2: float = 0.999
    dcgan_epochs: int = 160
    cdcgan_epochs: int = 48
    alphas: tuple[float, ...] = (0.25, 0.5, 0.75)
    seed: int = 0
    keep_checkpoints: int = 2
    sample_grid: int = 16
    jit_compile: bool = False
    precision: str = "float32"
    max_loss: float = 1000.0
    max_images: int = 4096
    diffaugment: str = "none"
    real_sampling: str = "dataset"
    upsample: str = "transpose"
    discriminator_head: str = "concat"
    spectral_norm: bool = False
    ema: float = 0.0
    transition: tuple[int, ...] = ()
    eval_every: int = 0
    eval_images: int = 512
    export: str = "last"
    min_label_fidelity: float = 0.9


@dataclass(frozen=True)
class ClassifierConfig:
    """ResNet18 training and the experiment matrix (paper 4.1, 4.2, 5).

    Args:
        batch_size: int. Defaults to 32 (paper 4.1).
        learning_rate: float. Adam learning rate. Defaults to 4e-3 (paper 4.1).
        beta_1, beta_2: float. Defaults to 0.9 and 0.999 (paper 4.1).
        epochs: int. The weights with the best validation accuracy are kept. Defaults to 5.
        max_rotation_deg: float. Augmentation rotation range. Defaults to 10.
        crop_fraction: float. Augmentation crop side. Defaults to 0.9.
        seeds: tuple of int. Seeds of the matrix. Defaults to (0, 1, 2, 3, 4).
        methods: tuple of str. Methods of the matrix (`keras_cxr.methods`). Empty: every method,
            with one cDCGAN row per `gan.alphas` value (the paper's eleven by default).
            Defaults to ().
        backbone: str. The classifier network (`keras_cxr.classify.backbones`). Defaults to
            "resnet18" (paper 4.1).
        bootstrap: int. Bootstrap resamples for the confidence intervals. Defaults to 10000.
        generator_per_seed: bool. A GAN cell of seed s streams from a generator trained with
            gan.seed = s (`<method>_g<s>`), so the seeds' paired differences include GAN training
            variance; false: one generator (the preset's gan.seed) for every seed, as the paper.
            Defaults to False.
        precision: str. "float32", "mixed_float16", "mixed_bfloat16" or "auto", as in GANConfig.
            Defaults to "float32".
    """

    batch_size: int = 32
    learning_rate: float = 4e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epochs: int = 5
    max_rotation_deg: float = 10.0
    crop_fraction: float = 0.9
    generator_per_seed: bool = False
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    methods: tuple[str, ...] = ()
    backbone: str = "resnet18"
    bootstrap: int = 10000
    precision: str = "float32"


@dataclass(frozen=True)
class ResampleConfig:
    """The resamplers' own settings (`keras_cxr.resample`).

    Args:
        smote_k_neighbors: int. Neighbours SMOTE, Borderline-SMOTE and ADASYN interpolate
            between (capped at the minority count - 1). Defaults to 5 (imbalanced-learn's).
            Written `classifier.smote_k_neighbors` before this section existed: still accepted.
    """

    smote_k_neighbors: int = 5


@dataclass(frozen=True)
class Config:
    """One preset: the image size every stage shares, plus one section per stage.

    Args:
        name: str. Preset name, recorded in every run directory.
        image_size: int. Square image side for GANs and classifier: any integer >= 28 for the
            classifier, a power of two for the GANs. Defaults to 128 (paper).
        kernels: str. CPU speed paths: "auto", "stock" or "conv_grad" (`keras_cxr.kernels`).
            Same functions either way; only speed and float round-off differ. Defaults to "auto".
        data: DataConfig.
        gan: GANConfig.
        classifier: ClassifierConfig.
    """

    name: str = "paper"
    image_size: int = 128
    kernels: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)

    def with_gan_seed(self, seed: int | None) -> "Config":
        """This config with `gan.seed` = `seed` (None: unchanged): a generator of its own seed."""
        return self if seed is None else dataclasses.replace(self, gan=dataclasses.replace(self.gan, seed=int(seed)))

    def for_generator(self, gan_seed: int | None = None, recipe: bool = False) -> "Config":
        """The config one generator trains with: its own `gan.seed` (None: the preset's) and, for
        a `cdcgan_plus` generator, issue 23's recipe (`keras_cxr.gan.settings.RECIPE`) over `gan`."""
        from keras_cxr.gan.settings import RECIPE

        config = self.with_gan_seed(gan_seed)
        return dataclasses.replace(config, gan=dataclasses.replace(config.gan, **RECIPE)) if recipe else config

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for section in out.values():
            if isinstance(section, dict):
                section.update({k: list(v) for k, v in section.items() if isinstance(v, tuple)})
        return out


_SECTIONS = {"data": DataConfig, "gan": GANConfig, "classifier": ClassifierConfig, "resample": ResampleConfig}
# Keys that moved to another section: (old section, key) -> new section. Still read from the old
# place (presets, --set, the classifier settings recorded in older cells).
_MOVED = {("classifier", "smote_k_neighbors"): "resample"}


def _scalar(base, value):
    """`value` as `base` (bool, int, float or str), refusing what would change it silently: a
    non-integer float as an int (1.7 is not seed 1), a number as a bool, NaN as a float."""
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError
        return value
    if base in (int, float) and isinstance(value, bool):
        raise ValueError
    if base is int and isinstance(value, float) and not value.is_integer():
        raise ValueError
    if base is int and isinstance(value, str):
        raise ValueError
    out = base(value)
    if base is float and math.isnan(out):
        raise ValueError
    return out


def _coerce(cls, key: str, value, where: str):
    hints = typing.get_type_hints(cls)
    if key not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(cls))
        raise KerasCXRError(f"unknown key `{key}` in {where} (known: {known})")
    hint = hints[key]
    if typing.get_origin(hint) is tuple:
        element = typing.get_args(hint)[0]
        if not isinstance(value, (list, tuple)):
            value = [value]
        try:
            return tuple(_scalar(element, v) for v in value)
        except (TypeError, ValueError):
            raise KerasCXRError(f"`{key}` in {where} must be a list of {element.__name__}. Received: {value!r}") from None
    if value is None:
        if type(None) in typing.get_args(hint):
            return None
        raise KerasCXRError(f"`{key}` in {where} may not be null")
    base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
    try:
        return _scalar(base, value)
    except (TypeError, ValueError):
        raise KerasCXRError(
            f"`{key}` in {where} must be {base.__name__}{' (not NaN)' if base is float else ''}. "
            f"Received: {key}={value!r}"
        ) from None


MAX_SEED = 2**32 - 1  # numpy's and Keras' seeds are 32-bit; `generate` keys chunks on seed + k * 2**32


def check_seed(name: str, value) -> int:
    """A seed is an integer in [0, 2**32 - 1]: the one rule for every seed keras_cxr takes."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise KerasCXRError(f"`{name}` must be an integer in [0, {MAX_SEED}]. Received: {name}={value!r}")
    return value


def config_from_dict(raw: dict, where: str = "config") -> Config:
    """Builds a Config from a nested dict, checking every key and type."""
    if not isinstance(raw, dict):
        raise KerasCXRError(f"{where} must be a mapping of keys to values")
    top = {}
    raw = _moved_keys(raw)
    for key, value in raw.items():
        if key in _SECTIONS:
            cls = _SECTIONS[key]
            if not isinstance(value, dict):
                raise KerasCXRError(f"section `{key}` in {where} must be a mapping")
            top[key] = cls(**{k: _coerce(cls, k, v, f"{where} [{key}]") for k, v in value.items()})
        elif key in ("name", "image_size", "kernels"):
            top[key] = _coerce(Config, key, value, where)
        else:
            raise KerasCXRError(
                f"unknown key `{key}` in {where} (known: name, image_size, kernels, {', '.join(_SECTIONS)})"
            )
    config = Config(**top)
    validate(config)
    return config


def _moved_keys(raw: dict) -> dict:
    """`raw` with keys written in their old section moved to their new one (the new place wins)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for (old, key), new in _MOVED.items():
        if isinstance(out.get(old), dict) and key in out[old]:
            value = out[old].pop(key)
            print(f"note: `{old}.{key}` is now `{new}.{key}`; read from the old place", file=sys.stderr)
            target = out.setdefault(new, {})
            if isinstance(target, dict):
                target.setdefault(key, value)
    return out


def validate(config: Config) -> None:
    """Checks the ranges of the settings this module owns: the data section, the classifier and
    matrix numbers, seeds. Every other setting is checked by its owner (`keras_cxr.gan.settings`,
    `classify.backbones`, `kernels`, `methods`, `resample`, `precision`), all called by
    `keras_cxr.pipeline.checks.check` before any work starts."""
    f = config.data.minority_fraction
    if not 0 < f <= 0.5:
        raise KerasCXRError(
            f"`minority_fraction` must be in (0, 0.5]. Received: minority_fraction={f}"
        )
    check_seed("data.seed", config.data.seed)
    check_seed("gan.seed", config.gan.seed)
    check_adam("gan", config.gan.learning_rate, config.gan.beta_1, config.gan.beta_2)
    _validate_classifier(config.classifier)


def _validate_classifier(c: ClassifierConfig) -> None:
    check_adam("classifier", c.learning_rate, c.beta_1, c.beta_2)
    for key in ("batch_size", "epochs", "bootstrap"):
        if getattr(c, key) < 1:
            raise KerasCXRError(f"`{key}` must be >= 1. Received: {key}={getattr(c, key)}")
    if not c.seeds:
        raise KerasCXRError("`seeds` must name at least one seed")
    for seed in c.seeds:
        check_seed("classifier.seeds", seed)
    if len(set(c.seeds)) != len(c.seeds):  # a seed counted twice would shrink every CI and MDD
        repeated = sorted({s for s in c.seeds if c.seeds.count(s) > 1})
        raise KerasCXRError(f"`classifier.seeds` must name each seed once; {repeated} appear more than once. "
                            f"Received: seeds={list(c.seeds)}")
    if not (math.isfinite(c.max_rotation_deg) and 0 <= c.max_rotation_deg <= 180):
        raise KerasCXRError(f"`max_rotation_deg` must be in [0, 180]. Received: max_rotation_deg={c.max_rotation_deg}")
    if not 0 < c.crop_fraction <= 1:
        raise KerasCXRError(f"`crop_fraction` must be in (0, 1]. Received: crop_fraction={c.crop_fraction}")


def check_adam(section: str, learning_rate: float, beta_1: float, beta_2: float) -> None:
    # NaN passes every `<` test, so finiteness is checked first and by name.
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise KerasCXRError(f"`{section}.learning_rate` must be finite and > 0. Received: learning_rate={learning_rate}")
    for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
        if not (math.isfinite(value) and 0 <= value < 1):
            raise KerasCXRError(f"`{section}.{key}` must be in [0, 1). Received: {key}={value}")


def parse_overrides(items: list[str] | None) -> dict:
    """Turns ["gan.batch_size=64", "image_size=32"] into a nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise KerasCXRError(f"--set expects key=value, e.g. gan.batch_size=64. Received: {item!r}")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) > 2 or not all(parts):
            raise KerasCXRError(f"--set key must be `key` or `section.key`. Received: {key!r}")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as exc:  # an unclosed bracket, a `!!python/...` tag safe_load refuses
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise KerasCXRError(f"--set {item}: the value is not valid YAML ({problem})") from None
    return out


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = _merge(merged.get(k) or {}, v) if isinstance(v, dict) else v
    return merged


def load_preset(preset: str = "quick", overrides: list[str] | None = None) -> Config:
    """Loads a preset by name (`keras_cxr/presets/<name>.yaml`) or by path, then overrides.

    Args:
        preset: str. "paper", "quick", "tiny", or a path to a YAML file. Defaults to "quick".
        overrides: list of str. `section.key=value` items applied last.
    """
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise KerasCXRError(f"unknown preset {preset!r}: no file {path} (known: {', '.join(names)})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise KerasCXRError(f"preset file {path} is not valid YAML: {exc}") from None
    raw = _merge(raw, parse_overrides(overrides))
    return config_from_dict(raw, where=str(path))
