"""GANs: DCGAN and conditional DCGAN (paper 4.4-4.5), their training step, SavedModel export.
A resumable run around them is `keras_cxr.pipeline.gan_run`.

`GAN`, `build_generator` and `build_discriminator` are imported on first use, so that checking a
preset's GAN settings (`keras_cxr.gan.settings`) does not start TensorFlow."""

_WHERE = {"GAN": "gan", "build_discriminator": "discriminator", "build_generator": "generator"}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"keras_cxr.gan.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'keras_cxr.gan' has no attribute {name!r}")
