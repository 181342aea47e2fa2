"""GANs: DCGAN and conditional DCGAN (paper 4.4-4.5), their training step, SavedModel export.
A resumable run around them is `keras_cxr.pipeline.gan_run`."""

from keras_cxr.gan.discriminator import build_discriminator
from keras_cxr.gan.gan import GAN
from keras_cxr.gan.generator import build_generator

__all__ = ["GAN", "build_discriminator", "build_generator"]
