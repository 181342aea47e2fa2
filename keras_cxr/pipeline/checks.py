"""One check of a whole preset before any work starts: each setting by the module that owns it.

`keras_cxr.config` parses and type-checks (and checks its own sections: data, the classifier and
matrix numbers, seeds); the GAN settings are `keras_cxr.gan.settings`', the backbone and the
classifier's image size `classify.backbones`', kernels `kernels`', the rows `methods`', SMOTE's
`resample`'s, precision `precision`'s. The CLI calls `check` on every config it builds.
"""

from __future__ import annotations

from keras_cxr import kernels, methods, precision, resample
from keras_cxr.classify import backbones
from keras_cxr.config import Config
from keras_cxr.gan import settings as gan_settings


def check(config: Config) -> Config:
    """Raises KerasCXRError naming the first bad setting; returns `config` when all are good."""
    gan_settings.check(config.gan)
    for section in ("gan", "classifier"):
        precision.check(f"{section}.precision", getattr(config, section).precision)
    kernels.check(config.kernels)
    backbones.check(config)
    methods.check(config)
    resample.check(config)
    return config
