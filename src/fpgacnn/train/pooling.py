"""Max, average and global average pooling in fixed point: forward (keeping what the backward
needs) and backward.

- max pool: the forward keeps, per window, the position of the first maximum in row-major
  order (PyTorch's choice on ties); the backward adds each output gradient to that position.
- average pool: y = round(sum / count); dx[i] = sum over the windows holding i of
  dy / count, computed exactly as `sum dy * (L / count)` with L the lcm of the counts, then
  rounded once (divisor L).
- global average pool: dx = dy / (H * W) at every position, rounded once.

>>> y, argmax = maxpool_forward(op, x)
>>> dx = maxpool_grad(op, dy, argmax, x.shape, rounder=Rounder(16))
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fpgacnn.golden.arith import saturate
from fpgacnn.ir import ops
from fpgacnn.train.fixed import Fixed, Rounder, round_divide

_LOWEST = np.iinfo(np.int64).min


def _pad_for_window(op, x, fill, explicit_fill=None):
    """Pad explicitly (with `explicit_fill`, default `fill`) plus the ceil-mode tail (`fill`)."""
    n, c, h, w = x.shape
    oh, ow = op.output_shape([x.shape])[2:]
    t, l, b, r = op.padding
    extra_b = max(0, (oh - 1) * op.stride[0] + op.kernel[0] - (h + t + b))
    extra_r = max(0, (ow - 1) * op.stride[1] + op.kernel[1] - (w + l + r))
    inner = fill if explicit_fill is None else explicit_fill
    x = np.pad(x, [(0, 0), (0, 0), (t, b), (l, r)], constant_values=inner)
    return np.pad(x, [(0, 0), (0, 0), (0, extra_b), (0, extra_r)], constant_values=fill)


def _windows(op, padded, out_hw):
    """(N, C, OH, OW, kh * kw) view of the windows of a padded array."""
    view = sliding_window_view(padded, op.kernel, axis=(2, 3))
    view = view[:, :, ::op.stride[0], ::op.stride[1]][:, :, :out_hw[0], :out_hw[1]]
    return view.reshape(view.shape[:4] + (-1,))


def maxpool_forward(op: ops.MaxPool, x: Fixed):
    """(y, argmax): argmax is the row-major position of the chosen element in each window."""
    out_hw = op.output_shape([x.shape])[2:]
    windows = _windows(op, _pad_for_window(op, x.value, _LOWEST), out_hw)
    argmax = windows.argmax(axis=-1)
    y = np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
    return Fixed(y, x.frac_bits, x.bits), argmax


def maxpool_grad(op: ops.MaxPool, dy: Fixed, argmax, input_shape, rounder: Rounder) -> Fixed:
    """dL/dx: each output gradient goes to the element its window chose (sums where windows
    overlap)."""
    n, c, h, w = input_shape
    _, _, oh, ow = dy.shape
    kw = op.kernel[1]
    rows = np.arange(oh)[:, None] * op.stride[0] + argmax // kw - op.padding[0]
    cols = np.arange(ow)[None, :] * op.stride[1] + argmax % kw - op.padding[1]
    if rows.min() < 0 or cols.min() < 0 or rows.max() >= h or cols.max() >= w:
        raise ValueError("a max-pool window chose a padding element")
    planes = np.arange(n * c).reshape(n, c, 1, 1)
    flat = (planes * h + rows) * w + cols
    acc = np.bincount(flat.ravel(), weights=dy.value.ravel().astype(np.float64),
                      minlength=n * c * h * w)
    return rounder(acc.astype(np.int64).reshape(input_shape), dy.frac_bits)


def avgpool_counts(op: ops.AvgPool, input_hw) -> np.ndarray:
    """How many elements each output averages (OH, OW), padding counted if count_include_pad."""
    ones = np.ones((1, 1) + tuple(input_hw), dtype=np.int64)
    padded = _pad_for_window(op, ones, 0, 1 if op.count_include_pad else 0)
    out_hw = op.output_shape([ones.shape])[2:]
    return _windows(op, padded, out_hw).sum(axis=-1)[0, 0]


def avgpool_forward(op: ops.AvgPool, x: Fixed, rounder: Rounder) -> Fixed:
    out_hw = op.output_shape([x.shape])[2:]
    sums = _windows(op, _pad_for_window(op, x.value, 0), out_hw).sum(axis=-1)
    y = round_divide(sums, avgpool_counts(op, x.shape[2:]), rounder.rounding, rounder.rng)
    return Fixed(saturate(y, x.bits, True), x.frac_bits, x.bits)


def avgpool_grad(op: ops.AvgPool, dy: Fixed, input_shape, rounder: Rounder) -> Fixed:
    n, c, h, w = input_shape
    _, _, oh, ow = dy.shape
    counts = avgpool_counts(op, (h, w))
    common = math.lcm(*np.unique(counts).tolist())
    scaled = dy.value * (common // counts)
    padded_shape = _pad_for_window(op, np.zeros((1, 1, h, w), np.int64), 0).shape[2:]
    acc = np.zeros((n, c) + padded_shape, dtype=np.int64)
    (sh, sw), (kh, kw) = op.stride, op.kernel
    for i in range(kh):
        for j in range(kw):
            acc[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] += scaled
    t, l = op.padding[:2]
    return rounder(acc[:, :, t:t + h, l:l + w], dy.frac_bits, divisor=common)


def global_avgpool_forward(x: Fixed, rounder: Rounder) -> Fixed:
    h, w = x.shape[2:]
    sums = x.value.sum(axis=(2, 3), keepdims=True)
    y = round_divide(sums, h * w, rounder.rounding, rounder.rng)
    return Fixed(saturate(y, x.bits, True), x.frac_bits, x.bits)


def global_avgpool_grad(dy: Fixed, input_shape, rounder: Rounder) -> Fixed:
    acc = np.broadcast_to(dy.value, input_shape)
    return rounder(acc, dy.frac_bits, divisor=input_shape[2] * input_shape[3])
