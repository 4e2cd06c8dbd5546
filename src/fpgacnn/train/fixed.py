"""Dynamic power-of-two fixed point for training: tensors, rounding, exact integer products.

A training tensor is an integer array `value` with `frac_bits`: it stands for
`value * 2**-frac_bits`. Every step of the training arithmetic is: an exact integer result
(products summed in an accumulator, never rounded), then ONE rounding to `bits` with a shift
chosen from the tensor's largest magnitude (a leading-zero count over the tensor) so that the
largest result lies in [2**(bits-2), 2**(bits-1)), then saturation (golden/arith.py).
Rounding is to nearest (ties up, `shift_round(..., "half_up")`) or stochastic:
`floor((x + r) / D)` with `r = rng.integers(0, D, size=x.shape)` drawn from a seeded numpy
Generator (one draw per rounding with D > 1), so a run is reproducible.

>>> t = quantize_float(np.array([0.5, -0.25]), bits=8)
>>> t.value, t.frac_bits
(array([ 64, -32]), 7)
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fpgacnn.errors import UserError
from fpgacnn.golden.arith import saturate, shift_round

ROUNDINGS = ("nearest", "stochastic")
EXACT_FLOAT_BITS = 53  # integers below 2**53 are exact in float64


@dataclass(frozen=True, eq=False)
class Fixed:
    """`value * 2**-frac_bits`, `value` an int64 array that fits `bits` (signed)."""

    value: np.ndarray
    frac_bits: int
    bits: int

    def to_float(self) -> np.ndarray:
        return np.ldexp(self.value.astype(np.float64), -self.frac_bits)

    @property
    def shape(self):
        return self.value.shape


def _bit_length(n: int) -> int:
    return int(n).bit_length()


def round_divide(x, divisor, rounding: str = "nearest", rng=None):
    """x / divisor rounded to an integer; `divisor` a positive integer (array or scalar).

    nearest: floor(x / divisor + 1/2); stochastic: floor((x + r) / divisor), r uniform in
    [0, divisor). A power-of-two divisor goes through golden's shift_round.
    >>> round_divide(np.array([5, -5, 7]), 2)
    array([ 3, -2,  4])
    """
    x = np.asarray(x, dtype=np.int64)
    divisor = np.asarray(divisor, dtype=np.int64)
    if rounding == "stochastic":
        if rng is None:
            raise ValueError("stochastic rounding needs a numpy Generator")
        if divisor.ndim == 0:
            r = rng.integers(0, int(divisor), size=x.shape, dtype=np.int64)
        else:
            r = rng.integers(0, np.broadcast_to(divisor, x.shape), dtype=np.int64)
        return (x + r) // divisor
    if rounding != "nearest":
        raise UserError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    if divisor.ndim == 0 and int(divisor) & (int(divisor) - 1) == 0:
        return shift_round(x, _bit_length(int(divisor)) - 1, "half_up")
    return (2 * x + divisor) // (2 * divisor)


def normalizing_shift(largest: int, bits: int, divisor: int = 1) -> int:
    """The smallest s with largest / divisor < 2**(s + bits - 1) (0 for an all-zero tensor).

    Then the largest magnitude, divided by 2**s, lies in [2**(bits-2), 2**(bits-1)).
    >>> normalizing_shift(1000, bits=8), normalizing_shift(3, bits=8, divisor=9)
    (3, -8)
    """
    if largest == 0:
        return 0
    s = _bit_length(largest) - _bit_length(divisor) - (bits - 1)
    while not _fits(largest, divisor, s + bits - 1):
        s += 1
    while _fits(largest, divisor, s + bits - 2):
        s -= 1
    return s


def _fits(largest: int, divisor: int, exponent: int) -> bool:
    """largest < divisor * 2**exponent, in integers."""
    if exponent >= 0:
        return largest < divisor << exponent
    return largest << -exponent < divisor


def requantize(acc, frac_bits: int, bits: int, rounding: str = "nearest", rng=None,
               divisor: int = 1) -> Fixed:
    """The exact value `acc / divisor * 2**-frac_bits` rounded once to a `bits`-wide Fixed.

    The result is normalised: its shift s is `normalizing_shift` of the largest magnitude, so
    that the largest result lies in [2**(bits-2), 2**(bits-1)) (s < 0 adds fraction bits
    exactly). Rounding the largest value up can reach 2**(bits-1); that one value saturates
    (an error of at most one step).
    >>> requantize(np.array([1000, -3]), frac_bits=4, bits=8).value
    array([125,   0])
    """
    acc = np.asarray(acc, dtype=np.int64)
    largest = int(np.max(np.abs(acc))) if acc.size else 0
    shift = normalizing_shift(largest, bits, divisor)
    if shift < 0:
        acc = acc << -shift
    total = divisor << max(shift, 0)
    value = acc if total == 1 else round_divide(acc, total, rounding, rng)
    return Fixed(saturate(value, bits, True), frac_bits - shift, bits)


def quantize_float(x, bits: int, rounding: str = "nearest", rng=None) -> Fixed:
    """A float array as a `bits`-wide Fixed whose fraction makes its largest magnitude fit.

    >>> quantize_float(np.array([1.0, 0.3]), bits=8).frac_bits
    6
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise UserError("cannot quantize a tensor holding inf or nan")
    largest = float(np.max(np.abs(x))) if x.size else 0.0
    exponent = int(np.floor(np.log2(largest))) + 1 if largest > 0 else 0
    frac = bits - 1 - exponent
    scaled = np.ldexp(x, frac)
    if rounding == "stochastic":
        if rng is None:
            raise ValueError("stochastic rounding needs a numpy Generator")
        value = np.floor(scaled + rng.random(x.shape))
    elif rounding == "nearest":
        value = np.floor(scaled + 0.5)
    else:
        raise UserError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    return Fixed(saturate(value.astype(np.int64), bits, True), frac, bits)


