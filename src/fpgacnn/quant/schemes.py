"""The two schemes: a real range -> an integer format; float weights -> integer weights.

- pow2 (dynamic fixed point, Qiu et al. FPGA'16): scale = 2**-frac_bits, zero point 0;
  frac_bits is the largest that keeps the range's largest magnitude representable.
- affine (Jacob et al. CVPR'18): activations asymmetric with a zero point, weights symmetric
  (zero point 0, range +-(2**(bits-1) - 1)) per tensor or per output channel; scales are
  rounded to float32 so that ONNX (which stores float32 scales) sees the same numbers.
"""

import math

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.golden.arith import int_range
from fpgacnn.quant.model import TensorFormat


def check_bits(bits, what: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise UserError(f"{what} must be an integer in 2..16, got {bits!r}")
    return int(bits)


def pow2_frac_bits(magnitude: float, bits: int, signed: bool) -> int:
    """The most fractional bits with round(magnitude * 2**frac) <= the largest code.

    >>> pow2_frac_bits(1.0, 8, True), pow2_frac_bits(0.3, 8, False)
    (6, 9)
    """
    top = int_range(bits, signed)[1]
    if magnitude <= 0:
        return bits - 1
    return math.floor(math.log2(top / magnitude))


def f32(value: float) -> float:
    return float(np.float32(value))


def activation_format(scheme: str, bits: int, lo: float, hi: float,
                      signed: bool | None = None) -> TensorFormat:
    """The format of an activation tensor observed in [lo, hi] (lo <= 0 <= hi).

    >>> activation_format("affine", 8, -1.0, 3.0)
    TensorFormat(bits=8, signed=False, scale=0.01568627543747425, zero_point=64, frac_bits=None)
    """
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if scheme == "pow2":
        signed = lo < 0 if signed is None else signed
        frac = pow2_frac_bits(max(-lo, hi), bits, signed)
        return TensorFormat(bits, signed, 2.0 ** -frac, 0, frac)
    signed = False if signed is None else signed
    qmin, qmax = int_range(bits, signed)
    scale = f32((hi - lo) / (qmax - qmin)) if hi > lo else 1.0
    if scale == 0.0:
        scale = f32(np.finfo(np.float32).tiny)
    zero_point = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return TensorFormat(bits, signed, scale, zero_point)


def fake_quantizer(scheme: str, bits: int, signed: bool | None):
    """For MSE calibration: (lo, hi) -> function rounding values through that format."""
    def make(lo, hi):
        fmt = activation_format(scheme, bits, lo, hi, signed)

        def fake(values):
            q = np.clip(np.rint(values / fmt.scale) + fmt.zero_point, fmt.lo, fmt.hi)
            return (q - fmt.zero_point) * fmt.scale
        return fake
    return make


def weight_dtype(bits: int):
    """The integer type weights of `bits` bits are stored in: int8 up to 8 bits, else int16."""
    return np.int8 if bits <= 8 else np.int16


def quantize_weights(weight: np.ndarray, scheme: str, bits: int, per_channel: bool):
    """Symmetric integer weights: (w_int int8/int16, scale per channel float64, frac or None).

    round_half_even(w / scale) in float32, clamped to +-(2**(bits-1) - 1).
    >>> w, s, f = quantize_weights(np.array([[0.5, -0.25]]), "pow2", 8, False)
    >>> w.tolist(), s.tolist(), f.tolist()
    ([[64, -32]], [0.0078125], [7])
    """
    w = np.asarray(weight, np.float32)
    channels = w.shape[0]
    if w.size:
        rows = w.reshape(channels, -1)
        mags = np.maximum(rows.max(axis=1), -rows.min(axis=1)).astype(np.float64)
    else:
        mags = np.zeros(channels)
    if not per_channel:
        mags = np.full(channels, mags.max() if mags.size else 0.0)
    top = (1 << (bits - 1)) - 1
    if scheme == "pow2":
        frac = np.array([pow2_frac_bits(m, bits, True) for m in mags], np.int64)
        scales = 2.0 ** -frac.astype(np.float64)
    else:
        frac = None
        scales = np.array([f32(m / top) if m > 0 else 1.0 for m in mags], np.float64)
    shape = (-1,) + (1,) * (w.ndim - 1)
    scaled = w / scales.astype(np.float32).reshape(shape)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -top, top, out=scaled)
    w_int = scaled.astype(weight_dtype(bits))
    if not per_channel:
        scales = scales[:1]
        frac = None if frac is None else frac[:1]
    return w_int, scales, frac
