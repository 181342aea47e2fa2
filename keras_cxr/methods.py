"""Every rebalancing method, in one place: its name, its resampler and, for GAN methods, the
generator it needs (imbalanced-learn's idea: one resampler per method behind `fit_resample`).

The classic rows are listed in `CLASSIC`. The GAN rows come from the preset: `dcgan`, and one
`cdcgan_aNNN` per value of `gan.alphas` (the paper's 0.25, 0.5 and 0.75 by default). Adding a
method is one entry in `CLASSIC`; adding a cDCGAN row is one value in `gan.alphas`. The matrix, the
CLI, the report and `make train-gan` all read this module.

`cdcgan_plus_aNNN` (one per `gan.alphas` value) is the same cDCGAN with issue 23's conditional
recipe (`keras_cxr.gan.settings.RECIPE`) over the preset's gan settings: a documented departure
from the paper, not among the default rows.

`CONTROLS` are threshold controls, not resamplers: rows derived from the baseline cell of the same
seed by moving its decision threshold only (`keras_cxr.evaluate.thresholds`), with no training.
They answer whether a rebalancing method gives more than a moved threshold. They are not among
the default rows (the paper's eleven); name them in `classifier.methods` or `--methods`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.settings import check_alpha

GAN_KINDS = ("dcgan", "cdcgan")
PAPER_ALPHAS = (0.25, 0.5, 0.75)  # paper 4.5; GANConfig.alphas defaults to these


@dataclass(frozen=True)
class GeneratorSpec:
    """A generator a GAN method needs: `dcgan` (minority images only, paper 4.4) or `cdcgan`
    with alpha (paper 4.5). Its name is the run folder, the models folder and the method name."""

    kind: str
    alpha: float | None = None
    gan_seed: int | None = None  # None: the preset's `gan.seed`, one generator for every cell
    recipe: bool = False  # issue 23's recipe over the preset's gan settings (`cdcgan_plus` rows)

    def __post_init__(self):
        if self.kind not in GAN_KINDS:
            raise KerasCXRError(f"`model` must be one of {', '.join(GAN_KINDS)}. Received: model={self.kind!r}")
        if self.kind == "cdcgan":
            check_alpha(self.alpha)
        if self.recipe and self.kind != "cdcgan":
            raise KerasCXRError(f"the conditional recipe is a cDCGAN's. Received: model={self.kind!r}, recipe=True")
        # A DCGAN draws no labels; a cDCGAN's alpha is recorded as a float (1 and 1.0 are one run).
        object.__setattr__(self, "alpha", None if self.kind == "dcgan" else float(self.alpha))

    @property
    def conditional(self) -> bool:
        return self.kind == "cdcgan"

    @property
    def name(self) -> str:
        """dcgan, or cdcgan_a025 / cdcgan_a050 / cdcgan_a075 for alpha 0.25 / 0.5 / 0.75
        (cdcgan_plus_a050: with the recipe); with a GAN seed of its own, `_g<seed>` after it
        (dcgan_g3: the DCGAN trained with gan.seed 3)."""
        kind = "cdcgan_plus" if self.recipe else self.kind
        base = "dcgan" if self.kind == "dcgan" else f"{kind}_a{round(self.alpha * 100):03d}"
        return base if self.gan_seed is None else f"{base}_g{self.gan_seed}"

    def for_seed(self, seed: int, per_seed: bool) -> "GeneratorSpec":
        """The generator a cell of classifier seed `seed` uses: its own, trained with gan.seed =
        `seed`, under `classifier.generator_per_seed`; else the one shared by every seed."""
        return dataclasses.replace(self, gan_seed=int(seed)) if per_seed else self

    def export_dir(self, models_dir) -> Path:
        """Where the exported generator lives (TF Serving layout: <models>/<name>/<version>)."""
        return Path(models_dir) / self.name / "1"


def _resample():
    # Imported on use: imbalanced-learn takes ~1.5 s to import, and the registry is read by
    # config validation and `data` commands that never resample.
    import keras_cxr.resample as resample

    return resample


@dataclass(frozen=True)
class Method:
    """One row of the matrix.

    Args:
        name: str. The method's name in presets, cells, results and the CLI.
        make: callable (seed, config) -> resampler, for methods that need no generator.
        generator: GeneratorSpec or None. The generator a GAN method streams images from.
        gradcam: bool. One of the methods the paper's Grad-CAM figure shows (5.3).
        derived_from: str or None. A threshold control: the method whose cell (same seed) it
            re-thresholds, with no training of its own.
    """

    name: str
    make: Callable | None = None
    generator: GeneratorSpec | None = None
    gradcam: bool = False
    derived_from: str | None = None

    def generator_for(self, seed: int, config) -> GeneratorSpec | None:
        """The generator this method's cell of `seed` streams from (None: a classic method)."""
        if self.generator is None:
            return None
        return self.generator.for_seed(seed, config.classifier.generator_per_seed)

    def resampler(self, seed: int, config, models_dir=None):
        """The resampler for one cell; a GAN method's generator must already be exported."""
        if self.derived_from is not None:
            raise KerasCXRError(f"method {self.name!r} trains nothing: it re-thresholds the {self.derived_from} cell")
        if self.generator is None:
            return self.make(seed, config)
        if models_dir is None:
            raise KerasCXRError(f"method {self.name!r} needs exported generators (--models DIR)")
        path = self.generator_for(seed, config).export_dir(models_dir)
        if not (path / "saved_model.pb").exists():
            raise KerasCXRError(f"method {self.name!r}: no generator at {path} (train it with `train-gan`)")
        return _resample().GANOversample(path, seed=seed)


