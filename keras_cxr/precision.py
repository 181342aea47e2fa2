"""Mixed precision: which dtype policy the models are built under, and the optimizer that goes
with it. Float32 is the default and the faithful setting; `mixed_float16` is the GPU setting
(Tensor Cores; its loss is scaled so small float16 gradients do not flush to zero);
`mixed_bfloat16` needs no loss scaling (bfloat16 has float32's exponent range).

Every model keeps its variables in float32 and its last layer (G's tanh conv, D's sigmoid Dense,
ResNet18's sigmoid head) in float32, so losses, checkpoints, weight files and exported
SavedModels are float32 whatever the policy, and weights move between policies.

`auto` takes mixed_bfloat16 where the device computes bfloat16 natively (a CPU with AVX-512 BF16
or AMX, a GPU of compute capability 8.0 or later) and experiments/results/precision measured that
bfloat16 keeps that part's results (`BFLOAT16_KEEPS_RESULTS`), float32 elsewhere: on a CPU
without those instructions bfloat16 is emulated and slower. The CLI resolves `auto` once per
command (`resolve_config`), so run folders, cells and their identities record the precision that
ran, and a run resumed on a machine that resolves differently is refused as a changed setting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

from keras_cxr.errors import KerasCXRError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies
SETTINGS = (*PRECISIONS, "auto")
PARTS = ("classifier", "gan")
# Whether mixed_bfloat16 kept each part's results against float32 in experiments/results/precision
# (its summary.json `decision`, checked by tests/test_precision_auto.py): `auto` trusts only these.
BFLOAT16_KEEPS_RESULTS = {"classifier": False, "gan": False}
_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def check(name: str, value: str) -> None:
    """`gan.precision` / `classifier.precision`: one of SETTINGS."""
    if value not in SETTINGS:
        raise KerasCXRError(f"`{name}` must be one of {', '.join(SETTINGS)}. Received: {value!r}")


@functools.lru_cache(maxsize=1)
def native_bfloat16() -> str | None:
    """Why this machine computes bfloat16 natively ("compute capability 8.0" of the first GPU, the
    CPU flag "amx_bf16" or "avx512_bf16"), or None."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
        return f"compute capability {capability[0]}.{capability[1]}" if tuple(capability) >= (8, 0) else None
    from keras_cxr.kernels import cpuinfo

    flags = set((cpuinfo("flags") or "").split())
    return next((flag for flag in _CPU_FLAGS if flag in flags), None)


def resolve(setting: str, part: str) -> str:
    """The Keras dtype policy `setting` stands for on this machine, for `part` (classifier or gan)."""
    check(f"{part}.precision", setting)
    if setting != "auto":
        return setting
    return "mixed_bfloat16" if BFLOAT16_KEEPS_RESULTS[part] and native_bfloat16() else "float32"


def resolve_config(config):
    """`config` with each part's `auto` replaced by what it stands for here."""
    parts = {part: dataclasses.replace(getattr(config, part), precision=resolve(getattr(config, part).precision, part))
             for part in PARTS}
    return dataclasses.replace(config, **parts)


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Builds the layers created inside under `precision` (a Keras dtype policy, `resolve`d), then
    restores the global policy."""
    import keras

    if precision not in PRECISIONS:
        raise KerasCXRError(f"dtype_policy takes one of {', '.join(PRECISIONS)} (`resolve` a setting first). "
                            f"Received: precision={precision!r}")
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
