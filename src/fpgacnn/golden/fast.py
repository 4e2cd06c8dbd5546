"""The fast path: layers whose tensors all fit 8 bits, run on stored int8 torch tensors.

Each kernel computes exactly what its counterpart in `fpgacnn.golden.ops` defines, without
widening whole tensors to int64: convolutions and linear layers of up to 16 rows as C++
kernels that requantize their int32 sums while in cache (`int8conv`, `gemv.RequantizedGemv`),
else int8 GEMMs whose accumulators are requantized block by block (`Epilogue`); max pools in
C++ (`pool`; maxima of strided views without the library); concat/upsample/flatten/standalone
activations as copies or epilogues; residual adds from a table of every pair of codes.
`kernel_for` returns None where a layer falls outside what is proven exact here (wider
formats, groups, weights outside int8, accumulators that could leave int32, windows made only
of padding...); the executor then runs the numpy definition.
"""

import weakref

import numpy as np
import torch

from fpgacnn.golden import int8_gemm, int8conv, pool, workers
from fpgacnn.golden.epilogue import Epilogue
from fpgacnn.golden.ops import run_layer
from fpgacnn.golden.requant import RangeError
from fpgacnn.golden.stored import from_nhwc, nhwc, offset, storable, to_codes, to_stored
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, TensorFormat

_INT32_LIMIT = 1 << 31
_ROWS_ELEMENTS = 1 << 18         # elements per epilogue block of an element-wise layer
_SHARED_POOL_BYTES = 5 << 19     # a max pool of a smaller input runs on one thread (measured
#                                  after the convs that write its input: in two parts 3.1 MB
#                                  took 10% less time, 2.2 MB and 1.6 MB 20-70% more)
_per_layer = weakref.WeakKeyDictionary()    # QLayer -> {key: value}; layers are frozen


def _cached(layer: QLayer, key, compute):
    """compute(), once per layer and key (input formats, rounding...)."""
    values = _per_layer.setdefault(layer, {})
    if key not in values:
        values[key] = compute()
    return values[key]


def _correction(layer: QLayer, fin: TensorFormat, wm: int8_gemm.WeightMatrix) -> np.ndarray:
    """Per output channel: bias + (offset - zp) * sum(w), added to the int8 GEMM's sums."""
    corr = (offset(fin) - fin.zero_point) * wm.sums
    return corr if layer.bias is None else corr + np.asarray(layer.bias, np.int64)


def _gemm_fits(layer: QLayer, fin: TensorFormat) -> bool:
    w = layer.weight
    terms = int(np.prod(w.shape[1:]))
    if int8_gemm.weight_peak(w) > 127 or not int8_gemm.usable(fin.bits, 8, terms):
        return False
    corr = _correction(layer, fin, int8_gemm.weight_matrix(w))
    peak = max(int(corr.max()), -int(corr.min())) if corr.size else 0
    return terms * 128 * 127 + peak < _INT32_LIMIT


def _epilogue(layer: QLayer, fin: TensorFormat, rounding: str) -> Epilogue:
    corr = _correction(layer, fin, int8_gemm.weight_matrix(layer.weight))
    return Epilogue(layer, layer.requant, corr, rounding)


def conv_or_linear(layer: QLayer, xs, fmts, rounding) -> torch.Tensor:
    x, fin = xs[0], fmts[0]
    wm = int8_gemm.weight_matrix(layer.weight)
    epilogue = _cached(layer, ("epilogue", fin, rounding),
                       lambda: _epilogue(layer, fin, rounding))
    outputs = layer.weight.shape[0]
    if isinstance(layer.op, ops.Linear):
        out = torch.empty((x.shape[0], outputs), dtype=torch.int8)
        _linear(layer, x, fin, rounding, wm, epilogue, out)
    else:
        n, _, oh, ow = layer.op.output_shape([tuple(x.shape)])
        out = torch.empty((n, oh, ow, outputs), dtype=torch.int8)
        flat = out.view(-1, outputs)
        pad_value = fin.zero_point - offset(fin)
        native = _cached(layer, ("int8conv", fin, rounding),
                         lambda: int8conv.kernel_for(wm, epilogue, outputs))
        if native is not None:
            native(nhwc(x), pad_value, layer.op, flat)
        else:
            int8_gemm.conv_blocks(nhwc(x), pad_value, wm, layer.op, outputs, lambda acc, first:
                                  epilogue(acc, flat[first:first + acc.shape[0]]))
    return out if out.ndim == 2 else from_nhwc(out)


