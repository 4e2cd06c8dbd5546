"""Fast exact accumulators for 8-bit layers: int8 x int8 -> int32 matrix products.

Inputs of at most 8 bits are moved into int8 by an offset o (128 for unsigned, 0 for signed):
sum (x - zp) * w = sum (x - o) * w + (o - zp) * sum w, and padding holds zp - o, so every window
has the same correction per output channel. The product runs in `torch._int_mm`, whose int32
sums are exact while K * 128 * 128 < 2**31 (checked). Because some int8 kernels saturate int16
partial sums on CPUs without VNNI, `int_mm_is_exact()` first checks the kernel on the inputs
that expose that saturation; when it fails the caller uses the float64 path instead. Linear
layers of a few rows run the C++ kernel of `fpgacnn.golden.gemv` instead where it is
available (exact in the same range).

Convolutions are im2col + GEMM on channels-last int8 input, in blocks of output rows whose
im2col matrix stays in cache (L3); each block's int32 accumulators go to a `consume` callback
(the fast path requantizes them there, while they are still in cache).
"""

import functools
import math
import weakref
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from fpgacnn.golden import gemv, workers
from fpgacnn.golden.epilogue import native as native_requant

INT32_SAFE_TERMS = (1 << 31) // (128 * 128)
BLOCK_BYTES = 1 << 23          # a block's working set: past L2, but fewer blocks (less Python
#                                and GIL hand-over) measured faster on two threads than 2 MB
_MIN_ROWS = 17                 # torch._int_mm wants more than 16 rows
_FEW_ROWS = 64                 # up to this many rows, a linear layer streams its weights
GEMV_ROWS = 16                 # up to this many, through gemv's kernel (faster than _int_mm)
SHARED_CONV_MACS = 600_000_000  # a conv with fewer, in one block, runs on one thread: split,
#                                 its parts wait for the GIL longer than they save (AlexNet's
#                                 and VGG16's 14x14 convs at batch 1 measured slower on two)
_weight_cache: dict[int, tuple] = {}   # id(w) -> (weakref to w, {kind: value})


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


class WeightMatrix(NamedTuple):
    matrix: torch.Tensor   # (K8, O8) int8 view of a contiguous (O8, K8): oneDNN's fast layout;
    #                        zero rows/columns pad K and O to multiples of 8
    sums: np.ndarray       # (O,) int64: sum of each output channel's weights
    peak: int              # max |w|


def _per_array(w: np.ndarray, kind: str, compute):
    """compute(w), computed once per weight array (and dropped with it)."""
    hit = _weight_cache.get(id(w))
    if hit is None or hit[0]() is not w:
        try:
            ref = weakref.ref(w, lambda _, key=id(w), cache=_weight_cache: cache.pop(key, None))
        except TypeError:                      # not weak-referenceable: no caching
            return compute(w)
        hit = _weight_cache[id(w)] = (ref, {})
    values = hit[1]
    if kind not in values:
        values[kind] = compute(w)
    return values[kind]


def weight_matrix(w: np.ndarray) -> WeightMatrix:
    """`w` (O, ...) as the GEMM's int8 matrix (im2col order kh, kw, C), cached per array.

    Only for weights inside int8 (`weight_peak(w) <= 127`).
    """
    return _per_array(w, "matrix", _weight_matrix)


def _weight_matrix(w: np.ndarray) -> WeightMatrix:
    wt = torch.from_numpy(np.asarray(w, np.int8))
    if wt.ndim == 4:
        wt = wt.permute(0, 2, 3, 1)                   # (O, kh, kw, C): the im2col order
    w2 = wt.reshape(wt.shape[0], -1).contiguous()
    k, o = w2.shape[1], w2.shape[0]
    matrix = F.pad(w2, (0, -k % 8, 0, -o % 8)).contiguous().t()
    sums = w2.to(torch.int64).sum(dim=1).numpy()
    return WeightMatrix(matrix, sums, weight_peak(w))


def weight_peak(w: np.ndarray) -> int:
    """max |w|, cached per weight array."""
    return _per_array(w, "peak", lambda a: max(int(a.max()), -int(a.min())) if a.size else 0)


def _offset(signed: bool) -> int:
    return 0 if signed else 128


Consume = Callable[[torch.Tensor, int], None]   # (int32 acc (rows, O), first output row)


def _gemm(a: torch.Tensor, rows: int, matrix: torch.Tensor) -> torch.Tensor:
    """a[:rows] @ matrix as int32 (rows, O8) in this thread's scratch; a has >= 17 rows."""
    used = max(rows, _MIN_ROWS)
    acc = workers.scratch("acc", used * matrix.shape[1], torch.int32).view(used, -1)
    torch._int_mm(a[:used], matrix, out=acc)
    return acc[:rows]


def _rows_buffer(rows: int, k8: int) -> torch.Tensor:
    """This thread's im2col scratch, (max(rows, 17), k8). Its columns past K are never
    cleared: they meet the zero rows that pad the weight matrix, so they add nothing."""
    used = max(rows, _MIN_ROWS)
    return workers.scratch("im2col", used * k8, torch.int8).view(used, k8)


