"""Converters from ONNX nodes to IR ops: `convert(ctx, args, attrs) -> Ref`: layers,
pooling and shapes here, element-wise ops and activations in `_onnx_pointwise`, Upsample and
Resize in `_onnx_resize`.

`args` holds, per ONNX input, a Ref (an IR tensor), an np.ndarray (a constant) or None (an
absent optional input); `attrs` the node's attributes with strings decoded.
"""

import math
from dataclasses import dataclass

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.ir import ops


@dataclass(frozen=True)
class Ref:
    """A tensor of the IR graph being built, by name."""

    name: str


@dataclass(frozen=True)
class Padded:
    """The output of a zero Pad, waiting for the Conv/AveragePool that absorbs it."""

    source: Ref
    pads: tuple[int, int, int, int]  # top, left, bottom, right


class Context:
    """What a converter may do for one ONNX node."""

    def __init__(self, converter, node):
        self._converter = converter
        self.node = node
        self.name = node.name or node.output[0]
        self.opset = converter.opset

    def add(self, op, inputs, params=None, name=None) -> Ref:
        names = [self._converter.tensor(t, self.name) for t in inputs]
        return Ref(self._converter.builder.add(name or self.name, op, names, params))

    def shape(self, ref: Ref) -> tuple:
        return self._converter.builder.shapes[ref.name]

    def error(self, message: str) -> UserError:
        return UserError(f"{self._converter.builder.name}: node {self.name!r} "
                         f"({self.node.op_type}): {message}")

    def dynamic(self, value, what="input") -> Ref:
        if isinstance(value, Shuffling):
            raise self.error("a 5-D Reshape/Transpose is supported only as a channel shuffle: "
                             "Reshape(N,g,C/g,H,W) -> Transpose(0,2,1,3,4) -> Reshape(N,C,H,W)")
        if not isinstance(value, Ref):
            raise self.error(f"a constant {what} is not supported here")
        return value

    def constant(self, value, what) -> np.ndarray:
        if not isinstance(value, np.ndarray):
            raise self.error(f"{what} must be a constant (an initializer), not computed from "
                             f"the input")
        return value.astype(np.float32, copy=False)

    def only_use(self, index: int) -> bool:
        """Whether this node is the only user of its input `index` (and it is no output)."""
        return self._converter.uses[self.node.input[index]] == 1

    def builder(self):
        return self._converter.builder


def pad(ctx, args, attrs):
    """A zero Pad of H and W, folded into the padding of the Conv or AveragePool after it."""
    x = ctx.dynamic(args[0])
    _rank4(ctx, x)
    if ctx.opset < 11:
        pads, value = attrs.get("pads"), attrs.get("value", 0.0)
    else:
        pads = ctx.constant(args[1], "the pads").astype(np.int64).tolist()
        value = 0.0 if len(args) < 3 or args[2] is None else float(
            np.asarray(args[2]).reshape(-1)[0])
        if len(args) > 3 and args[3] is not None:
            raise ctx.error("Pad with axes is not supported")
    if attrs.get("mode", "constant") != "constant" or value != 0:
        raise ctx.error(f"only zero padding is supported (mode={attrs.get('mode', 'constant')}, "
                        f"value={value})")
    if any(pads[i] != 0 for i in (0, 1, 4, 5)) or min(pads) < 0:
        raise ctx.error(f"only non-negative padding of H and W is supported (pads={pads})")
    return Padded(x, (pads[2], pads[3], pads[6], pads[7]))


def _unpad(value) -> tuple:
    """The tensor under an optional Pad, and the padding to add."""
    if isinstance(value, Padded):
        return value.source, value.pads
    return value, (0, 0, 0, 0)


def _plus(a, b) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def _rank4(ctx, x) -> tuple:
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise ctx.error(f"only 2-D (NCHW) inputs are supported, got shape {shape}")
    return shape


def _pads(ctx, attrs, in_hw, kernel, strides, dilations) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from `pads` or `auto_pad`."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto == "NOTSET":
        p = list(attrs.get("pads", [0, 0, 0, 0]))
        return (p[0], p[1], p[2], p[3])
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.error(f"auto_pad={auto!r} is not supported")
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


# ---- layers ----------------------------------------------------------------------------------

def conv(ctx, args, attrs):
    x, padded = _unpad(args[0])
    x = ctx.dynamic(x)
    weight = ctx.constant(args[1], "the Conv weight")
    bias = None if len(args) < 3 or args[2] is None else ctx.constant(args[2], "the Conv bias")
    shape = _rank4(ctx, x)
    kernel = tuple(weight.shape[2:])
    strides, dilations = tuple(attrs.get("strides", (1, 1))), tuple(attrs.get("dilations", (1, 1)))
    if padded != (0, 0, 0, 0):
        shape = shape[:2] + (shape[2] + padded[0] + padded[2], shape[3] + padded[1] + padded[3])
    pads = _plus(_pads(ctx, attrs, shape[2:], kernel, strides, dilations), padded)
    op = ops.Conv2d(shape[1], weight.shape[0], kernel, strides, pads, dilations,
                    attrs.get("group", 1), bias=bias is not None)
    return ctx.add(op, [x], {"weight": weight} | ({} if bias is None else {"bias": bias}))


