"""keras_cxr: rebalancing imbalanced chest X-ray datasets with (conditional) DCGANs.

A Keras 3 / TensorFlow reimplementation of Sun & Li, "Medical Image Dataset Rebalancing via
Conditional Deep Convolutional GANs". Importing the package does no work and prints nothing;
TensorFlow is imported only by the modules that need it.
"""

__version__ = "0.1.0"

from keras_cxr.errors import KerasCXRError

__all__ = ["KerasCXRError", "__version__"]
