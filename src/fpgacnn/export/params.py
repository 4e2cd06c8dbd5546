"""The integer parameter tensors of a quantized layer, as the engine reads them.

Each is `(field, kind, array, bits)`: the weight (OIHW, an FC weight as (O, I, 1, 1)), the bias,
the requantization multiplier and shift, the activation slope multiplier, and each input's
requantization (concat/add), every per-channel vector repeated to the layer's output channels.

>>> [(f, k) for f, k, _, _ in layer_params(qm.layer("conv1"), 16)]
[('weight', 'weight'), ('bias', 'bias'), ('multiplier', 'requant'), ('shift', 'requant')]
"""

import numpy as np

from fpgacnn.errors import UserError

MULTIPLIER_BITS = 32
SHIFT_BITS = 8


def per_channel(values, channels: int, name: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(values))
    if values.size == 1:
        return np.repeat(values, channels)
    if values.size != channels:
        raise UserError(f"tensor {name}: {values.size} values for {channels} channels")
    return values


def multiplier_ints(rq) -> np.ndarray:
    """The multipliers as integers: M0 (Q31 modes), the factor (shift mode), or the float32
    bit pattern as a signed int32 (float32 mode)."""
    if rq.mode == "float32":
        return np.asarray(rq.multiplier, np.float32).view(np.int32).astype(np.int64)
    return np.asarray(rq.multiplier, np.int64)


def requant_params(prefix: str, rq, channels: int) -> list[tuple]:
    return [(f"{prefix}multiplier", "requant",
             per_channel(multiplier_ints(rq), channels, f"{prefix}multiplier"), MULTIPLIER_BITS),
            (f"{prefix}shift", "requant", per_channel(rq.shift, channels, f"{prefix}shift"),
             SHIFT_BITS)]


def layer_params(layer, channels: int) -> list[tuple]:
    """[(field, kind, int array, bits or None)] of a QLayer with `channels` output channels.

    bits None means: the width of the kind's layout (weight_bits, acc_bits).
    """
    params = []
    if layer.weight is not None:
        w = np.asarray(layer.weight)
        params.append(("weight", "weight", w.reshape(w.shape + (1, 1)) if w.ndim == 2 else w,
                       None))
    if layer.bias is not None:
        params.append(("bias", "bias", np.asarray(layer.bias, np.int64), None))
    if layer.requant is not None:
        params += requant_params("", layer.requant, channels)
    for k, rq in enumerate(layer.input_requants or ()):
        if rq is not None:
            params += requant_params(f"in{k}.", rq, channels)
    if layer.act_multiplier is not None:
        params.append(("act_multiplier", "requant",
                       per_channel(layer.act_multiplier, channels, f"{layer.name}.act"),
                       MULTIPLIER_BITS))
    return params