def _smote(variant: str) -> Callable:
    return lambda seed, config: _resample().PixelSMOTE(variant, k_neighbors=config.resample.smote_k_neighbors, seed=seed)


CLASSIC = (
    Method("baseline", lambda seed, config: _resample().NoResampling(), gradcam=True),
    Method("class_weights", lambda seed, config: _resample().ClassWeights()),
    Method("undersample", lambda seed, config: _resample().RandomUndersample(seed=seed)),
    Method("oversample", lambda seed, config: _resample().RandomOversample(seed=seed)),
    Method("smote", _smote("smote")),
    Method("borderline_smote", _smote("borderline_smote")),
    Method("adasyn", _smote("adasyn")),
)


CONTROLS = (
    Method("baseline_threshold", derived_from="baseline"),  # threshold chosen on the balanced validation set
    Method("logit_adjustment", derived_from="baseline"),  # Menon et al. 2021, post-hoc, tau = 1
)


def generator_specs(alphas=PAPER_ALPHAS) -> tuple[GeneratorSpec, ...]:
    """The generators of a preset: DCGAN, then one cDCGAN per alpha."""
    return (GeneratorSpec("dcgan"), *(GeneratorSpec("cdcgan", float(a)) for a in alphas))


def recipe_specs(alphas=PAPER_ALPHAS) -> tuple[GeneratorSpec, ...]:
    """Issue 23's conditional recipe, one cDCGAN per alpha (`cdcgan_plus_aNNN`)."""
    return tuple(GeneratorSpec("cdcgan", float(a), recipe=True) for a in alphas)


def registry(alphas=PAPER_ALPHAS, extra: bool = True) -> dict[str, Method]:
    """Every method for a preset's alphas, by name, in the matrix's row order; `extra`: with
    the conditional recipe's rows and the threshold controls after them (rows beyond the
    paper's, named in `classifier.methods` or `--methods`)."""
    gan = [Method(s.name, generator=s, gradcam=s.kind == "dcgan" or s.alpha == 0.5)  # paper 5.3's figure
           for s in generator_specs(alphas)]
    rows = [*(Method(s.name, generator=s) for s in recipe_specs(alphas)), *CONTROLS] if extra else []
    methods = {m.name: m for m in (*CLASSIC, *gan, *rows)}
    if len(methods) != len(CLASSIC) + len(gan) + len(rows):
        raise KerasCXRError(f"`gan.alphas` name the same cDCGAN twice (names round alpha to 0.01). "
                            f"Received: alphas={list(alphas)}")
    return methods


def method_names(alphas=PAPER_ALPHAS, extra: bool = False) -> tuple[str, ...]:
    """The default rows (the paper's methods); with `extra`, every name the matrix knows."""
    return tuple(registry(alphas, extra))


def matrix_methods(config) -> tuple[str, ...]:
    """The preset's rows: `classifier.methods`, or when empty every default method, one cDCGAN
    row per `gan.alphas` value (the paper's eleven by default)."""
    return tuple(config.classifier.methods) or method_names(config.gan.alphas)


def check(config) -> None:
    """`gan.alphas` name distinct cDCGANs in [0, 1] and `classifier.methods` only known rows."""
    known = method_names(config.gan.alphas, extra=True)  # builds every GeneratorSpec: checks alphas
    unknown = [m for m in config.classifier.methods if m not in known]
    if unknown:
        raise KerasCXRError(f"unknown method(s) {unknown} (known with gan.alphas={list(config.gan.alphas)}: "
                            f"{', '.join(known)})")


def get_method(name: str, alphas=PAPER_ALPHAS) -> Method:
    methods = registry(alphas)
    if name not in methods:
        raise KerasCXRError(f"unknown method {name!r} (known: {', '.join(methods)})")
    return methods[name]

