"""Spectral normalisation (Miyato et al., ICLR 2018) as PyTorch's `spectral_norm` computes it.

`keras.layers.SpectralNormalization` writes the normalised kernel back into the wrapped layer's
kernel on every training call and lets no gradient through sigma. A GAN calls D three times per
step, once inside G's update, so that would rewrite D's trainable weights during G's update.
Here the kernel is never written: each call divides it by sigma (one power iteration from the
stored u; gradient through W / sigma(W) with u and v held constant), and only u, a
non-trainable variable, is updated, on training calls.
"""

from __future__ import annotations

import keras
from keras import ops


def _normalize(x, eps=1e-12):
    return x / (ops.sqrt(ops.sum(ops.square(x))) + eps)


@keras.saving.register_keras_serializable(package="keras_cxr")
class SpectralNorm(keras.layers.Wrapper):
    """Wraps a Conv2D or Dense: its kernel W is used as W / sigma(W).

    Args:
        layer: keras.layers.Layer with a `kernel` (Conv2D, Dense).
        power_iterations: int. Power iterations per call. Defaults to 1 (Miyato et al.).
    """

    def __init__(self, layer, power_iterations: int = 1, **kwargs):
        super().__init__(layer, **kwargs)
        self.power_iterations = int(power_iterations)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        out_dim = self.layer.kernel.shape[-1]
        self.u = self.add_weight(shape=(1, out_dim), initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                 trainable=False, name="spectral_u", dtype=self.layer.kernel.dtype)
        self.built = True

    def sigma(self, training=False):
        """The largest singular value of the kernel (as a [out_dim, -1] matrix), estimated from u."""
        w = ops.reshape(self.layer.kernel, (-1, self.layer.kernel.shape[-1]))
        u = self.u
        for _ in range(self.power_iterations):
            v = _normalize(ops.matmul(u, ops.transpose(w)))
            u = _normalize(ops.matmul(v, w))
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        if training:
            self.u.assign(u)
        return ops.sum(ops.matmul(v, w) * u)

    def call(self, inputs, training=False):
        # The wrapped layer's arithmetic with the normalised kernel; its variable keeps W itself.
        kernel = self.layer.kernel / self.sigma(training)
        if isinstance(self.layer, keras.layers.Conv2D):
            y = self.layer.convolution_op(inputs, kernel)
        else:
            y = ops.matmul(inputs, kernel)
        if self.layer.use_bias:
            y = y + self.layer.bias
        return self.layer.activation(y)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}
