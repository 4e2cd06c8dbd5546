"""One function per op: the integer arithmetic of each layer (docs/numerics.md, "Ops").

Every function takes the layer, the integer inputs (int64 arrays), their formats and the model's
shift rounding, and returns the layer's integer output (int64, inside [out_lo, out_hi]).
"""

import numpy as np
import torch

from fpgacnn.errors import UserError
from fpgacnn.golden.arith import INT32_MIN
from fpgacnn.golden.convert import dequantize, quantize_tensor
from fpgacnn.golden import int8_gemm
from fpgacnn.golden.kernels import conv2d_int, matmul_int, window_max, window_sum
from fpgacnn.golden.requant import finish, per_channel, requantize
from fpgacnn.ir import Node, ops
from fpgacnn.ir.reference import run_node
from fpgacnn.quant.model import QLayer, TensorFormat


def accumulate(layer: QLayer, x, fmt: TensorFormat) -> np.ndarray:
    """The int accumulator of a conv or linear layer: sum (x - zp_x) * w, plus bias.

    Padding holds the input zero point, so it contributes 0 after the subtraction.
    8-bit layers use the int8 GEMM, others exact float64 (same values, see kernels.py).
    """
    op = layer.op
    w = layer.weight
    terms = int(np.prod(w.shape[1:]))
    groups = op.groups if isinstance(op, ops.Conv2d) else 1
    if int8_gemm.usable(fmt.bits, _weight_bits(layer), terms, groups):
        if isinstance(op, ops.Conv2d):
            acc = int8_gemm.conv_acc(x, fmt.zero_point, fmt.signed, w, op)
        else:
            acc = int8_gemm.linear_acc(x, fmt.zero_point, fmt.signed, w)
    else:
        xs = np.asarray(x, np.int64) - fmt.zero_point
        if isinstance(op, ops.Conv2d):
            acc = conv2d_int(xs, w, op.stride, op.padding, op.dilation, op.groups)
        else:
            acc = matmul_int(xs, w)
    if layer.bias is not None:
        acc = acc + layer.bias.reshape((1, -1) + (1,) * (acc.ndim - 2))
    return acc


def _weight_bits(layer: QLayer) -> int:
    """Declared weight width, checked against the values (a wider value never takes int8)."""
    peak = int8_gemm.weight_peak(layer.weight)       # cached per weight array
    needed = max(peak.bit_length() + 1, 2)
    return max(needed, layer.weight_bits or 0)


def conv_or_linear(layer, xs, fmts, rounding):
    acc = accumulate(layer, xs[0], fmts[0])
    return finish(requantize(acc, layer.requant), layer, rounding=rounding)


def max_pool(layer, xs, fmts, rounding):
    y = window_max(xs[0], layer.op)
    return _to_output(layer, y, fmts[0], rounding)


def avg_pool(layer, xs, fmts, rounding):
    """Sum of (x - zp) over the window, then one requantization by s_in / (s_out * count)."""
    acc = window_sum(np.asarray(xs[0], np.int64) - fmts[0].zero_point, layer.op)
    return finish(requantize(acc, layer.requant), layer, rounding=rounding)


def global_avg_pool(layer, xs, fmts, rounding):
    x = np.asarray(xs[0], np.int64) - fmts[0].zero_point
    acc = x.sum(axis=(2, 3), keepdims=True)
    return finish(requantize(acc, layer.requant), layer, rounding=rounding)


def _to_output(layer, x, fmt, rounding, rq=None):
    """x (at format fmt) to the layer's output format: rescale unless it is the same."""
    y = np.asarray(x, np.int64) - fmt.zero_point
    if rq is not None:
        y = requantize(y, rq)
    return finish(y, layer, rounding=rounding)


def elementwise(layer, xs, fmts, rounding):
    """Standalone activations, upsample and flatten: same scale in and out (or requantized)."""
    op = layer.op
    x = np.asarray(xs[0], np.int64)
    if isinstance(op, ops.Upsample):
        x = x.repeat(op.scale, axis=2).repeat(op.scale, axis=3)
    elif isinstance(op, ops.Flatten):
        x = x.reshape(x.shape[0], -1)
    if layer.act_slope is not None:
        return slope_float32(layer, x, fmts[0])
    rq = layer.input_requants[0] if layer.input_requants else None
    return _to_output(layer, x, fmts[0], rounding, rq)


def slope_float32(layer, x, fmt):
    """LeakyReLU/PReLU in float32 mode, as onnxruntime computes QLinearLeakyRelu and
    DequantizeLinear -> PRelu -> QuantizeLinear: d = float32(x - zp) * s_in,
    y = d if d >= 0 else slope * d, then QuantizeLinear (rint(y / s_out) + zp_out)."""
    d = (np.asarray(x, np.int64) - fmt.zero_point).astype(np.float32) * np.float32(fmt.scale)
    slope = per_channel(np.asarray(layer.act_slope, np.float32), d.ndim)
    y = np.where(d >= 0, d, slope * d)
    return np.clip(quantize_tensor(y, layer.output), layer.out_lo, layer.out_hi)