def block_rows(total: int, cap: int) -> int:
    """Block size: at most cap, in a number of blocks that the workers share evenly."""
    threads = workers.thread_count()
    blocks = -(-max(1, -(-total // max(1, cap))) // threads) * threads
    return max(1, -(-total // blocks))


def linear_blocks(x: torch.Tensor, wm: WeightMatrix, outputs: int, consume: Consume) -> None:
    """x (N, K) int8 (already offset) times the weights, block by block.

    consume(acc, first_row, first_column) gets int32 blocks of rows (and of output columns).
    """
    n, k = x.shape
    k8, o8 = wm.matrix.shape
    if n <= GEMV_ROWS and gemv.available():
        return _gemv_rows(x, wm, outputs, consume)
    if n <= _FEW_ROWS and o8 >= 3 * 8:
        return _few_rows(x, wm, outputs, consume)
    block = max(1, min(n, BLOCK_BYTES // k8))

    def run(start):
        rows = min(block, n - start)
        a = _rows_buffer(rows, k8)
        a[:rows, :k] = x[start:start + rows]
        consume(_gemm(a, rows, wm.matrix)[:, :outputs], start, 0)
    workers.for_each(run, range(0, n, block))


def packed_weights(wm: WeightMatrix) -> gemv.PackedWeights:
    """The weights in gemv's layout (K padded to `gemv.k_multiple()`), packed once per weight
    matrix."""
    multiple = gemv.k_multiple()
    return _per_array(wm.matrix, ("packed", multiple),
                      lambda matrix: gemv.pack(matrix.t()[:len(wm.sums)], wm.sums, multiple))


def requantized_gemv(wm: WeightMatrix, epilogue, outputs: int) -> "gemv.RequantizedGemv | None":
    """Product and epilogue of a linear layer of up to GEMV_ROWS rows in one kernel, where
    gemv's kernel is available and requant.h runs the epilogue."""
    if not (gemv.available() and (epilogue.fast or epilogue.integer)):
        return None
    packed = packed_weights(wm)
    requant = native_requant(epilogue, packed.corrections, outputs)
    return None if requant is None else gemv.RequantizedGemv(packed, requant, outputs)


def _gemv_rows(x: torch.Tensor, wm: WeightMatrix, outputs: int, consume: Consume) -> None:
    """A few rows through gemv's kernel, in runs of whole weight tiles per worker."""
    packed = packed_weights(wm)
    acc = workers.scratch("gemv", x.shape[0] * packed.tiles * gemv.tile_outputs(), torch.int32)
    acc = acc.view(x.shape[0], -1)
    gemv.products(x, packed, gemv.part_bounds(packed), acc)
    consume(acc[:, :outputs], 0, 0)


def _few_rows(x: torch.Tensor, wm: WeightMatrix, outputs: int, consume: Consume) -> None:
    """A few rows (a batch of vectors): out.T = W @ x.T with the weights as the left operand,
    which oneDNN streams fastest, in row blocks of W (output channels) per worker."""
    n, k = x.shape
    k8, o8 = wm.matrix.shape
    xt = torch.zeros((k8, -(-n // 8) * 8), dtype=torch.int8)
    xt[:k, :n] = x.t()
    weights = wm.matrix.t()                      # the contiguous (O8, K8) storage
    parts = max(1, min(workers.thread_count(), o8 // 24))
    bounds = [o8 * i // parts // 8 * 8 for i in range(parts)] + [o8]

    def run(i):
        first, last = bounds[i], bounds[i + 1]
        acc = torch._int_mm(weights[first:last], xt)
        consume(acc[:max(0, min(last, outputs) - first), :n].t(), 0, first)
    workers.for_each(run, range(parts))


def padded(x: torch.Tensor, padding, value: int) -> torch.Tensor:
    """x (N, H, W, C) with (t, l, b, r) rows/columns of `value` around it, filled by the
    workers in bands of rows. The result is this thread's scratch buffer (reused, so no fresh
    pages to fault in): valid until the next call in this thread."""
    t, l, b, r = padding
    if not any(padding):
        return x
    n, h, w, c = x.shape
    shape = (n, h + t + b, w + l + r, c)
    xp = workers.scratch("padded", math.prod(shape), x.dtype).view(shape)
    xp[:, :t] = value
    xp[:, t + h:] = value
    band = -(-h // max(1, workers.thread_count() // n))

    def fill(item):
        i, first = item
        last = min(first + band, h)
        rows = xp[i, t + first:t + last]
        rows[:, :l] = value
        rows[:, l + w:] = value
        rows[:, l:l + w] = x[i, first:last]
    workers.for_each(fill, [(i, first) for i in range(n) for first in range(0, h, band)])
    return xp


def _row_blocks(n: int, oh: int, rows: int):
    """(first image, images, first output row, output rows) covering n images of oh rows."""
    if oh <= rows:
        step = rows // oh
        return [(first, min(step, n - first), 0, oh) for first in range(0, n, step)]
    return [(image, 1, r0, min(rows, oh - r0)) for image in range(n) for r0 in range(0, oh, rows)]


def _im2col(src: torch.Tensor, dst: torch.Tensor, op, r0: int) -> None:
    """dst (n, rows, OW, K8) = the im2col rows (kh, kw, C order) of output rows r0... of src,
    as one copy from a view of every window (overlapping strides over src)."""
    (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
    n, rows, ow = dst.shape[:3]
    c = src.shape[3]
    s0, s1, s2, s3 = src.stride()
    strides = (s0, sh * s1, sw * s2, dh * s1, dw * s2, s3)
    windows = src.as_strided((n, rows, ow, kh, kw, c), strides,
                             src.storage_offset() + r0 * sh * s1)
    dst[..., :kh * kw * c].view(n, rows, ow, kh, kw, c).copy_(windows)


def conv_blocks(x: torch.Tensor, pad_value: int, wm: WeightMatrix, op, outputs: int,
                consume: Consume) -> tuple[int, int]:
    """Ungrouped conv of x (N, H, W, C) int8 (already offset) by im2col + int8 GEMM.

    Calls consume(acc, first) for blocks of output positions in (n, oh, ow) order (from the
    worker threads); returns (OH, OW).
    """
    n, h, w = x.shape[:3]
    oh, ow = conv_output_size(h, w, op)
    row_bytes = ow * (wm.matrix.shape[0] + 8 * wm.matrix.shape[1])  # im2col, int32, float32
    macs = n * oh * ow * math.prod(op.kernel) * x.shape[3] * outputs
    if macs < SHARED_CONV_MACS and n * oh * row_bytes <= BLOCK_BYTES:
        with workers.on_this_thread():
            return _conv_blocks(x, pad_value, wm, op, outputs, consume, row_bytes)
    return _conv_blocks(x, pad_value, wm, op, outputs, consume, row_bytes)


def conv_output_size(h: int, w: int, op) -> tuple[int, int]:
    t, l, b, r = op.padding
    (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
    return (h + t + b - dh * (kh - 1) - 1) // sh + 1, (w + l + r - dw * (kw - 1) - 1) // sw + 1


def _conv_blocks(x: torch.Tensor, pad_value: int, wm: WeightMatrix, op, outputs: int,
                 consume: Consume, row_bytes: int) -> tuple[int, int]:
    xp = padded(x, op.padding, pad_value)
    n = x.shape[0]
    oh, ow = conv_output_size(*x.shape[1:3], op)
    k8 = wm.matrix.shape[0]
    rows_per_block = block_rows(n * oh, max(1, BLOCK_BYTES // row_bytes))

    def run(block):
        first, count, r0, rows = block
        m = count * rows * ow
        a = _rows_buffer(m, k8)
        _im2col(xp[first:first + count], a[:m].view(count, rows, ow, k8), op, r0)
        consume(_gemm(a, m, wm.matrix)[:, :outputs], (first * oh + r0) * ow)
    workers.for_each(run, _row_blocks(n, oh, rows_per_block))
    return oh, ow


def linear_int32(x: torch.Tensor, wm: WeightMatrix, outputs: int) -> torch.Tensor:
    """x (N, K) int8 (already offset) times the weights: int32 (N, outputs)."""
    out = torch.empty((x.shape[0], outputs), dtype=torch.int32)

    def consume(acc, first, column):
        out[first:first + acc.shape[0], column:column + acc.shape[1]] = acc
    linear_blocks(x, wm, outputs, consume)
    return out


def linear_acc(x: np.ndarray, zero_point: int, signed: bool, w: np.ndarray) -> np.ndarray:
    """sum_k (x - zp) * w[o, k] for x (N, K) of at most 8 bits; int64 (N, O)."""
    o = _offset(signed)
    wm = weight_matrix(w)
    out = linear_int32(torch.from_numpy(np.asarray(x - o, np.int8)), wm, w.shape[0])
    return (out.to(torch.int64) + torch.from_numpy((o - zero_point) * wm.sums)).numpy()


def conv_acc(x: np.ndarray, zero_point: int, signed: bool, w: np.ndarray, op) -> np.ndarray:
    """The conv accumulator (no bias) of an ungrouped Conv2d by im2col + int8 GEMM; int64."""
    o = _offset(signed)
    wm = weight_matrix(w)
    xt = torch.from_numpy(np.asarray(x - o, np.int8)).permute(0, 2, 3, 1)
    n = x.shape[0]
    oh, ow = op.output_shape([x.shape])[2:]
    out = torch.empty((n * oh * ow, w.shape[0]), dtype=torch.int32)

    def consume(acc, first):
        out[first:first + acc.shape[0]] = acc
    conv_blocks(xt, zero_point - o, wm, op, w.shape[0], consume)
    acc = out.view(n, oh * ow, -1).permute(0, 2, 1).to(torch.int64)
    acc += torch.from_numpy((o - zero_point) * wm.sums).reshape(1, -1, 1)
    return acc.reshape(n, -1, oh, ow).numpy()