def align(value, frac_bits: int, target_frac: int):
    """Integers at `frac_bits` expressed at `target_frac` >= frac_bits (an exact left shift)."""
    if target_frac < frac_bits:
        raise ValueError(f"cannot align fraction {frac_bits} down to {target_frac} exactly")
    return np.asarray(value, dtype=np.int64) << (target_frac - frac_bits)


def _check_exact(a_max: int, b_max: int, terms: int, what: str) -> None:
    if a_max * b_max * terms >= 1 << EXACT_FLOAT_BITS:
        raise UserError(f"{what}: products summed over {terms} terms may reach 2**"
                        f"{_bit_length(a_max * b_max * terms)}, beyond the exact 53-bit path")


def _amax(x) -> int:
    return int(np.max(np.abs(x))) if np.size(x) else 0


def exact_matmul(a, b, what: str = "matmul") -> np.ndarray:
    """a @ b for int64 matrices, exactly (float64 BLAS, checked to stay below 2**53)."""
    _check_exact(_amax(a), _amax(b), a.shape[-1], what)
    return (np.asarray(a, np.float64) @ np.asarray(b, np.float64)).astype(np.int64)


def exact_conv2d(x, w, stride=(1, 1), dilation=(1, 1), groups=1, what="conv") -> np.ndarray:
    """PyTorch's conv2d (no padding, no bias) of int64 arrays, exactly."""
    terms = int(np.prod(w.shape[1:]))
    _check_exact(_amax(x), _amax(w), terms, what)
    out = F.conv2d(torch.from_numpy(np.asarray(x, np.float64)),
                   torch.from_numpy(np.asarray(w, np.float64)),
                   None, tuple(stride), 0, tuple(dilation), groups)
    return out.numpy().astype(np.int64)


def pad_or_crop(x, pads, fill=0) -> np.ndarray:
    """Pad (or crop, where a pad is negative) the last two axes; pads = (top, left, bottom,
    right)."""
    t, l, b, r = (int(p) for p in pads)
    h, w = x.shape[-2:]
    x = x[..., max(0, -t):h - max(0, -b), max(0, -l):w - max(0, -r)]
    widths = [(0, 0)] * (x.ndim - 2) + [(max(0, t), max(0, b)), (max(0, l), max(0, r))]
    return np.pad(x, widths, constant_values=fill)


@dataclass(frozen=True, eq=False)
class Rounder:
    """How one kind of tensor is narrowed: its width and rounding (and the generator).

    >>> grads = Rounder(16, "stochastic", np.random.default_rng(0))
    >>> grads(np.array([3 << 20]), frac_bits=24).frac_bits
    17
    """

    bits: int
    rounding: str = "nearest"
    rng: np.random.Generator | None = None

    def __post_init__(self):
        if self.rounding not in ROUNDINGS:
            raise UserError(f"rounding must be one of {', '.join(ROUNDINGS)}, "
                            f"not {self.rounding!r}")
        if self.rounding == "stochastic" and self.rng is None:
            object.__setattr__(self, "rng", np.random.default_rng(0))

    def __call__(self, acc, frac_bits: int, divisor: int = 1) -> Fixed:
        return requantize(acc, frac_bits, self.bits, self.rounding, self.rng, divisor)

    def float(self, x) -> Fixed:
        return quantize_float(x, self.bits, self.rounding, self.rng)
