"""Flatten, concat, upsample and add in fixed point: forward and backward.

- flatten: the gradient is reshaped back (exact)
- concat (channels): inputs are brought to the smallest fraction among them (a rounding right
  shift of the others); the gradient is split back along the channels (exact)
- upsample (nearest, factor s): dx = the sum of each s x s block of dy, rounded once
- add: both inputs are brought to the larger fraction (exact left shift), summed and rounded
  once; each input receives dy unchanged

>>> y = concat_forward([a, b], rounder=Rounder(16))
>>> da, db = concat_grad(dy, [a.shape[1], b.shape[1]])
"""

import numpy as np

from fpgacnn.train.fixed import Fixed, Rounder, align, round_divide


def flatten_grad(dy: Fixed, input_shape) -> Fixed:
    return Fixed(dy.value.reshape(input_shape), dy.frac_bits, dy.bits)


def concat_forward(xs: list[Fixed], rounder: Rounder, axis: int = 1) -> Fixed:
    frac = min(x.frac_bits for x in xs)
    parts = [x.value if x.frac_bits == frac
             else round_divide(x.value, 1 << (x.frac_bits - frac), rounder.rounding, rounder.rng)
             for x in xs]
    return rounder(np.concatenate(parts, axis=axis), frac)


def concat_grad(dy: Fixed, sizes, axis: int = 1) -> list[Fixed]:
    pieces = np.split(dy.value, np.cumsum(sizes)[:-1], axis=axis)
    return [Fixed(p, dy.frac_bits, dy.bits) for p in pieces]


def upsample_forward(x: Fixed, scale: int) -> Fixed:
    value = x.value.repeat(scale, axis=2).repeat(scale, axis=3)
    return Fixed(value, x.frac_bits, x.bits)


def upsample_grad(dy: Fixed, scale: int, rounder: Rounder) -> Fixed:
    n, c, h, w = dy.shape
    blocks = dy.value.reshape(n, c, h // scale, scale, w // scale, scale)
    return rounder(blocks.sum(axis=(3, 5)), dy.frac_bits)


def add_forward(a: Fixed, b: Fixed, rounder: Rounder) -> Fixed:
    frac = max(a.frac_bits, b.frac_bits)
    return rounder(align(a.value, a.frac_bits, frac) + align(b.value, b.frac_bits, frac), frac)
