"""Requantization: an integer accumulator to an integer at the output scale (docs/numerics.md).

One function, `requantize`, applies a `Requant` of any mode per channel; `finish` adds the
output zero point, applies the integer activation and saturates.

No int64 product may wrap (the contract: never a silent wrap). Products are formed in int64
only where a bound proves they fit; otherwise `shift` mode computes exactly in Python integers,
and parameters no hardware could hold raise `RangeError`, which names the layer on its way out
of the executor.
"""

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.golden.arith import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_single_round, shift_round)
from fpgacnn.quant.model import QLayer, Requant

_FLOAT32_LIMIT = np.float32(2.0 ** 40)  # far outside every integer format; avoids int overflow
_INT64_LIMIT = 1 << 63
_MAX_RIGHT_SHIFT = 61      # shift_round's 2**(shift-1) and the parity trick below stay in int64


class RangeError(UserError):
    """A requantization or activation parameter outside what 64-bit arithmetic can hold."""


def per_channel(values: np.ndarray, ndim: int, axis: int = 1) -> np.ndarray:
    """Reshape a per-channel vector (or a single value) to broadcast along `axis`."""
    if values.size == 1 or ndim < 2:
        return values.reshape(()) if values.size == 1 else values
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def _peak(x) -> int:
    x = np.asarray(x)
    return max(int(x.max()), -int(x.min())) if x.size else 0


def _fits_int64(x, m, shift) -> bool:
    """Does x * m * 2**max(-shift, 0) plus the rounding half stay inside int64?"""
    shift = np.asarray(shift)
    left = max(-int(shift.min()), 0) if shift.size else 0
    half = 1 << max(int(shift.max()) - 1, 0) if shift.size else 0
    return (_peak(x) * _peak(m) << left) + half < _INT64_LIMIT


def mul_shift_round(x, m, shift, rounding: str) -> np.ndarray:
    """round(x * m / 2**shift) exactly (a negative shift multiplies), int64 result.

    In int64 when the product provably fits; otherwise in Python integers, raising RangeError
    if the result itself does not fit in 64 bits.
    """
    x = np.asarray(x, np.int64)
    m = np.asarray(m, np.int64)
    shift = np.asarray(shift, np.int64)
    if shift.size and int(shift.max()) > _MAX_RIGHT_SHIFT:
        raise RangeError(f"right shift {int(shift.max())} is more than {_MAX_RIGHT_SHIFT}")
    if _fits_int64(x, m, shift):
        return shift_round(x * m, shift, rounding)
    product = x.astype(object) * m.astype(object)
    left = np.maximum(-shift, 0).astype(object)
    right = np.maximum(shift, 0).astype(object)
    product = product << left
    floor = product >> right
    # round(p / 2**r) = floor - parity + round((parity * 2**r + remainder) / 2**r): the small
    # operand has the same remainder and parity, so shift_round takes the same decision on it
    parity = floor & 1
    small = (parity << right) + (product - (floor << right))
    exact = floor - parity + shift_round(small.astype(np.int64), np.asarray(right, np.int64),
                                         rounding).astype(object)
    exact = np.asarray(exact, dtype=object)
    if exact.size and (exact.max() >= _INT64_LIMIT or exact.min() < -_INT64_LIMIT):
        raise RangeError("a requantized value does not fit in 64 bits")
    return exact.astype(np.int64)


def _check_q31(mult, shift, mode: str) -> None:
    if mult.size and (int(mult.min()) < INT32_MIN or int(mult.max()) > INT32_MAX):
        raise RangeError(f"{mode} multiplier outside the int32 range")
    if mode == "single_round" and shift.size and (int(shift.min()) < -31 or
                                                  int(shift.max()) > 30):
        raise RangeError(f"single_round shift must be in [-31, 30], got "
                         f"{int(shift.min())}..{int(shift.max())}")


def requantize(acc, rq: Requant, axis: int = 1) -> np.ndarray:
    """Apply `rq` to the int64 accumulator `acc`, channels along `axis`; int64 result.

    >>> requantize(np.array([[1000]]), Requant("shift", [1], [4], "half_even"))
    array([[62]])
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = per_channel(rq.multiplier, acc.ndim, axis)
    shift = per_channel(rq.shift, acc.ndim, axis)
    if rq.mode == "shift":
        return mul_shift_round(acc, mult, shift, rq.rounding)
    if rq.mode == "float32":
        scaled = acc.astype(np.float32) * mult
        scaled = np.clip(scaled, -_FLOAT32_LIMIT, _FLOAT32_LIMIT)
        return np.rint(scaled).astype(np.int64)
    _check_q31(rq.multiplier, rq.shift, rq.mode)
    # gemmlowp and single_round take int32 inputs; a left shift saturates to int32
    acc = np.clip(acc, INT32_MIN, INT32_MAX)
    if rq.mode == "gemmlowp":
        # any left shift beyond 32 saturates every non-zero value just as 32 does, and any
        # right shift beyond 62 rounds every int32 value to 0 just as 62 does
        left = np.clip(shift, 0, 32)
        acc = np.clip(acc << left, INT32_MIN, INT32_MAX)
        return multiply_by_quantized_multiplier(acc, mult, np.clip(shift, -62, 0))
    return multiply_by_quantized_multiplier_single_round(acc, mult, shift)


def apply_activation(y, layer: QLayer, axis: int = 1, rounding: str = "half_up") -> np.ndarray:
    """LeakyReLU/PReLU on y = q - zero_point: negatives become round(y * m / 2**act_shift)."""
    if layer.act_multiplier is None:
        return y
    m = per_channel(np.asarray(layer.act_multiplier, np.int64), y.ndim, axis)
    if not _fits_int64(y, m, layer.act_shift):
        raise RangeError(f"activation slope {_peak(m)} / "
                         f"2**{layer.act_shift} overflows 64 bits")
    scaled = shift_round(y * m, layer.act_shift, rounding)
    return np.where(y < 0, scaled, y)


def activation_input_range(layer: QLayer, axis: int = 1, ndim: int = 4):
    """[low, high] (per channel) to which y can be clamped before `finish` without changing
    its result: beyond them the output saturates anyway.

    Without a slope it is [out_lo - zp, out_hi - zp]. With slope m / 2**s, every y <= -R with
    R * |m| / 2**s >= span + 1 maps outside the output range on the same side, as -R does.
    """
    zp = layer.output.zero_point
    low, high = layer.out_lo - zp, layer.out_hi - zp
    if layer.act_multiplier is None:
        return np.int64(low), np.int64(high)
    span = max(abs(low), abs(high))
    m = np.abs(np.asarray(layer.act_multiplier, np.int64)).astype(object)
    reach = -(-((span + 1) << layer.act_shift) // np.maximum(m, 1))   # ceil division
    if _peak(reach) * max(_peak(m), 1) >= _INT64_LIMIT >> 1:
        raise RangeError(f"activation shift {layer.act_shift} is too large")
    low = per_channel(-np.asarray(reach, np.int64), ndim, axis)
    return low, np.int64(max(high, 0))


def finish(y, layer: QLayer, axis: int = 1, rounding: str = "half_up") -> np.ndarray:
    """Activation, output zero point, then saturation to [out_lo, out_hi]."""
    y = np.asarray(y, np.int64)
    low, high = activation_input_range(layer, axis, y.ndim)
    y = apply_activation(np.clip(y, low, high), layer, axis, rounding)
    return np.clip(y + layer.output.zero_point, layer.out_lo, layer.out_hi)
