"""Backward of the activations in fixed point, from the pre-activation z the forward kept.

- ReLU: dz = dy where z > 0, else 0 (exact, no rounding)
- Clip(low, high): dz = dy where low <= z <= high, else 0 (exact)
- LeakyReLU(alpha): dz = dy where z > 0, else alpha * dy (alpha a fixed-point constant)
- PReLU(slope[c]): as LeakyReLU per channel; dslope[c] = sum of dy * z where z <= 0

>>> dz = activation_grad(ops.ReLU(), dy, z, rounder=Rounder(16))
"""

import numpy as np

from fpgacnn.ir import ops
from fpgacnn.train.fixed import Fixed, Rounder, align


def _slope_shape(slope: Fixed, ndim: int):
    return (1, -1) + (1,) * (ndim - 2) if slope.value.size > 1 else ()


def scaled_negative(dy: Fixed, z: Fixed, slope: Fixed, rounder: Rounder) -> Fixed:
    """dy where z > 0, slope * dy elsewhere (slope a scalar or one per channel)."""
    slope_value = slope.value.reshape(_slope_shape(slope, dy.value.ndim))
    frac = dy.frac_bits + slope.frac_bits
    acc = np.where(z.value > 0, align(dy.value, dy.frac_bits, frac), dy.value * slope_value)
    return rounder(acc, frac)


def prelu_slope_grad(dy: Fixed, z: Fixed, channels: int, rounder: Rounder) -> Fixed:
    """dL/dslope: the sum of dy * z over the positions where z <= 0, per channel (or all)."""
    products = np.where(z.value > 0, 0, dy.value * z.value)
    if channels == 1:
        acc = products.sum().reshape(1)
    else:
        acc = products.sum(axis=tuple(i for i in range(products.ndim) if i != 1))
    return rounder(acc, dy.frac_bits + z.frac_bits)


def clip_mask(op: ops.Clip, z: Fixed) -> np.ndarray:
    """low <= z <= high, comparing exactly: the bounds are scaled to z's fraction."""
    scaled = np.ldexp(z.value.astype(np.float64), -z.frac_bits)
    return (scaled >= op.low) & (scaled <= op.high)


def activation_grad(act, dy: Fixed, z: Fixed, rounder: Rounder, slope: Fixed | None = None):
    """dL/dz for activation `act` (ReLU, LeakyReLU, PReLU or Clip).

    LeakyReLU's alpha and PReLU's slope come in `slope` as fixed-point values.
    """
    if isinstance(act, ops.ReLU):
        return Fixed(np.where(z.value > 0, dy.value, 0), dy.frac_bits, dy.bits)
    if isinstance(act, ops.Clip):
        return Fixed(np.where(clip_mask(act, z), dy.value, 0), dy.frac_bits, dy.bits)
    if isinstance(act, (ops.LeakyReLU, ops.PReLU)):
        return scaled_negative(dy, z, slope, rounder)
    raise TypeError(f"no backward for activation {act!r}")