def gemm(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    if attrs.get("transA", 0):
        raise ctx.error("transA=1 is not supported")
    b = ctx.constant(args[1], "Gemm's B")
    b = b.T if attrs.get("transB", 0) else b  # now (in, out)
    alpha = attrs.get("alpha", 1.0)
    weight = b.T if alpha == 1.0 else alpha * b.T
    params = {"weight": weight}
    if len(args) > 2 and args[2] is not None:
        c = ctx.constant(args[2], "Gemm's C")
        if c.size not in (1, weight.shape[0]):
            raise ctx.error(f"a C of shape {c.shape} (not one value per output) is not "
                            f"supported")
        params["bias"] = attrs.get("beta", 1.0) * np.broadcast_to(c.reshape(-1),
                                                                  weight.shape[:1])
    return _linear(ctx, x, params)


def matmul(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    b = ctx.constant(args[1], "MatMul's second input")
    if b.ndim != 2:
        raise ctx.error(f"only a 2-D constant second input is supported, got {b.shape}")
    return _linear(ctx, x, {"weight": b.T})


def _linear(ctx, x, params):
    if len(ctx.shape(x)) != 2:
        raise ctx.error(f"only 2-D inputs (N, features) are supported, got {ctx.shape(x)}")
    out_features, in_features = params["weight"].shape
    op = ops.Linear(in_features, out_features, bias="bias" in params)
    return ctx.add(op, [x], params)


def batchnorm(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    if attrs.get("training_mode", 0) or not attrs.get("spatial", 1):
        raise ctx.error("training_mode=1 and spatial=0 are not supported")
    names = ("gamma", "beta", "mean", "var")
    params = {k: ctx.constant(v, f"BatchNormalization's {k}") for k, v in zip(names, args[1:5])}
    op = ops.BatchNorm(ctx.shape(x)[1], float(attrs.get("epsilon", 1e-5)))
    return ctx.add(op, [x], params)


# ---- pooling ---------------------------------------------------------------------------------

def _pool(ctx, args, attrs, cls, **extra):
    x, padded = _unpad(args[0])
    x = ctx.dynamic(x)
    shape = _rank4(ctx, x)
    if padded != (0, 0, 0, 0):
        if not extra.get("count_include_pad") or attrs.get("ceil_mode", 0):
            raise ctx.error("a Pad before an AveragePool needs count_include_pad=1 and no "
                            "ceil_mode")
        shape = shape[:2] + (shape[2] + padded[0] + padded[2], shape[3] + padded[1] + padded[3])
    kernel = tuple(attrs["kernel_shape"])
    strides = tuple(attrs.get("strides", (1, 1)))
    if tuple(attrs.get("dilations", (1, 1))) != (1, 1):
        raise ctx.error(f"dilations={attrs['dilations']} are not supported")
    pads = _plus(_pads(ctx, attrs, shape[2:], kernel, strides, (1, 1)), padded)
    op = cls(kernel, strides, pads, bool(attrs.get("ceil_mode", 0)), **extra)
    return ctx.add(op, [x])


def maxpool(ctx, args, attrs):
    return _pool(ctx, args, attrs, ops.MaxPool)


def avgpool(ctx, args, attrs):
    include = bool(attrs.get("count_include_pad", 0))
    return _pool(ctx, args, attrs, ops.AvgPool, count_include_pad=include)


def global_avgpool(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    _rank4(ctx, x)
    return ctx.add(ops.GlobalAvgPool(), [x])


def global_maxpool(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    hw = _rank4(ctx, x)[2:]
    return ctx.add(ops.MaxPool(hw, hw), [x])


def lrn(ctx, args, attrs):
    op = ops.LRN(int(attrs["size"]), float(attrs.get("alpha", 1e-4)),
                 float(attrs.get("beta", 0.75)), float(attrs.get("bias", 1.0)))
    return ctx.add(op, [ctx.dynamic(args[0])])


# ---- routing and shapes ----------------------------------------------------------------------

def concat(ctx, args, attrs):
    rank = len(next(ctx.shape(a) for a in args if isinstance(a, Ref)))
    axis = attrs["axis"] + rank if attrs["axis"] < 0 else attrs["axis"]
    return ctx.add(ops.Concat(axis), args)


def _to_shape(ctx, x, out_shape):
    """Identity if the shape is unchanged, Flatten if it is (N, -1); nothing else."""
    in_shape = ctx.shape(x)
    out_shape = tuple(int(d) for d in out_shape)
    if out_shape == in_shape:
        return ctx.add(ops.Identity(), [x])
    if len(in_shape) > 2 and out_shape == (in_shape[0], math.prod(in_shape[1:])):
        return ctx.add(ops.Flatten(), [x])
    raise ctx.error(f"reshaping {in_shape} to {out_shape} is not supported "
                    f"(only flattening to (N, -1))")


def flatten(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    shape = ctx.shape(x)
    axis = attrs.get("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    return _to_shape(ctx, x, (math.prod(shape[:axis]), math.prod(shape[axis:])))


@dataclass(frozen=True)
class Shuffling:
    """A channel shuffle in progress: `x` viewed as (N, groups, C/groups, H, W), maybe transposed."""

    x: Ref
    groups: int
    transposed: bool


def _shuffle_step(ctx, value, target):
    """The last Reshape of a channel shuffle, or the first (into 5-D); None if neither."""
    if isinstance(value, Shuffling):
        if value.transposed and tuple(target) == ctx.shape(value.x):
            return ctx.add(ops.ChannelShuffle(value.groups), [value.x])
        return None
    n, c, h, w = ctx.shape(value) if len(ctx.shape(value)) == 4 else (0, 0, 0, 0)
    if c and len(target) == 5 and target[0] == n and target[3:] == [h, w] \
            and target[1] * target[2] == c:
        return Shuffling(value, target[1], False)
    return None


def transpose(ctx, args, attrs):
    value = args[0]
    if isinstance(value, Shuffling) and not value.transposed \
            and list(attrs.get("perm", [])) == [0, 2, 1, 3, 4]:
        return Shuffling(value.x, value.groups, True)
    raise ctx.error("Transpose is supported only inside a channel shuffle: "
                    "Reshape(N,g,C/g,H,W) -> Transpose(0,2,1,3,4) -> Reshape(N,C,H,W)")


def reshape(ctx, args, attrs):
    target = [int(d) for d in np.asarray(args[1]).reshape(-1)]
    if isinstance(args[0], Shuffling) or (isinstance(args[0], Ref) and -1 not in target
                                           and 0 not in target):
        step = _shuffle_step(ctx, args[0], target)
        if step is not None:
            return step
    x = ctx.dynamic(args[0])
    in_shape = ctx.shape(x)
    if not attrs.get("allowzero", 0):
        target = [in_shape[i] if d == 0 else d for i, d in enumerate(target)]
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(in_shape) // known
    return _to_shape(ctx, x, target)


def squeeze(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    shape = ctx.shape(x)
    axes = attrs.get("axes") if len(args) < 2 or args[1] is None else list(args[1])
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else \
        [a + len(shape) if a < 0 else a for a in axes]
    return _to_shape(ctx, x, [d for i, d in enumerate(shape) if i not in axes])


def unsqueeze(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    shape = list(ctx.shape(x))
    axes = attrs.get("axes") if len(args) < 2 or args[1] is None else list(args[1])
    rank = len(shape) + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        shape.insert(a, 1)
    return _to_shape(ctx, x, shape)


def softmax(ctx, args, attrs):
    x = ctx.dynamic(args[0])
    shape = ctx.shape(x)
    axis = attrs.get("axis", 1 if ctx.opset < 13 else -1)
    axis = axis + len(shape) if axis < 0 else axis
    if ctx.opset < 13 and math.prod(shape[axis + 1:]) != 1:
        raise ctx.error(f"before opset 13 Softmax normalises over all axes from {axis} on; "
                        f"only a last axis (or trailing 1s) is supported, shape {shape}")
    return ctx.add(ops.Softmax(axis), [x])


def passthrough(cls):
    def convert(ctx, args, attrs):
        return ctx.add(cls(), [ctx.dynamic(args[0])])
    return convert


def _table():
    from fpgacnn.frontends._onnx_pointwise import (add, clip, div, leaky_relu, mul, prelu, relu,
                                                   sub, sum_)
    from fpgacnn.frontends._onnx_resize import resize, upsample

    return {
        "Conv": conv, "Gemm": gemm, "MatMul": matmul, "BatchNormalization": batchnorm,
        "Add": add, "Sub": sub, "Mul": mul, "Div": div, "Sum": sum_,
        "Relu": relu, "LeakyRelu": leaky_relu, "PRelu": prelu, "Clip": clip,
        "MaxPool": maxpool, "AveragePool": avgpool, "GlobalAveragePool": global_avgpool,
        "GlobalMaxPool": global_maxpool, "LRN": lrn,
        "Concat": concat, "Upsample": upsample, "Resize": resize,
        "Pad": pad, "Flatten": flatten, "Reshape": reshape, "Transpose": transpose,
        "Squeeze": squeeze,
        "Unsqueeze": unsqueeze,
        "Softmax": softmax, "Dropout": passthrough(ops.Dropout),
        "Identity": passthrough(ops.Identity),
    }


CONVERTERS = _table()
TAKES_PAD = ("Conv", "AveragePool")
