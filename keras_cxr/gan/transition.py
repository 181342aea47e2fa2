"""Transitional conditioning (Shahbazi et al., ICLR 2022, "Collapse by Conditioning"): a cDCGAN
starts as an unconditional GAN and the labels are faded in.

On small data a conditional GAN can collapse where the unconditional one trains (this project's
quick cDCGANs sit far from real images while the DCGAN on the same budget gets close). Their
remedy: train unconditionally first, so both labels' images share what they have in common, then
raise the weight of the label information from 0 to 1 over a stretch of steps:

    lambda_n = min(1, max(0, (n - start) / (end - start)))     (n: the step's G update, from 1)

Here every place a label enters G or D is scaled by lambda_n through a `ConditionGate`: G's label
embedding before it joins z, and D's label input (the concat head's image plane, or the
projection head's inner product). At lambda = 0 G and D ignore the labels; at lambda = 1 they are
the plain cDCGAN. (Their StyleGAN2 code also keeps an unconditional D logit and sums its loss
with lambda times the conditional one; here the one logit carries the faded label term, so the
train step and its loss stay the paper's.)
"""

from __future__ import annotations

import keras
from keras import ops

from keras_cxr.errors import KerasCXRError


def label_weight(step, start: int, end: int):
    """lambda of G update number `step` (from 1; a tensor or a number): 0 up to `start`, 1 from
    `end`. With start and end at epoch boundaries, an epoch's last update is the one that
    reaches them."""
    return ops.clip((ops.cast(step, "float32") - start) / float(end - start), 0.0, 1.0)


def check_steps(start: int, end: int) -> None:
    if not 0 <= start < end:
        raise KerasCXRError(f"a transition needs 0 <= start < end (G updates). Received: start={start}, end={end}")


@keras.saving.register_keras_serializable(package="keras_cxr")
class ConditionGate(keras.layers.Layer):
    """Multiplies its input by `weight`, a non-trainable scalar the GAN sets every step.

    It starts at 1 (the label fully in), so a generator built and exported with it is the plain
    conditional generator unless training lowered it; its value is saved with the model.
    """

    def build(self, input_shape):
        self.weight = self.add_weight(shape=(), initializer="ones", trainable=False, name="label_weight",
                                      dtype="float32")
        self.built = True

    def call(self, x):
        return x * ops.cast(self.weight, x.dtype)


def gates(*models) -> list:
    """The label-weight variables of every `ConditionGate` layer of `models` (None: skipped)."""
    return [layer.weight for model in models if model is not None for layer in model.layers
            if isinstance(layer, ConditionGate)]