def _linear(layer: QLayer, x, fin, rounding, wm, epilogue, out) -> None:
    """out = the linear layer's codes: on AMX (the conv kernel) from AMX_LINEAR_ROWS rows,
    through the GEMV kernel up to GEMV_ROWS, else int8 GEMMs and the epilogue."""
    rows, outputs = x.shape[0], out.shape[1]
    on_amx = _cached(layer, ("int8conv", fin, rounding),
                     lambda: int8conv.kernel_for(wm, epilogue, outputs))
    if on_amx is not None and on_amx.use_amx and rows >= int8conv.AMX_LINEAR_ROWS:
        return on_amx.linear(x, out)
    requantized = _cached(layer, ("gemv", fin, rounding),
                          lambda: int8_gemm.requantized_gemv(wm, epilogue, outputs))
    if requantized is not None and rows <= int8_gemm.GEMV_ROWS:
        return requantized(x, out)
    epilogue(int8_gemm.linear_int32(x, wm, outputs), out)   # collect the blocks, requantize


def _covered(size, kernel, stride, before, out) -> bool:
    """Does every pooling window along one axis hold at least one element of the input?"""
    return kernel > before and (out - 1) * stride - before < size


def _max_pool_fits(layer: QLayer, shape) -> bool:
    op = layer.op
    _, _, oh, ow = op.output_shape([shape])
    t, l = op.padding[:2]
    return (_covered(shape[2], op.kernel[0], op.stride[0], t, oh) and
            _covered(shape[3], op.kernel[1], op.stride[1], l, ow))


