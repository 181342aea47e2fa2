"""A Conv2D whose input gradient runs as a forward convolution, for CPUs.

TensorFlow's CPU kernel for the input gradient of a convolution (Conv2DBackpropInput) is
pathologically slow for ResNet18's deep stages: ~95 ms for a 3x3, 512->512 conv on a 16x3x3
batch, whose forward pass takes ~1 ms. Mathematically dx is a stride-1 convolution of the
upstream gradient, dilated by the stride and padded by k - 1, with the kernel rotated 180 degrees
and its channel axes swapped; TensorFlow's forward kernel computes that 5x faster. The result is
the same gradient (tests check it against tf.GradientTape on the stock op).

Whether the stock kernel is slow depends on the CPU: on the AMD EPYC host of 2026-11-26 it took
~9 ms for that conv, as fast as the rewrite, which made the whole step 6-9% slower there. The
setting `kernels: conv_grad` opts in; `stock_input_grad_is_slow` measures whether it would pay
here (benchmarks report it; it never picks a path, see `keras_cxr.kernels`).
"""

from __future__ import annotations

import functools
import time

import keras
import tensorflow as tf

# The calibration conv: ResNet18's deepest 3x3, 512 -> 512 at 4x4 (2x2 out), batch 16, where
# the stock kernel was pathological. The rewrite is taken when it is this many times faster.
_CALIBRATION_SHAPE = (16, 4, 4, 512)
_MIN_SPEEDUP = 1.5


def conv_input_grad(dy, kernel, input_shape, stride: int):
    """d/dx of conv2d(x, kernel, stride, "VALID"), given dy, computed with a forward convolution."""
    k = kernel.shape[0]
    if stride > 1:  # put stride - 1 zeros between rows and columns of dy
        b, oh, ow, c = tf.unstack(tf.shape(dy))
        z = tf.reshape(dy, [b, oh, 1, ow, 1, c])
        z = tf.pad(z, [[0, 0], [0, 0], [0, stride - 1], [0, 0], [0, stride - 1], [0, 0]])
        z = tf.reshape(z, [b, oh * stride, ow * stride, c])
        dy = z[:, : (oh - 1) * stride + 1, : (ow - 1) * stride + 1, :]
    # Rows / columns of x that no output window reached get zero gradient: pad them at the end.
    extra_h = input_shape[1] - (tf.shape(dy)[1] + k - 1)
    extra_w = input_shape[2] - (tf.shape(dy)[2] + k - 1)
    dy = tf.pad(dy, [[0, 0], [k - 1, k - 1 + extra_h], [k - 1, k - 1 + extra_w], [0, 0]])
    rotated = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
    return tf.nn.conv2d(dy, rotated, 1, "VALID")


@functools.lru_cache(maxsize=1)
def stock_input_grad_is_slow() -> bool:
    """Times the stock input-gradient kernel against the forward-convolution rewrite on one
    calibration conv (best of 3 after a warm-up, ~0.5 s once per process)."""
    x = tf.random.stateless_normal(_CALIBRATION_SHAPE, [0, 1])
    kernel = tf.random.stateless_normal([3, 3, 512, 512], [0, 2])
    dy = tf.random.stateless_normal([_CALIBRATION_SHAPE[0], 2, 2, 512], [0, 3])
    stock = tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
        input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=[1, 1, 1, 1], padding="VALID"))
    rewrite = tf.function(lambda: conv_input_grad(dy, kernel, tf.shape(x), 1))

    def best(fn):
        fn().numpy()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn().numpy()
            times.append(time.perf_counter() - t)
        return min(times)

    return best(stock) > _MIN_SPEEDUP * best(rewrite)


def conv2d_fast_input_grad(x, kernel, stride: int):
    """conv2d(x, kernel, stride, "VALID") with the forward-convolution input gradient."""

    @tf.custom_gradient
    def conv(x, kernel):
        y = tf.nn.conv2d(x, kernel, stride, "VALID")

        def grad(dy):
            dx = conv_input_grad(dy, kernel, tf.shape(x), stride)
            dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=dy,
                                                 strides=[1, stride, stride, 1], padding="VALID")
            return dx, dk

        return y, grad

    # Pass tensors, not variables: tf.custom_gradient would otherwise demand a `variables`
    # argument; the gradient reaches the variable through the read.
    return conv(tf.convert_to_tensor(x), tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package="keras_cxr")
class FastGradConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D ("valid" padding, no dilation, channels-last) with the fast CPU input
    gradient above. Same weights, outputs and gradients as Conv2D; only the kernel differs.

    Args:
        fast_input_grad: bool. Use the forward-convolution input gradient. Defaults to True.
        **kwargs: keras.layers.Conv2D arguments.
    """

    def __init__(self, *args, fast_input_grad: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast_input_grad = bool(fast_input_grad)
        if self.fast_input_grad and (self.padding != "valid" or self.dilation_rate != (1, 1)
                                     or self.strides[0] != self.strides[1] or self.groups != 1):
            raise ValueError("FastGradConv2D supports padding='valid', square strides, no dilation, groups=1")

    def convolution_op(self, inputs, kernel):
        if not self.fast_input_grad:
            return super().convolution_op(inputs, kernel)
        return conv2d_fast_input_grad(inputs, kernel, self.strides[0])

    def get_config(self):
        return {**super().get_config(), "fast_input_grad": self.fast_input_grad}
