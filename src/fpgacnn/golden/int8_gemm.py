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
    wt = torch.from_numpy(np.asarray(w, np.int8))
    if wt.ndim == 4:
        wt = wt.permute(0, 2, 3, 1)                   # (O, kh, kw, C): the im2col order
    w2 = wt.reshape(wt.shape[0], -1).contiguous()
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


def _mm_into(a: torch.Tensor, matrix: torch.Tensor, out: torch.Tensor) -> None:
    """out (M, O) int32 = a (M, K8) int8 @ matrix (K8, O8), in row chunks of at least 17."""
    outputs = out.shape[1]
    rows = max(32, _CHUNK_BYTES // max(1, a.shape[1]))
    for start in range(0, a.shape[0], rows):
        part = a[start:start + rows]
        short = part.shape[0]
        if short >= 17 and outputs == matrix.shape[1]:
            torch._int_mm(part, matrix, out=out[start:start + short])
            continue
        if short < 17:
            part = F.pad(part, (0, 0, 0, 17 - short))
        out[start:start + short] = torch._int_mm(part, matrix)[:short, :outputs]


def _padded_rows(rows: torch.Tensor, k8: int) -> torch.Tensor:
    """A contiguous int8 (M, k8) copy of rows (M, K), zero columns appended."""
    m, k = rows.shape
    if k == k8:
        return rows.contiguous()
    a = torch.empty((m, k8), dtype=torch.int8)
    a[:, k:] = 0
    a[:, :k] = rows
    return a


def _offset(signed: bool) -> int:
    return 0 if signed else 128


def linear_acc(x: np.ndarray, zero_point: int, signed: bool, w: np.ndarray) -> np.ndarray:
    """sum_k (x - zp) * w[o, k] for x (N, K) of at most 8 bits; int64 (N, O)."""
    o = _offset(signed)
    matrix, sums = _weight_matrix(w)
    a = _padded_rows(torch.from_numpy(np.asarray(x - o, np.int8)), matrix.shape[0])
    out = torch.empty((a.shape[0], w.shape[0]), dtype=torch.int32)
    _mm_into(a, matrix, out)
    return (out.to(torch.int64) + (o - zero_point) * sums).numpy()


def conv_acc(x: np.ndarray, zero_point: int, signed: bool, w: np.ndarray, op) -> np.ndarray:
    """The conv accumulator (no bias) of an ungrouped Conv2d by im2col + int8 GEMM.

    The input is made channels-last, so each kernel tap copies runs of C bytes into the
    im2col rows (ordered kh, kw, C like the weight matrix); one image at a time.
    """
    o = _offset(signed)
    matrix, sums = _weight_matrix(w)
    n, c = x.shape[:2]
    t, l, b, r = op.padding
    (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
    h, wd = x.shape[2:]
    xh = torch.full((n, h + t + b, wd + l + r, c), zero_point - o, dtype=torch.int8)
    xh[:, t:t + h, l:l + wd] = torch.from_numpy(np.asarray(x - o, np.int8)).permute(0, 2, 3, 1)
    oh = (xh.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (xh.shape[2] - dw * (kw - 1) - 1) // sw + 1
    k8 = matrix.shape[0]
    images = max(1, min(n, _CHUNK_BYTES // max(1, oh * ow * k8)))
    out = torch.empty((n, oh * ow, w.shape[0]), dtype=torch.int32)
    rows = torch.zeros((images, oh, ow, k8), dtype=torch.int8)
    for first in range(0, n, images):
        count = min(images, n - first)
        block = xh[first:first + count]
        if c < 16:  # few channels: one strided gather beats many tiny tap copies
            cols = block.unfold(1, dh * (kh - 1) + 1, sh).unfold(2, dw * (kw - 1) + 1, sw)
            cols = cols[..., ::dh, ::dw].permute(0, 1, 2, 4, 5, 3)  # (n, OH, OW, kh, kw, C)
            rows[:count, :, :, :kh * kw * c] = cols.reshape(count, oh, ow, -1)
        else:
            for u in range(kh):
                for v in range(kw):
                    start = (u * kw + v) * c
                    rows[:count, :, :, start:start + c] = block[
                        :, u * dh:u * dh + sh * (oh - 1) + 1:sh,
                        v * dw:v * dw + sw * (ow - 1) + 1:sw]
        _mm_into(rows[:count].view(count * oh * ow, k8), matrix,
                 out[first:first + count].view(count * oh * ow, -1))
    acc = out.permute(0, 2, 1).to(torch.int64)
    acc += ((o - zero_point) * sums).reshape(1, -1, 1)
    return acc.reshape(n, -1, oh, ow).numpy()
