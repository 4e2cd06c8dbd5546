"""Exact integer kernels: convolution, matrix product, window sums and maxima.

Integer convolution runs in float64 through PyTorch: every product and every partial sum is an
integer of magnitude below 2**53, so each is represented exactly and the result does not depend
on the order of summation. `exact_in_float64` checks that bound before using it; when it does not
hold the kernels fall back to int64 arithmetic in numpy.
"""

import numpy as np
import torch
import torch.nn.functional as F

from fpgacnn.golden.requant import RangeError

FLOAT64_EXACT = 2 ** 53


def exact_in_float64(terms: int, max_a: int, max_b: int) -> bool:
    """True when a sum of `terms` products |a*b| <= max_a*max_b cannot reach 2**53."""
    return terms * max_a * max_b < FLOAT64_EXACT


def _max_abs(x: np.ndarray) -> int:
    return max(int(x.max()), -int(x.min())) if x.size else 0


def conv2d_int(x, w, stride, padding, dilation, groups) -> np.ndarray:
    """Integer conv of int64 x (N,C,H,W) with w (O,C/g,kh,kw); zero padding (t,l,b,r).

    >>> conv2d_int(np.ones((1, 1, 3, 3), np.int64), np.ones((1, 1, 3, 3), np.int64),
    ...            (1, 1), (0, 0, 0, 0), (1, 1), 1)
    array([[[[9]]]])
    """
    t, l, b, r = padding
    terms = w.shape[1] * w.shape[2] * w.shape[3]
    if exact_in_float64(terms, _max_abs(x), _max_abs(w)):
        xt = F.pad(torch.from_numpy(np.asarray(x, np.float64)), (l, r, t, b))
        wt = torch.from_numpy(np.asarray(w, np.float64))
        out = F.conv2d(xt, wt, None, tuple(stride), 0, tuple(dilation), groups)
        return out.numpy().astype(np.int64)
    return _conv2d_int64(np.asarray(x, np.int64), np.asarray(w, np.int64), stride, padding,
                         dilation, groups)


def _conv2d_int64(x, w, stride, padding, dilation, groups):
    t, l, b, r = padding
    x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    o, cg, kh, kw = w.shape
    dh, dw = dilation
    sh, sw = stride
    oh = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], o, oh, ow), np.int64)
    og = o // groups
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg]
        wg = w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                           j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, wg[:, :, i, j])
    return out


def matmul_int(x, w) -> np.ndarray:
    """x (N,K) times w.T (w is (O,K)), exact, int64."""
    if exact_in_float64(w.shape[1], _max_abs(x), _max_abs(w)):
        out = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
        return out.astype(np.int64)
    return np.asarray(x, np.int64) @ np.asarray(w, np.int64).T


def _pad_window(x, op, out_hw, fill, padding=None):
    """Pad (t, l, b, r), plus what ceil mode needs, so that plain windows cover out_hw."""
    t, l, b, r = op.padding if padding is None else padding
    h, w = x.shape[2:]
    extra_b = max(0, (out_hw[0] - 1) * op.stride[0] + op.kernel[0] - (h + t + b))
    extra_r = max(0, (out_hw[1] - 1) * op.stride[1] + op.kernel[1] - (w + l + r))
    return F.pad(x, (l, r + extra_r, t, b + extra_b), value=fill)


def window_max(x, op) -> np.ndarray:
    """Max over each pooling window of int64 x; padding never wins."""
    out_hw = op.output_shape([x.shape])[2:]
    xt = _pad_window(torch.from_numpy(np.asarray(x, np.float64)), op, out_hw, float("-inf"))
    y = F.max_pool2d(xt, op.kernel, op.stride)[:, :, :out_hw[0], :out_hw[1]]
    if y.numel() and bool(torch.isneginf(y).any()):
        raise RangeError(f"max pool {op.kernel} with padding {op.padding} has a window that "
                         f"holds only padding")
    return y.numpy().astype(np.int64)


def _sum_windows(xt, op, out_hw, padding=None):
    y = F.avg_pool2d(_pad_window(xt, op, out_hw, 0.0, padding), op.kernel, op.stride,
                     divisor_override=1)
    return y[:, :, :out_hw[0], :out_hw[1]]


def window_sum(x, op) -> np.ndarray:
    """Sum over each pooling window of int64 x (padding adds 0); exact below 2**53."""
    out_hw = op.output_shape([x.shape])[2:]
    y = _sum_windows(torch.from_numpy(np.asarray(x, np.float64)), op, out_hw)
    return y.numpy().astype(np.int64)


def window_counts(shape, op) -> np.ndarray:
    """How many elements each window averages over (PyTorch's rule), shape (OH, OW).

    With count_include_pad the explicit padding counts, the ceil-mode overhang never does.
    """
    h, w = shape[2:]
    out_hw = op.output_shape([tuple(shape)])[2:]
    t, l, b, r = op.padding
    if op.count_include_pad:
        frame = torch.ones((1, 1, h + t + b, w + l + r), dtype=torch.float64)
        counts = _sum_windows(frame, op, out_hw, (0, 0, 0, 0))
    else:
        counts = _sum_windows(torch.ones((1, 1, h, w), dtype=torch.float64), op, out_hw)
    return counts[0, 0].numpy().astype(np.int64)
