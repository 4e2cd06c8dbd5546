"""Integer arithmetic primitives of the numeric contract (docs/numerics.md).

Everything here works on numpy int64 arrays (or Python ints) and is exact. The hardware, the
exporter and the training code use these functions; nothing re-implements them.
"""

import numpy as np

from fpgacnn.errors import UserError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
ROUNDINGS = ("half_up", "half_even", "truncate")


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """The smallest and largest value of a `bits`-wide integer."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def saturate(x, bits: int, signed: bool):
    """Clamp to the range of a `bits`-wide integer (the only way a value is narrowed)."""
    lo, hi = int_range(bits, signed)
    return np.clip(x, lo, hi)


def shift_round(x, shift, rounding: str = "half_up"):
    """x / 2**shift rounded to an integer; a negative `shift` multiplies by 2**-shift.

    - half_up: add 2**(shift-1), then shift right arithmetically (ties toward +infinity)
    - half_even: ties to the even neighbour
    - truncate: shift right arithmetically (floor, toward -infinity), as a wire slice does
    `shift` may be an array (per channel) broadcast against `x`.
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if rounding not in ROUNDINGS:
        raise UserError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    left = np.maximum(-shift, 0)
    right = np.maximum(shift, 0)
    x = x << left
    floor = x >> right
    if rounding == "truncate":
        return floor
    half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    if rounding == "half_up":
        return (x + half) >> right
    remainder = x - (floor << right)
    round_up = (remainder > half) | ((remainder == half) & (half > 0) & (floor & 1 == 1))
    return floor + round_up.astype(np.int64)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values: round(a*b / 2**31)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = ab + nudge
    quotient = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C division truncates
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, quotient)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(M0, shift) with real = M0 * 2**(shift - 31), M0 in [2**30, 2**31) (TFLite's rule).

    shift > 0 is a left shift, shift < 0 a right shift. real == 0 gives (0, 0).
    """
    if real < 0:
        raise ValueError(f"multiplier must be non-negative, got {real}")
    if real == 0:
        return 0, 0
    mantissa, exponent = np.frexp(real)
    m0 = int(round(float(mantissa) * (1 << 31)))
    if m0 == 1 << 31:
        m0 //= 2
        exponent += 1
    if exponent < -31:  # too small to represent: flushes to zero
        return 0, 0
    return m0, int(exponent)


def multiply_by_quantized_multiplier(x, m0, shift):
    """gemmlowp/TFLite requantization: SRDHM(x * 2**left, M0), then RoundingDivideByPOT(right).

    `x` int32 values, `m0` int32 (Q31), `shift` as returned by quantize_multiplier.
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.asarray(x, dtype=np.int64) << left
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m0), right)


def multiply_by_quantized_multiplier_single_round(x, m0, shift):
    """The single-rounding variant: round(x * M0 / 2**(31 - shift)) half up, one rounding."""
    total = 31 - np.asarray(shift, dtype=np.int64)
    product = np.asarray(x, dtype=np.int64) * np.asarray(m0, dtype=np.int64)
    return (product + (np.int64(1) << (total - 1))) >> total
