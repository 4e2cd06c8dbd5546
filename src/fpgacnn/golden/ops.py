"""One function per op: the integer arithmetic of each layer (docs/numerics.md, "Ops").

Every function takes the layer, the integer inputs (int64 arrays), their formats and the model's
shift rounding, and returns the layer's integer output (int64, inside [out_lo, out_hi]).
"""

import numpy as np
import torch

from fpgacnn.errors import UserError
from fpgacnn.golden.convert import dequantize, quantize_tensor
from fpgacnn.golden import int8_gemm
from fpgacnn.golden.kernels import conv2d_int, matmul_int, window_max, window_sum
from fpgacnn.golden.requant import finish, requantize
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
    w = layer.weight
    peak = max(int(w.max()), -int(w.min())) if w.size else 0
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
    rq = layer.input_requants[0] if layer.input_requants else None
    return _to_output(layer, x, fmts[0], rounding, rq)


def concat(layer, xs, fmts, rounding):
    """Every input requantized to the output's scale and zero point, then joined (seed 002)."""
    parts = []
    for x, fmt, rq in zip(xs, fmts, layer.input_requants):
        parts.append(_to_output(layer, x, fmt, rounding, rq))
    return np.concatenate(parts, axis=layer.op.axis)


def add(layer, xs, fmts, rounding):
    """Residual add: each input rescaled to the output scale times 2**guard, summed, shifted."""
    total = 0
    for x, fmt, rq in zip(xs, fmts, layer.input_requants):
        total = total + requantize(np.asarray(x, np.int64) - fmt.zero_point, rq)
    return finish(requantize(total, layer.requant), layer, rounding=rounding)


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
