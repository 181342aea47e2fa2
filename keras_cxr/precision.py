"""Mixed precision: which dtype policy the models are built under, and the optimizer that goes
with it. Float32 is the default and the faithful setting; `mixed_float16` is the GPU setting
(Tensor Cores; its loss is scaled so small float16 gradients do not flush to zero);
`mixed_bfloat16` needs no loss scaling (bfloat16 has float32's exponent range).

Every model keeps its variables in float32 and its last layer (G's tanh conv, D's sigmoid Dense,
ResNet18's sigmoid head) in float32, so losses, checkpoints, weight files and exported
SavedModels are float32 whatever the policy, and weights move between policies.
"""

from __future__ import annotations

import contextlib

from keras_cxr.errors import KerasCXRError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies


def check(name: str, value: str) -> None:
    """`gan.precision` / `classifier.precision`: one of PRECISIONS."""
    if value not in PRECISIONS:
        raise KerasCXRError(f"`{name}` must be one of {', '.join(PRECISIONS)}. Received: {value!r}")


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Builds the layers created inside under `precision`, then restores the global policy."""
    import keras

    check("precision", precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def for_precision(optimizer, precision: str):
    """`optimizer`, wrapped in a dynamic LossScaleOptimizer under mixed_float16."""
    if precision == "mixed_float16":
        import keras

        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