def _max_pool_views(layer: QLayer, xs) -> torch.Tensor:
    """Max of strided views (where the C++ library is not built); padding holds -128, below or
    equal to every stored code, and every window holds a real value (checked), so padding
    never wins."""
    op, x = layer.op, xs[0]
    n, c, oh, ow = op.output_shape([tuple(x.shape)])
    (kh, kw), (sh, sw) = op.kernel, op.stride
    t, l, b, r = op.padding
    h, w = x.shape[2:]
    b = max(b, (oh - 1) * sh + kh - h - t)
    r = max(r, (ow - 1) * sw + kw - w - l)
    xp = int8_gemm.padded(nhwc(x), (t, l, b, r), -128)
    out = torch.empty((n, oh, ow, c), dtype=torch.int8)

    def rows(first):
        last = min(first + step, oh)
        dst = out[:, first:last]
        for u in range(kh):
            top = first * sh + u
            band = xp[:, top:top + sh * (last - first - 1) + 1:sh]
            for v in range(kw):
                tap = band[:, :, v:v + sw * (ow - 1) + 1:sw]
                if u == v == 0:
                    dst.copy_(tap)
                else:
                    torch.maximum(dst, tap, out=dst)
    step = max(1, -(-oh // workers.thread_count()))
    workers.for_each(rows, range(0, oh, step))
    return from_nhwc(out)


def max_pool(layer: QLayer, xs, fmts, rounding) -> torch.Tensor:
    """Every window's max (padding never wins: `_max_pool_fits`); a small one on this thread."""
    x = xs[0]
    shared = x.numel() >= _SHARED_POOL_BYTES
    if pool.available():
        if x.stride(1) != 1 and x.shape[1] > 1:
            x = x.contiguous(memory_format=torch.channels_last)
        return pool.max_pool(x, layer.op, workers.thread_count() if shared else 1)
    if shared:
        return _max_pool_views(layer, xs)
    with workers.on_this_thread():
        return _max_pool_views(layer, xs)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A stored tensor as (positions, channels): NHWC rows for 4-D, itself for 2-D."""
    return nhwc(t).reshape(-1, t.shape[1]) if t.ndim == 4 else t


def _is_identity(layer: QLayer, fin: TensorFormat, rq=None) -> bool:
    out = layer.output
    return (rq is None and layer.act_multiplier is None and
            getattr(layer, "act_slope", None) is None and out.zero_point == fin.zero_point and
            offset(out) == offset(fin) and layer.out_lo <= fin.lo and layer.out_hi >= fin.hi)


def _every_code(fin: TensorFormat, channels: int) -> np.ndarray:
    """(256, channels, 1, 1): the code of each stored value -128..127 (clipped into fin)."""
    codes = np.clip(np.arange(-128, 128) + offset(fin), fin.lo, fin.hi)
    return np.repeat(codes.reshape(256, 1, 1, 1), channels, axis=1)


def _table(outputs: np.ndarray, layer: QLayer) -> torch.Tensor:
    """(256, C, ...) output codes of the definition -> (256, C) stored codes (int8)."""
    codes = outputs.reshape(256, outputs.shape[1], -1)[:, :, 0] - offset(layer.output)
    return torch.from_numpy(np.ascontiguousarray(codes, np.int8))


class _Lookup:
    """dst[m, c] = table[src[m, c] + 128, c] for a (256, C) table of stored codes, block by
    block on the workers. A table whose columns all agree is indexed by the code's byte (src
    viewed as uint8)."""

    def __init__(self, table: torch.Tensor):
        channels = table.shape[1]
        self.shared = bool((table == table[:, :1]).all())
        if self.shared:
            self.flat = torch.roll(table[:, 0], -128)  # byte b: code b (b < 128) or b - 256
        else:
            self.flat = table.contiguous().reshape(-1)
            self.base = 128 * channels + torch.arange(channels, dtype=torch.int32)
        self.channels = channels

    def __call__(self, src_rows: torch.Tensor, dst_rows: torch.Tensor) -> None:
        step = int8_gemm.block_rows(src_rows.shape[0], _ROWS_ELEMENTS // max(1, self.channels))

        def block(start):
            src, dst = src_rows[start:start + step], dst_rows[start:start + step]
            index = workers.scratch("index", src.numel(), torch.int32).view(src.shape)
            if self.shared:
                index.copy_(src.view(torch.uint8))
            else:
                index.copy_(src).mul_(self.channels).add_(self.base)
            if dst.is_contiguous():
                torch.index_select(self.flat, 0, index.view(-1), out=dst.view(-1))
            else:
                dst.copy_(torch.index_select(self.flat, 0, index.view(-1)).view(src.shape))
        workers.for_each(block, range(0, src_rows.shape[0], step))


def _upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    n, c, h, w = x.shape
    wide = nhwc(x)[:, :, None, :, None, :].expand(n, h, scale, w, scale, c)
    return from_nhwc(wide.reshape(n, h * scale, w * scale, c))


def elementwise(layer: QLayer, xs, fmts, rounding) -> torch.Tensor:
    """Activations, upsample, flatten: a table of the definition's output for every code."""
    x = xs[0]
    if isinstance(layer.op, ops.Upsample):
        x = _upsample(x, layer.op.scale)
    elif isinstance(layer.op, ops.Flatten):
        x = x.reshape(x.shape[0], -1)
    rq = layer.input_requants[0] if layer.input_requants else None
    if _is_identity(layer, fmts[0], rq):
        return x
    channels = 1 if isinstance(layer.op, ops.Flatten) else x.shape[1]
    look_up = _cached(layer, ("look-up", fmts[0], channels, rounding), lambda: _Lookup(_table(
        run_layer(layer, [_every_code(fmts[0], channels)], fmts[:1], rounding), layer)))
    out = torch.empty_like(x)
    look_up(_rows(x), _rows(out))
    return out


def concat(layer: QLayer, xs, fmts, rounding) -> torch.Tensor:
    """Each input requantized to the output format straight into its channel range."""
    n, _, *space = xs[0].shape
    total = sum(x.shape[1] for x in xs)
    channels = tuple(x.shape[1] for x in xs)
    look_ups = _cached(layer, ("look-ups", tuple(fmts), channels, rounding),
                       lambda: _concat_look_ups(layer, fmts, channels, rounding))
    out = torch.empty((n, *space, total), dtype=torch.int8)
    rows = out.view(-1, total)
    first = 0
    for x, fin, rq, look_up in zip(xs, fmts, layer.input_requants or (None,) * len(xs),
                                   look_ups):
        c = x.shape[1]
        if _is_identity(layer, fin, rq):
            rows[:, first:first + c] = _rows(x)
        else:
            look_up(_rows(x), rows[:, first:first + c])
        first += c
    return from_nhwc(out) if out.ndim == 4 else out


def _concat_look_ups(layer: QLayer, fmts, channels, rounding) -> list[_Lookup]:
    """One look-up per input, each over that input's channel range of the output."""
    table = _table(run_layer(layer, [_every_code(f, c) for f, c in zip(fmts, channels)], fmts,
                             rounding), layer)
    bounds = np.cumsum((0,) + channels)
    return [_Lookup(table[:, first:last]) for first, last in zip(bounds[:-1], bounds[1:])]


def _pair_table(layer: QLayer, fmts, rounding) -> torch.Tensor | None:
    """(65536,) stored output codes of the definition for every pair of stored input codes,
    at index 256 * (byte of a) + (byte of b); None where a pair raises RangeError."""
    codes = [np.clip(np.arange(256).astype(np.int8).astype(np.int64) + offset(f), f.lo, f.hi)
             for f in fmts]
    a = np.repeat(codes[0], 256).reshape(-1, 1, 1, 1)
    b = np.tile(codes[1], 256).reshape(-1, 1, 1, 1)
    try:
        outputs = run_layer(layer, [a, b], fmts, rounding).reshape(-1) - offset(layer.output)
    except RangeError:
        return None
    return torch.from_numpy(outputs.astype(np.int8))


def add(layer: QLayer, xs, fmts, rounding) -> torch.Tensor:
    """Residual add: the definition's output for the pair of codes at each position, from a
    table of every pair (one requantization per input and channel-independent parameters
    make the output a function of the two codes alone)."""
    table = _cached(layer, ("pairs", tuple(fmts), rounding),
                    lambda: _pair_table(layer, fmts, rounding))
    if table is None:       # a pair of codes leaves what the definition computes: its errors
        codes = [to_codes(x, f) for x, f in zip(xs, fmts)]
        return to_stored(run_layer(layer, codes, fmts, rounding), layer.output)
    a, b = (_rows(x).reshape(-1) for x in xs)
    out = torch.empty_like(xs[0])
    dst = _rows(out).view(-1)
    step = int8_gemm.block_rows(len(a), _ROWS_ELEMENTS)

    def block(start):
        index = workers.scratch("index", min(step, len(a) - start), torch.int32)
        index.copy_(a[start:start + step].view(torch.uint8)).mul_(256)
        index.add_(b[start:start + step].view(torch.uint8))
        torch.index_select(table, 0, index, out=dst[start:start + step])
    workers.for_each(block, range(0, len(a), step))
    return out


def _channel_independent(layer: QLayer) -> bool:
    slopes = [layer.act_multiplier] + [rq.multiplier for rq in layer.input_requants or ()]
    return all(s is None or np.asarray(s).size == 1 for s in slopes) and \
        getattr(layer, "act_slope", None) is None


def _applies(layer: QLayer, fmts, shapes) -> bool:
    op = layer.op
    if isinstance(op, (ops.Conv2d, ops.Linear)):
        groups = op.groups if isinstance(op, ops.Conv2d) else 1
        return (groups == 1 and layer.requant is not None and
                _cached(layer, ("fits", fmts[0]), lambda: _gemm_fits(layer, fmts[0])))
    if isinstance(op, ops.MaxPool):
        return _is_identity(layer, fmts[0]) and _max_pool_fits(layer, shapes[0])
    if isinstance(op, ops.Flatten):
        return len(shapes[0]) == 2 or _is_identity(layer, fmts[0], *layer.input_requants[:1])
    if isinstance(op, ops.Concat):
        return op.axis == 1 and len(shapes[0]) in (2, 4)
    if isinstance(op, ops.Add):
        return shapes[0] == shapes[1] and len(shapes[0]) in (2, 4) and \
            _channel_independent(layer)
    return True


KERNELS = {ops.Conv2d: conv_or_linear, ops.Linear: conv_or_linear, ops.MaxPool: max_pool,
           ops.ReLU: elementwise, ops.LeakyReLU: elementwise, ops.PReLU: elementwise,
           ops.Clip: elementwise, ops.Upsample: elementwise, ops.Flatten: elementwise,
           ops.Concat: concat, ops.Add: add}


def kernel_for(layer: QLayer, fmts, shapes):
    """The fast kernel of `layer` (input formats `fmts`, shapes `shapes`) or None."""
    kernel = KERNELS.get(type(layer.op))
    if kernel is None or not storable(layer.output) or not all(map(storable, fmts)):
        return None
    return kernel if _applies(layer, fmts, shapes) else None