def concat(layer, xs, fmts, rounding):
    """Every input requantized to the output's scale and zero point, then joined (seed 002)."""
    parts = []
    for x, fmt, rq in zip(xs, fmts, layer.input_requants):
        parts.append(_to_output(layer, x, fmt, rounding, rq))
    return np.concatenate(parts, axis=layer.op.axis)


def add(layer, xs, fmts, rounding):
    """Residual add: each input rescaled to the output scale times 2**guard, summed, shifted.

    In float32 mode (input requants of mode float32, no final requant) it is onnxruntime's
    QLinearAdd instead: `add_float32`.
    """
    if layer.requant is None:
        return add_float32(layer, xs, fmts)
    total = 0
    for x, fmt, rq in zip(xs, fmts, layer.input_requants):
        total = total + requantize(np.asarray(x, np.int64) - fmt.zero_point, rq)
    return finish(requantize(total, layer.requant), layer, rounding=rounding)


def add_float32(layer, xs, fmts):
    """onnxruntime's QLinearAdd as its x86-64 AVX2 kernel computes it, bit for bit.

    With ratios r_k = float32(s_k / s_out) (the input requants' multipliers):
    fixed = zp_out - fma(r_a, zp_a, r_b * zp_b), y = rint(fma(a, r_a, fma(b, r_b, fixed))),
    every operation in float32 (fma rounds once); then saturation to [out_lo, out_hi].
    """
    (a, b), (fa, fb) = xs, fmts
    r_a, r_b = (np.float32(rq.multiplier[0]) for rq in layer.input_requants)
    zp_out = np.float32(layer.output.zero_point)
    fixed = zp_out - fma_float32(r_a, np.float32(fa.zero_point), r_b * np.float32(fb.zero_point))
    y = fma_float32(np.asarray(a, np.float32), r_a,
                    fma_float32(np.asarray(b, np.float32), r_b, fixed))
    y = _float32_to_int32(y)
    return np.clip(y, layer.out_lo, layer.out_hi)


def fma_float32(a, b, c) -> np.ndarray:
    """float32(a * b + c) with one rounding, as the FMA instruction computes it.

    The float64 product of two float32 values is exact; the float64 sum is made exact-or-odd
    (TwoSum error, then round to odd), so the final rounding to float32 is correct.
    """
    p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    c = np.asarray(c, np.float64)
    s = p + c
    c_part = s - p
    error = (p - (s - c_part)) + (c - c_part)
    even = (s.view(np.int64) & 1) == 0
    toward = np.where(error > 0, np.inf, -np.inf)
    s = np.where((error != 0) & even, np.nextafter(s, toward), s)
    return s.astype(np.float32)


def _float32_to_int32(y) -> np.ndarray:
    """cvtps2dq: round half to even; out of int32 range (or NaN) gives INT32_MIN."""
    y = np.asarray(y, np.float64)
    inside = np.abs(y) < 2.0 ** 31
    return np.where(inside, np.rint(np.where(inside, y, 0.0)), INT32_MIN).astype(np.int64)


def host(layer, xs, fmts, rounding):
    """Host ops: dequantize (float32), run in float32, QuantizeLinear to the output format."""
    real = [torch.as_tensor(dequantize(x, fmt), dtype=torch.float32) for x, fmt in zip(xs, fmts)]
    with torch.no_grad():
        y = run_node(Node(layer.name, layer.op, layer.inputs), real, {}).numpy()
    return np.clip(quantize_tensor(y, layer.output), layer.out_lo, layer.out_hi)


KERNELS = {
    ops.Conv2d: conv_or_linear,
    ops.Linear: conv_or_linear,
    ops.MaxPool: max_pool,
    ops.AvgPool: avg_pool,
    ops.GlobalAvgPool: global_avg_pool,
    ops.ReLU: elementwise,
    ops.LeakyReLU: elementwise,
    ops.PReLU: elementwise,
    ops.Clip: elementwise,
    ops.Upsample: elementwise,
    ops.Flatten: elementwise,
    ops.Concat: concat,
    ops.Add: add,
    ops.Softmax: host,
    ops.LRN: host,
    ops.YoloHead: host,
}


def run_layer(layer: QLayer, xs, fmts, rounding: str) -> np.ndarray:
    kernel = KERNELS.get(type(layer.op))
    if kernel is None:
        raise UserError(f"layer {layer.name!r}: op {layer.kind} has no integer kernel")
    return kernel(layer, xs, fmts, rounding)
