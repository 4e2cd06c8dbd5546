"""Backward of Conv2d and Linear in fixed point: every gradient is itself a convolution or GEMM.

For `y = conv(x, w) + b` (stride s, padding p, dilation d, groups g):

- input gradient: the output gradient with s-1 zeros inserted between its elements, padded
  (or cropped) by `(k-1)*d - p` before and `H + p - (OH-1)*s - 1` after, convolved (stride 1,
  dilation d, groups g) with the kernel rotated by 180 degrees and its channel axes swapped;
- weight gradient: the padded input (channels as batch, batch as channels) convolved with the
  output gradient as kernel, stride d, dilation s;
- bias gradient: the output gradient summed over batch and positions.

For `y = x W^T + b`: dX = dY W, dW = dY^T X, db = sum over the batch of dY (seed 000).
Each product is summed exactly, then rounded once by the gradient `Rounder`.

>>> dx = conv2d_grad_input(op, dy, w, input_hw=(8, 8), rounder=Rounder(16))
"""

from dataclasses import dataclass

import numpy as np

from fpgacnn.ir import ops
from fpgacnn.train.fixed import Fixed, Rounder, exact_conv2d, exact_matmul, pad_or_crop


@dataclass(frozen=True)
class GradInputGeometry:
    """How the input gradient of a Conv2d becomes a stride-1 convolution."""

    zero_insert: tuple[int, int]          # the forward stride: zeros between dY elements
    pads: tuple[int, int, int, int]       # (top, left, bottom, right); negative crops
    dilated_hw: tuple[int, int]           # dY's height and width after zero insertion


def grad_input_geometry(op: ops.Conv2d, input_hw, output_hw) -> GradInputGeometry:
    (h, w), (oh, ow) = input_hw, output_hw
    (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
    t, l, _, _ = op.padding
    pads = ((kh - 1) * dh - t, (kw - 1) * dw - l,
            h + t - (oh - 1) * sh - 1, w + l - (ow - 1) * sw - 1)
    return GradInputGeometry((sh, sw), pads, ((oh - 1) * sh + 1, (ow - 1) * sw + 1))


def rotated_kernel(weight, groups: int) -> np.ndarray:
    """(Cout, Cin/g, kh, kw) -> (Cin, Cout/g, kh, kw), each kernel rotated by 180 degrees."""
    cout, cin_g, kh, kw = weight.shape
    w = weight.reshape(groups, cout // groups, cin_g, kh, kw).transpose(0, 2, 1, 3, 4)
    return w.reshape(groups * cin_g, cout // groups, kh, kw)[:, :, ::-1, ::-1]


def insert_zeros(x, stride) -> np.ndarray:
    """Put stride-1 zeros between the elements of the last two axes."""
    sh, sw = stride
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + ((h - 1) * sh + 1, (w - 1) * sw + 1), dtype=np.int64)
    out[..., ::sh, ::sw] = x
    return out


def conv2d_grad_input(op: ops.Conv2d, dy: Fixed, w: Fixed, input_hw, rounder: Rounder) -> Fixed:
    """dL/dx of a Conv2d from dL/dy (N, Cout, OH, OW) and the weight."""
    geo = grad_input_geometry(op, input_hw, dy.shape[2:])
    expanded = pad_or_crop(insert_zeros(dy.value, geo.zero_insert), geo.pads)
    acc = exact_conv2d(expanded, rotated_kernel(w.value, op.groups), (1, 1), op.dilation,
                       op.groups, what="conv input gradient")
    return rounder(acc, dy.frac_bits + w.frac_bits)


def conv2d_grad_weight(op: ops.Conv2d, x: Fixed, dy: Fixed, rounder: Rounder) -> Fixed:
    """dL/dw of a Conv2d: (Cout, Cin/g, kh, kw)."""
    n, cin, _, _ = x.shape
    _, cout, oh, ow = dy.shape
    g = op.groups
    (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
    rows, cols = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    xp = pad_or_crop(x.value, op.padding)[:, :, :rows, :cols]
    inputs = xp.reshape(n, g, cin // g, rows, cols).transpose(2, 1, 0, 3, 4)
    inputs = inputs.reshape(cin // g, g * n, rows, cols)
    kernel = dy.value.reshape(n, g, cout // g, oh, ow).transpose(1, 2, 0, 3, 4)
    kernel = kernel.reshape(cout, n, oh, ow)
    acc = exact_conv2d(inputs, kernel, op.dilation, op.stride, g, what="conv weight gradient")
    return rounder(acc.transpose(1, 0, 2, 3), x.frac_bits + dy.frac_bits)


def bias_grad(dy: Fixed, rounder: Rounder) -> Fixed:
    """dL/db: dL/dy summed over every axis but the channel axis 1."""
    axes = tuple(i for i in range(dy.value.ndim) if i != 1)
    return rounder(dy.value.sum(axis=axes), dy.frac_bits)


def linear_grad_input(dy: Fixed, w: Fixed, rounder: Rounder) -> Fixed:
    """dX = dY W: (N, out) x (out, in)."""
    return rounder(exact_matmul(dy.value, w.value, "linear input gradient"),
                   dy.frac_bits + w.frac_bits)


def linear_grad_weight(x: Fixed, dy: Fixed, rounder: Rounder) -> Fixed:
    """dW = dY^T X: (out, N) x (N, in)."""
    return rounder(exact_matmul(dy.value.T, x.value, "linear weight gradient"),
                   dy.frac_bits + x.frac_bits)
