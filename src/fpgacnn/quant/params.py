"""Integer parameters of one layer: requantizers, bias, activation multipliers, bounds."""

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.golden.arith import int_range, quantize_multiplier
from fpgacnn.ir import ops
from fpgacnn.quant.model import Requant, TensorFormat

ACT_SHIFT = 16         # LeakyReLU/PReLU slopes are integers over 2**16
AVG_SHIFT = 15         # pow2 average pools multiply by round(2**15 / count)
ADD_GUARD_BITS = 8     # residual add: inputs rescaled to s_out / 2**8 before the sum
F32 = np.float32


def requant_for(mode: str, rounding: str, real, float32_value=None, pow2_shift=None,
                pow2_multiplier=1, where: str = "") -> Requant:
    """A Requant of `mode` for the real multiplier(s) `real` (one per channel).

    mode "shift" uses `pow2_shift` (and `pow2_multiplier`); "float32" uses `float32_value`
    (computed by the caller exactly as onnxruntime does); the Q31 modes derive (M0, shift).
    """
    if mode == "shift":
        return Requant("shift", np.broadcast_to(pow2_multiplier, np.shape(pow2_shift)),
                       pow2_shift, rounding)
    if mode == "float32":
        return Requant("float32", float32_value, np.zeros(np.size(float32_value), np.int64))
    pairs = [quantize_multiplier(float(r)) for r in np.atleast_1d(real)]
    m0 = np.array([p[0] for p in pairs], np.int64)
    shift = np.array([p[1] for p in pairs], np.int64)
    if shift.max() > 30:
        raise UserError(f"{where}: requantization multiplier {float(np.max(real)):.3g} is too "
                        f"large for Q31 (needs a left shift above 30)")
    return Requant(mode, m0, shift, rounding)


def conv_requant(mode, rounding, fin: TensorFormat, w_scale, w_frac, fout: TensorFormat,
                 where: str) -> Requant:
    """acc (at s_in * s_w) -> output: real = s_in * s_w / s_out per channel."""
    real = fin.scale * np.asarray(w_scale, np.float64) / fout.scale
    f32_value = (F32(fin.scale) * np.asarray(w_scale, F32)) / F32(fout.scale)
    shift = None
    if mode == "shift":
        shift = fin.frac_bits + np.asarray(w_frac, np.int64) - fout.frac_bits
    return requant_for(mode, rounding, real, f32_value, shift, where=where)


def rescale_requant(mode, rounding, fin: TensorFormat, fout: TensorFormat, where: str,
                    guard_bits: int = 0) -> Requant | None:
    """(x - zp_in) -> the output's scale times 2**guard_bits; None when nothing changes."""
    if fin == fout and guard_bits == 0:
        return None
    real = fin.scale / fout.scale * 2.0 ** guard_bits
    f32_value = F32(F32(fin.scale) / F32(fout.scale)) * F32(2.0 ** guard_bits)
    shift = None
    if mode == "shift":
        shift = np.array([fin.frac_bits - fout.frac_bits - guard_bits])
    return requant_for(mode, rounding, np.array([real]), np.array([f32_value]), shift,
                       where=where)


def average_requant(mode, rounding, fin, fout, count: int, where: str,
                    global_pool: bool = False) -> Requant:
    """sum of count values (x - zp_in) -> output: real = s_in / (s_out * count).

    The float32 value is onnxruntime's: for a global pool (QLinearGlobalAveragePool)
    s_in / (s_out * float(count)); for a windowed pool, exported as a depthwise QLinearConv
    with weights 1 at scale float32(1/count), (s_in * float32(1/count)) / s_out.
    """
    real = fin.scale / (fout.scale * count)
    if global_pool:
        f32_value = F32(fin.scale) / (F32(fout.scale) * F32(count))
    else:
        f32_value = (F32(fin.scale) * F32(1.0 / count)) / F32(fout.scale)
    if mode == "shift":
        multiplier = int(np.rint(2.0 ** AVG_SHIFT / count))
        shift = np.array([AVG_SHIFT + fin.frac_bits - fout.frac_bits])
        return requant_for("shift", rounding, None, None, shift, multiplier)
    return requant_for(mode, rounding, np.array([real]), np.array([f32_value]), where=where)


def integer_bias(bias, fin: TensorFormat, w_scale, acc_bits: int, where: str) -> np.ndarray:
    """round_half_even(b / (s_in * s_w)) per channel; it must fit the accumulator."""
    acc_scale = fin.scale * np.asarray(w_scale, np.float64)
    b = np.rint(np.asarray(bias, np.float64) / acc_scale).astype(np.int64)
    lo, hi = int_range(acc_bits, True)
    if b.size and (b.min() < lo or b.max() > hi):
        raise UserError(f"{where}: bias {int(np.abs(b).max())} at scale s_in*s_w does not fit "
                        f"a {acc_bits}-bit accumulator")
    return b


def saturation_bounds(activation, fout: TensorFormat) -> tuple[int, int]:
    """ReLU and Clip as integer bounds on the output (with its zero point)."""
    lo, hi = fout.lo, fout.hi
    if isinstance(activation, ops.ReLU):
        lo = max(lo, fout.zero_point)
    elif isinstance(activation, ops.Clip):
        lo = max(lo, fout.zero_point + int(np.rint(activation.low / fout.scale)))
        hi = min(hi, fout.zero_point + int(np.rint(activation.high / fout.scale)))
        if lo > hi:
            raise UserError(f"Clip({activation.low}, {activation.high}) is empty at scale "
                            f"{fout.scale}")
    return lo, hi


def _slopes(activation, params) -> np.ndarray | None:
    if isinstance(activation, ops.LeakyReLU):
        return np.array([activation.alpha])
    if isinstance(activation, ops.PReLU):
        return np.asarray(params["slope"], np.float64).ravel()
    return None


def activation_multiplier(activation, params) -> np.ndarray | None:
    """LeakyReLU/PReLU slopes as integers over 2**ACT_SHIFT (0.1 -> 6554)."""
    slopes = _slopes(activation, params)
    return None if slopes is None else np.rint(slopes * 2 ** ACT_SHIFT).astype(np.int64)


def activation_slope_float32(activation, params) -> np.ndarray | None:
    """float32 mode: LeakyReLU/PReLU slopes as the float32 values onnxruntime multiplies by."""
    slopes = _slopes(activation, params)
    return None if slopes is None else slopes.astype(F32)


def add_float32_requants(fins, fout: TensorFormat) -> tuple[Requant, ...]:
    """float32 mode add: each input's ratio float32(s_k) / float32(s_out), as QLinearAdd."""
    return tuple(Requant("float32", [F32(f.scale) / F32(fout.scale)], [0]) for f in fins)
