"""The generator's one-filter output convolution, with kernels that are fast on CPUs.

The generator ends in Conv2D(1, 5, "same") over F channels. TensorFlow's CPU kernels are slow in
the F -> 1 direction: at the quick preset (batch 32, 64x64x64 -> 64x64x1) the forward pass and the
weight gradient take ~30 ms each, while the 1 -> F direction takes ~3 ms, so this one layer was
64% of the generator's training time (experiments/benchmarks/results/profile.md). The same
numbers come out of faster ops:

- forward: a depthwise convolution with the same kernel (one 5x5 filter per input channel),
  summed over channels: y = sum_c x_c * w_c (~5 ms);
- input gradient: dx_c = dy * rot180(w_c), i.e. a 1 -> F convolution of dy with the mirrored
  kernel;
- weight gradient: the filter gradient of that mirrored 1 -> F convolution, mirrored back.

Same weights, outputs and gradients as keras.layers.Conv2D (tests compare them); only the
kernels differ, about 4x faster for the layer's training pass on the 2-core CPU.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _mirror(kernel):
    """[k, k, cin, cout] -> [k, k, cout, cin], rotated 180 degrees: the kernel of the adjoint conv."""
    return tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])


def single_filter_conv2d(x, kernel):
    """conv2d(x, kernel, stride 1, "SAME") for kernel [k, k, C, 1] with odd k, fast on CPU."""

    @tf.custom_gradient
    def conv(x, kernel):
        y = tf.reduce_sum(tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME"), axis=-1, keepdims=True)

        def grad(dy):
            mirrored = _mirror(kernel)  # [k, k, 1, C]
            dx = tf.nn.conv2d(dy, mirrored, 1, "SAME")
            d_mirrored = tf.raw_ops.Conv2DBackpropFilter(
                input=dy, filter_sizes=tf.shape(mirrored), out_backprop=x, strides=[1, 1, 1, 1], padding="SAME")
            return dx, _mirror(d_mirrored)

        return y, grad

    # Tensors, not variables: tf.custom_gradient would otherwise demand a `variables` argument.
    return conv(tf.convert_to_tensor(x), tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package="keras_cxr")
class SingleFilterConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D with one filter, stride 1, "same" padding and an odd kernel, computed by
    the kernels above. Same weights, outputs and gradients as Conv2D.

    Args:
        fast_kernels: bool. Use the depthwise / mirrored-kernel path; False runs the stock
            Conv2D ops (on GPUs cuDNN's own kernels are fine). Defaults to True.
        **kwargs: keras.layers.Conv2D arguments.
    """

    def __init__(self, *args, fast_kernels: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast_kernels = bool(fast_kernels)
        if self.fast_kernels and (self.filters != 1 or self.strides != (1, 1) or self.padding != "same"
                                  or self.kernel_size[0] != self.kernel_size[1] or self.kernel_size[0] % 2 == 0
                                  or self.dilation_rate != (1, 1) or self.groups != 1
                                  or self.data_format != "channels_last"):
            raise ValueError("SingleFilterConv2D's fast kernels need filters=1, strides=1, padding='same', an odd "
                             f"square kernel, no dilation, groups=1, channels_last. Received: {self.get_config()}")

    def convolution_op(self, inputs, kernel):
        if not self.fast_kernels:
            return super().convolution_op(inputs, kernel)
        return single_filter_conv2d(inputs, kernel)

    def get_config(self):
        return {**super().get_config(), "fast_kernels": self.fast_kernels}
