"""Requantization: an integer accumulator to an integer at the output scale (docs/numerics.md).

One function, `requantize`, applies a `Requant` of any mode per channel; `finish` adds the
output zero point, applies the integer activation and saturates.
"""

import numpy as np

from fpgacnn.golden.arith import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_single_round, shift_round)
from fpgacnn.quant.model import QLayer, Requant

_FLOAT32_LIMIT = np.float32(2.0 ** 40)  # far outside every integer format; avoids int overflow


def per_channel(values: np.ndarray, ndim: int, axis: int = 1) -> np.ndarray:
    """Reshape a per-channel vector (or a single value) to broadcast along `axis`."""
    if values.size == 1 or ndim < 2:
        return values.reshape(()) if values.size == 1 else values
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def requantize(acc, rq: Requant, axis: int = 1) -> np.ndarray:
    """Apply `rq` to the int64 accumulator `acc`, channels along `axis`; int64 result.

    >>> requantize(np.array([[1000]]), Requant("shift", [1], [4], "half_even"))
    array([[62]])
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = per_channel(rq.multiplier, acc.ndim, axis)
    shift = per_channel(rq.shift, acc.ndim, axis)
    if rq.mode == "shift":
        return shift_round(acc * mult, shift, rq.rounding)
    if rq.mode == "float32":
        scaled = acc.astype(np.float32) * mult
        scaled = np.clip(scaled, -_FLOAT32_LIMIT, _FLOAT32_LIMIT)
        return np.rint(scaled).astype(np.int64)
    # gemmlowp and single_round take int32 inputs; a left shift saturates to int32
    left = np.maximum(shift, 0)
    acc = np.clip(acc, INT32_MIN, INT32_MAX)
    if rq.mode == "gemmlowp":
        acc = np.clip(acc << left, INT32_MIN, INT32_MAX)
        return multiply_by_quantized_multiplier(acc, mult, shift - left)
    return multiply_by_quantized_multiplier_single_round(acc, mult, shift)


def apply_activation(y, layer: QLayer, axis: int = 1, rounding: str = "half_up") -> np.ndarray:
    """LeakyReLU/PReLU on y = q - zero_point: negatives become round(y * m / 2**act_shift)."""
    if layer.act_multiplier is None:
        return y
    m = per_channel(np.asarray(layer.act_multiplier, np.int64), y.ndim, axis)
    scaled = shift_round(y * m, layer.act_shift, rounding)
    return np.where(y < 0, scaled, y)


def finish(y, layer: QLayer, axis: int = 1, rounding: str = "half_up") -> np.ndarray:
    """Activation, output zero point, then saturation to [out_lo, out_hi]."""
    y = apply_activation(y, layer, axis, rounding)
    return np.clip(y + layer.output.zero_point, layer.out_lo, layer.out_hi)
