"""Fast exact accumulators for 8-bit layers: int8 x int8 -> int32 matrix products.

Inputs of at most 8 bits are moved into int8 by an offset o (128 for unsigned, 0 for signed):
sum (x - zp) * w = sum (x - o) * w + (o - zp) * sum w, and padding holds zp - o, so every window
has the same correction per output channel. The product runs in `torch._int_mm`, whose int32
sums are exact while K * 128 * 128 < 2**31 (checked). Because some int8 kernels saturate int16
partial sums on CPUs without VNNI, `int_mm_is_exact()` first checks the kernel on the inputs
that expose that saturation; when it fails the caller uses the float64 path instead.
"""

import functools
import weakref

import numpy as np
import torch
import torch.nn.functional as F

INT32_SAFE_TERMS = (1 << 31) // (128 * 128)
_CHUNK_BYTES = 1 << 26
_weight_cache: dict[int, tuple] = {}


@functools.cache
def int_mm_is_exact() -> bool:
    """Does torch._int_mm give exact int32 sums, even where int16 pair sums would saturate?"""
    try:
        for k in (32, 208, 1000):
            a = torch.full((24, k), -128, dtype=torch.int8)
            a[:, ::3] = 127
            b = torch.full((k, 16), -128, dtype=torch.int8)
            b[::2] = 127
            expected = a.to(torch.int64) @ b.to(torch.int64)
            if not torch.equal(torch._int_mm(a, b).to(torch.int64), expected):
                return False
        return True
    except (RuntimeError, AttributeError):
        return False


def usable(in_bits: int, weight_bits: int, terms: int, groups: int = 1) -> bool:
    return (in_bits <= 8 and weight_bits <= 8 and groups == 1 and terms < INT32_SAFE_TERMS
            and int_mm_is_exact())


def _weight_matrix(w: np.ndarray):
    """(K, O) int8 matrix and per-channel sums of `w` (O, ...), cached per weight array."""
    hit = _weight_cache.get(id(w))
    if hit is not None and hit[0]() is w:
        return hit[1], hit[2]
    w2 = torch.from_numpy(np.ascontiguousarray(w.reshape(w.shape[0], -1), np.int8))
    k, o = w2.shape[1], w2.shape[0]
    # K and O padded with zero weights to multiples of 8, which every kernel accepts
    matrix = F.pad(w2.t(), (0, -o % 8, 0, -k % 8)).contiguous()
    sums = w2.to(torch.int64).sum(dim=1)
    try:
        _weight_cache[id(w)] = (weakref.ref(w, lambda _, k=id(w): _weight_cache.pop(k, None)),
                                matrix, sums)
    except TypeError:
        pass
    return matrix, sums


def _mm(a: torch.Tensor, matrix: torch.Tensor, outputs: int) -> torch.Tensor:
    """a (M, K) int8 @ matrix (K8, O8) -> int32 (M, outputs), in row chunks of M >= 17."""
    rows = max(32, _CHUNK_BYTES // max(1, a.shape[1]))
    extra_k = matrix.shape[0] - a.shape[1]
    parts = []
    for start in range(0, a.shape[0], rows):
        part = a[start:start + rows]
        short = part.shape[0]
        part = F.pad(part, (0, extra_k, 0, max(0, 17 - short)))
        parts.append(torch._int_mm(part, matrix)[:short, :outputs])
    return torch.cat(parts)


def _offset(signed: bool) -> int:
    return 0 if signed else 128


def linear_acc(x: np.ndarray, zero_point: int, signed: bool, w: np.ndarray) -> np.ndarray:
    """sum_k (x - zp) * w[o, k] for x (N, K) of at most 8 bits; int64 (N, O)."""
    o = _offset(signed)
    matrix, sums = _weight_matrix(w)
    a = torch.from_numpy(np.asarray(x - o, np.int8))
    acc = _mm(a, matrix, w.shape[0]).to(torch.int64) + (o - zero_point) * sums
    return acc.numpy()


def conv_acc(x: np.ndarray, zero_point: int, signed: bool, w: np.ndarray, op) -> np.ndarray:
    """The conv accumulator (no bias) of an ungrouped Conv2d by im2col + int8 GEMM."""
    o = _offset(signed)
    matrix, sums = _weight_matrix(w)
    n = x.shape[0]
    t, l, b, r = op.padding
    (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
    xt = torch.from_numpy(np.asarray(x - o, np.int8))
    xt = F.pad(xt.to(torch.int16), (l, r, t, b), value=zero_point - o).to(torch.int8)
    cols = xt.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)
    cols = cols[..., ::dh, ::dw]                      # (N, C, OH, OW, kh, kw)
    oh, ow = cols.shape[2], cols.shape[3]
    per_image = []
    for i in range(n):
        a = cols[i].permute(1, 2, 0, 3, 4).reshape(oh * ow, -1)
        per_image.append(_mm(a, matrix, w.shape[0]))
    acc = torch.stack(per_image).to(torch.int64) + (o - zero_point) * sums
    return acc.reshape(n, oh, ow, -1).permute(0, 3, 1, 2).numpy()
