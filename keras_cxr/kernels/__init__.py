"""CPU speed paths, fenced behind one setting: `kernels: auto | stock | conv_grad`.

Each kernel here computes the same function as the stock Keras op it replaces (the tests compare
outputs and gradients, and training, against the stock op); only the TensorFlow ops, and so the
speed and the float round-off, differ. The layer classes stay the same whichever path runs, so
weight files move between machines and settings.

- `gan_output_conv`: the generator's one-filter output conv (~4x faster training pass on CPU);
- `batch_norm`: BatchNormalization through the fused kernel (~2x per BN layer on CPU);
- `adam`: Adam's update as one fused kernel (~3x for the update);
- `conv_input_grad`: ResNet18's conv input gradient as a forward convolution. TensorFlow's stock
  kernel for it is slow on x86-64 CPUs without AVX-512: the rewrite made the whole quick step
  2.3x faster on the host of 2026-11-25 and 2.9x on the AVX2-only AMD EPYC of 2026-12-01, and
  6-9% slower on the AVX-512 AMD EPYC hosts of 2026-11-26
  (experiments/benchmarks/results/resnet18_step.md, resnet18_step_avx2.md). So `auto` takes it on
  x86-64 CPUs without AVX-512, and `conv_grad` takes it everywhere. It is chosen by the CPU's
  features, never by timing: the two paths differ in round-off, and a choice that flipped with
  machine load would make a cell's numbers depend on load.

`auto` is what every command runs by default; `stock` runs Keras' own ops (a reference, and a way
to rule the kernels out when something looks wrong).

Like precision (`keras_cxr.precision.dtype_policy`), the kernels are a scoped setting: the models
built inside `with use(kernels):` take those paths (`current()`), and outside any scope `auto`'s.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from keras_cxr.errors import KerasCXRError

KERNEL_SETTINGS = ("auto", "stock", "conv_grad")


@dataclass(frozen=True)
class Kernels:
    """Which speed path each builder takes (`resolve` turns the setting into one of these;
    benchmarks build their own to time one kernel at a time).

    Args:
        gan_output_conv: bool. Generator output conv via `gan_output_conv.SingleFilterConv2D`'s kernels.
        fused_bn: bool. `batch_norm.FusedBatchNormalization` trains with the fused kernel.
        fused_adam: bool. `adam.FusedAdam` updates with the fused kernel.
        conv_input_grad: bool. ResNet18's residual convs take `conv_input_grad`'s gradient path.
    """

    gan_output_conv: bool = False
    fused_bn: bool = False
    fused_adam: bool = False
    conv_input_grad: bool = False


STOCK = Kernels()


def check(setting: str) -> None:
    if setting not in KERNEL_SETTINGS:
        raise KerasCXRError(f"`kernels` must be one of {', '.join(KERNEL_SETTINGS)}. Received: kernels={setting!r}")


def resolve(setting: str = "auto") -> Kernels:
    """The kernels a setting stands for on this machine (the CPU-only ones are off on a GPU)."""
    check(setting)
    if setting == "stock":
        return STOCK
    import tensorflow as tf

    cpu = not tf.config.list_logical_devices("GPU")  # cuDNN's own kernels are fine on GPUs
    input_grad = setting == "conv_grad" or (setting == "auto" and slow_stock_input_grad())
    return Kernels(gan_output_conv=cpu, fused_bn=True, fused_adam=True, conv_input_grad=cpu and input_grad)


_SCOPE: list[Kernels] = []  # the innermost `use` last


@contextlib.contextmanager
def use(kernels: "Kernels | str"):
    """Builds the models created inside with `kernels` (a Kernels, or a setting `resolve` reads)."""
    _SCOPE.append(resolve(kernels) if isinstance(kernels, str) else kernels)
    try:
        yield _SCOPE[-1]
    finally:
        _SCOPE.pop()


@contextlib.contextmanager
def preset(setting: str):
    """A preset's `kernels` setting, unless a `use` scope is already active (it wins: benchmarks
    time one kernel at a time around the same builders)."""
    if _SCOPE:
        yield _SCOPE[-1]
    else:
        with use(setting) as kernels:
            yield kernels


def current() -> Kernels:
    """The kernels of the innermost `use`, else `auto`'s on this machine."""
    return _SCOPE[-1] if _SCOPE else resolve("auto")


def cpuinfo(field: str) -> str | None:
    """The first value of a /proc/cpuinfo field ("flags", "model name"); None where there is
    no such file (not Linux) or field. The one reader of the CPU's description."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_flags() -> frozenset:
    """The instruction-set flags of this machine's CPU; empty where unknown."""
    return frozenset((cpuinfo("flags") or "").split())


def slow_stock_input_grad() -> bool:
    """Whether this is a CPU whose stock conv input-gradient kernel is the slow one: x86-64
    without AVX-512 (measured; see the module docstring). Unknown CPUs keep the stock kernel."""
    import platform

    flags = cpu_flags()
    return platform.machine().lower() in ("x86_64", "amd64") and "avx2" in flags and "avx512f" not in flags
