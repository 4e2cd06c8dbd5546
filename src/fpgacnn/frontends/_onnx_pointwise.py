"""ONNX element-wise ops and activations (same converter signature as `_onnx_ops`).

A tensor combined with a per-channel constant (Mul, Add, Sub, Div) becomes a BatchNorm with
mean 0, variance 1 and eps 0, which the BatchNorm-folding pass merges into a preceding conv;
an Add of a per-channel constant right after a MatMul or Conv becomes that layer's bias.
"""

import math
from dataclasses import replace

import numpy as np

from fpgacnn.frontends._onnx_ops import Ref
from fpgacnn.ir import ops


def _legacy_broadcast(ctx, value, rank, attrs) -> np.ndarray:
    """Before opset 7, `broadcast=1, axis=k` aligns the constant's dims from axis k."""
    if ctx.opset >= 7 or not attrs.get("broadcast", 0) or "axis" not in attrs:
        return value
    axis = attrs["axis"] + rank if attrs["axis"] < 0 else attrs["axis"]
    value = np.asarray(value)
    return value.reshape((1,) * axis + value.shape + (1,) * (rank - axis - value.ndim))


def _per_channel(ctx, value, shape, what, attrs=None) -> np.ndarray:
    """The (C,) vector of a constant that broadcasts along channels (axis 1) only."""
    value = _legacy_broadcast(ctx, ctx.constant(value, what), len(shape), attrs or {})
    if len(shape) < 2:
        raise ctx.error(f"{what} applied to a tensor of rank {len(shape)} is not supported")
    channels = shape[1]
    try:
        full = np.broadcast_to(value, shape) if value.ndim <= len(shape) else None
    except ValueError:
        full = None
    if full is not None:
        vector = full[(0, slice(None)) + (0,) * (len(shape) - 2)]
        if np.array_equal(np.broadcast_to(vector.reshape((1, channels) + (1,) * (len(shape) - 2)),
                                          shape), full):
            return np.ascontiguousarray(vector)
    raise ctx.error(f"{what} of shape {value.shape} is not one value per channel of {shape}")


def _affine(ctx, x, scale=None, shift=None):
    """x * scale + shift per channel, as a BatchNorm with mean 0, variance 1 and eps 0."""
    c = ctx.shape(x)[1]
    params = {"gamma": np.ones(c, np.float32) if scale is None else scale,
              "beta": np.zeros(c, np.float32) if shift is None else shift,
              "mean": np.zeros(c, np.float32), "var": np.ones(c, np.float32)}
    return ctx.add(ops.BatchNorm(c, 0.0), [x], params)


# ---- element-wise ----------------------------------------------------------------------------

def add(ctx, args, attrs):
    a, b = args[0], args[1]
    if isinstance(a, Ref) and isinstance(b, Ref):
        return ctx.add(ops.Add(), [a, b])
    x, index = (a, 0) if isinstance(a, Ref) else (b, 1)
    shift = _per_channel(ctx, args[1 - index], ctx.shape(x), "the added constant", attrs)
    producer = ctx.builder().node(x.name)
    if (producer is not None and isinstance(producer.op, (ops.Conv2d, ops.Linear))
            and producer.op.activation is None
            and ctx.only_use(index)):  # MatMul + Add, or a bias added after a conv: fold it
        bias = producer.params.get("bias", np.zeros_like(shift)) + shift
        op = replace(producer.op, bias=True)
        ctx.builder().replace(x.name, op, {**producer.params, "bias": bias})
        return x
    return _affine(ctx, x, shift=shift)


def sub(ctx, args, attrs):
    if isinstance(args[0], Ref) and isinstance(args[1], Ref):
        raise ctx.error("subtracting two tensors is not supported")
    x = ctx.dynamic(args[0], "minuend")
    shift = _per_channel(ctx, args[1], ctx.shape(x), "the subtrahend", attrs)
    return _affine(ctx, x, shift=-shift)


def mul(ctx, args, attrs):
    if isinstance(args[0], Ref) and isinstance(args[1], Ref):
        raise ctx.error("multiplying two tensors is not supported")
    x, other = (args[0], args[1]) if isinstance(args[0], Ref) else (args[1], args[0])
    return _affine(ctx, x, scale=_per_channel(ctx, other, ctx.shape(x), "the factor", attrs))


def div(ctx, args, attrs):
    x = ctx.dynamic(args[0], "dividend")
    divisor = _per_channel(ctx, args[1], ctx.shape(x), "the divisor", attrs)
    return _affine(ctx, x, scale=1.0 / divisor)


def sum_(ctx, args, attrs):
    if len(args) == 1:
        return ctx.add(ops.Identity(), args)
    out = ctx.add(ops.Add(), args[:2])
    for more in args[2:]:
        out = ctx.add(ops.Add(), [out, more])
    return out


# ---- activations -----------------------------------------------------------------------------

def relu(ctx, args, attrs):
    return ctx.add(ops.ReLU(), [ctx.dynamic(args[0])])


def leaky_relu(ctx, args, attrs):
    return ctx.add(ops.LeakyReLU(float(attrs.get("alpha", 0.01))), [ctx.dynamic(args[0])])


def prelu(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    slope = ctx.constant(args[1], "the PRelu slope")
    if ctx.opset < 7 and slope.ndim == 1:  # opset 6: a 1-D slope is per channel
        slope = slope.reshape((-1,) + (1,) * (len(ctx.shape(x)) - 2))
    if slope.size != 1:
        slope = _per_channel(ctx, slope, ctx.shape(x), "the PRelu slope")
    return ctx.add(ops.PReLU(slope.size), [x], {"slope": slope.reshape(-1)})


def clip(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    if ctx.opset < 11:
        low, high = attrs.get("min", -math.inf), attrs.get("max", math.inf)
    else:
        bounds = [None if a is None else float(ctx.constant(a, "a Clip bound").reshape(-1)[0])
                  for a in (args[1:] + [None, None])[:2]]
        low = -math.inf if bounds[0] is None else bounds[0]
        high = math.inf if bounds[1] is None else bounds[1]
    if low == 0 and high == math.inf:
        return ctx.add(ops.ReLU(), [x])
    return ctx.add(ops.Clip(float(low), float(high)), [x])
