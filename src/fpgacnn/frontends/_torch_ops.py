"""Converters from PyTorch modules, functions and tensor methods to IR ops.

Every converter has the signature `convert(ctx, name, module, args, kwargs, out) -> Ref`:
`module` is the nn.Module for module calls (else None), `args`/`kwargs` hold Refs (IR
tensors), constant tensors and plain values, and `out` is the tensor PyTorch computed.
"""

import operator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fpgacnn.errors import UserError
from fpgacnn.ir import ops


@dataclass(frozen=True)
class Ref:
    """A tensor of the IR graph being built, by name."""

    name: str


class Context:
    """What a converter may do: add nodes, ask shapes, raise an error naming the node."""

    def __init__(self, converter, fx_name: str):
        self._converter = converter
        self.fx_name = fx_name

    def add(self, name, op, inputs, params=None) -> Ref:
        return self._converter.add(name, op, inputs, params)

    def shape(self, value) -> tuple:
        if isinstance(value, torch.Tensor):
            return tuple(value.shape)
        return self._converter.shape(value)

    def error(self, name: str, message: str) -> UserError:
        return UserError(f"{self._converter.builder.name}: node {name!r}: {message}")


def _arg(args, kwargs, index, key, default=None):
    return args[index] if len(args) > index else kwargs.get(key, default)


def _np(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _const(ctx, name, value, what) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        raise ctx.error(name, f"{what} must be a constant tensor (a parameter or buffer), "
                              f"not computed from the input")
    return _np(value)


def _axis(dim, rank) -> int:
    return dim + rank if dim < 0 else dim


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    return value * 2 if len(value) == 1 else value


# ---- layers ----------------------------------------------------------------------------------

def _conv_padding(ctx, name, padding, kernel, dilation) -> tuple[int, int, int, int]:
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":  # PyTorch puts the odd extra pixel at the bottom/right
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
    if isinstance(padding, str):
        raise ctx.error(name, f"Conv2d padding={padding!r} is not supported")
    ph, pw = _pair(padding)
    return (ph, pw, ph, pw)


def _conv_op(ctx, name, x, weight, bias, stride, padding, dilation, groups):
    kernel, dilation = tuple(weight.shape[2:]), _pair(dilation)
    in_channels = ctx.shape(x)[1]
    pads = _conv_padding(ctx, name, padding, kernel, dilation)
    op = ops.Conv2d(in_channels, weight.shape[0], kernel, _pair(stride), pads, dilation,
                    groups, bias=bias is not None)
    params = {"weight": weight} | ({} if bias is None else {"bias": bias})
    return ctx.add(name, op, [x], params)


def conv2d_module(ctx, name, m, args, kwargs, out):
    if m.padding_mode != "zeros":
        raise ctx.error(name, f"Conv2d padding_mode={m.padding_mode!r} is not supported "
                              f"(only 'zeros')")
    bias = None if m.bias is None else _np(m.bias)
    return _conv_op(ctx, name, args[0], _np(m.weight), bias, m.stride, m.padding, m.dilation,
                    m.groups)


def conv2d_function(ctx, name, _, args, kwargs, out):
    weight = _const(ctx, name, _arg(args, kwargs, 1, "weight"), "the conv2d weight")
    bias = _arg(args, kwargs, 2, "bias")
    bias = None if bias is None else _const(ctx, name, bias, "the conv2d bias")
    return _conv_op(ctx, name, args[0], weight, bias, _arg(args, kwargs, 3, "stride", 1),
                    _arg(args, kwargs, 4, "padding", 0), _arg(args, kwargs, 5, "dilation", 1),
                    _arg(args, kwargs, 6, "groups", 1))


def _linear_op(ctx, name, x, weight, bias):
    op = ops.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    params = {"weight": weight} | ({} if bias is None else {"bias": bias})
    return ctx.add(name, op, [x], params)


def linear_module(ctx, name, m, args, kwargs, out):
    return _linear_op(ctx, name, args[0], _np(m.weight), None if m.bias is None else _np(m.bias))


def linear_function(ctx, name, _, args, kwargs, out):
    weight = _const(ctx, name, _arg(args, kwargs, 1, "weight"), "the linear weight")
    bias = _arg(args, kwargs, 2, "bias")
    bias = None if bias is None else _const(ctx, name, bias, "the linear bias")
    return _linear_op(ctx, name, args[0], weight, bias)


def batchnorm_module(ctx, name, m, args, kwargs, out):
    if m.running_mean is None:
        raise ctx.error(name, f"{type(m).__name__} without running statistics "
                              f"(track_running_stats=False) is not supported")
    c = m.num_features
    gamma = np.ones(c, np.float32) if m.weight is None else _np(m.weight)
    beta = np.zeros(c, np.float32) if m.bias is None else _np(m.bias)
    params = {"gamma": gamma, "beta": beta, "mean": _np(m.running_mean),
              "var": _np(m.running_var)}
    return ctx.add(name, ops.BatchNorm(c, float(m.eps)), [args[0]], params)


# ---- activations -----------------------------------------------------------------------------

def relu(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.ReLU(), [args[0]])


def leaky_relu_module(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.LeakyReLU(float(m.negative_slope)), [args[0]])


def leaky_relu_function(ctx, name, _, args, kwargs, out):
    slope = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
    return ctx.add(name, ops.LeakyReLU(slope), [args[0]])


def prelu_module(ctx, name, m, args, kwargs, out):
    slope = _np(m.weight).reshape(-1)
    return ctx.add(name, ops.PReLU(slope.size), [args[0]], {"slope": slope})


def prelu_function(ctx, name, _, args, kwargs, out):
    slope = _const(ctx, name, _arg(args, kwargs, 1, "weight"), "the prelu weight").reshape(-1)
    return ctx.add(name, ops.PReLU(slope.size), [args[0]], {"slope": slope})


def _clip(ctx, name, x, low, high):
    if low is None and high is None:
        return ctx.add(name, ops.Identity(), [x])
    if isinstance(low, torch.Tensor) or isinstance(high, torch.Tensor) \
            or isinstance(low, Ref) or isinstance(high, Ref):
        raise ctx.error(name, "clamp with tensor bounds is not supported (numbers only)")
    if low == 0 and high is None:
        return ctx.add(name, ops.ReLU(), [x])
    low = -float("inf") if low is None else float(low)
    high = float("inf") if high is None else float(high)
    return ctx.add(name, ops.Clip(low, high), [x])


def hardtanh_module(ctx, name, m, args, kwargs, out):
    return _clip(ctx, name, args[0], m.min_val, m.max_val)


def hardtanh_function(ctx, name, _, args, kwargs, out):
    return _clip(ctx, name, args[0], _arg(args, kwargs, 1, "min_val", -1.0),
                 _arg(args, kwargs, 2, "max_val", 1.0))


def relu6_function(ctx, name, _, args, kwargs, out):
    return _clip(ctx, name, args[0], 0.0, 6.0)


def clamp(ctx, name, _, args, kwargs, out):
    return _clip(ctx, name, args[0], _arg(args, kwargs, 1, "min"), _arg(args, kwargs, 2, "max"))


# ---- pooling ---------------------------------------------------------------------------------

def _pool(ctx, name, cls, x, kernel, stride, padding, dilation=1, ceil_mode=False, **extra):
    if _pair(dilation) != (1, 1):
        raise ctx.error(name, f"pooling with dilation={dilation} is not supported")
    kernel = _pair(kernel)
    stride = kernel if stride is None or stride == [] or stride == () else _pair(stride)
    ph, pw = _pair(padding)
    op = cls(kernel, stride, (ph, pw, ph, pw), bool(ceil_mode), **extra)
    return ctx.add(name, op, [x])


def maxpool_module(ctx, name, m, args, kwargs, out):
    return _pool(ctx, name, ops.MaxPool, args[0], m.kernel_size, m.stride, m.padding,
                 m.dilation, m.ceil_mode)


def maxpool_function(ctx, name, _, args, kwargs, out):
    return _pool(ctx, name, ops.MaxPool, args[0], _arg(args, kwargs, 1, "kernel_size"),
                 _arg(args, kwargs, 2, "stride"), _arg(args, kwargs, 3, "padding", 0),
                 _arg(args, kwargs, 4, "dilation", 1), _arg(args, kwargs, 5, "ceil_mode", False))


def _avgpool(ctx, name, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor):
    if divisor is not None:
        raise ctx.error(name, "avg_pool2d with divisor_override is not supported")
    return _pool(ctx, name, ops.AvgPool, x, kernel, stride, padding, 1, ceil_mode,
                 count_include_pad=bool(count_include_pad))


def avgpool_module(ctx, name, m, args, kwargs, out):
    return _avgpool(ctx, name, args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode,
                    m.count_include_pad, m.divisor_override)


def avgpool_function(ctx, name, _, args, kwargs, out):
    return _avgpool(ctx, name, args[0], _arg(args, kwargs, 1, "kernel_size"),
                    _arg(args, kwargs, 2, "stride"), _arg(args, kwargs, 3, "padding", 0),
                    _arg(args, kwargs, 4, "ceil_mode", False),
                    _arg(args, kwargs, 5, "count_include_pad", True),
                    _arg(args, kwargs, 6, "divisor_override"))


def _adaptive(ctx, name, x, output_size, window_op):
    h, w = ctx.shape(x)[2:]
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh, ow = h if oh is None else oh, w if ow is None else ow
    if (oh, ow) == (h, w):
        return ctx.add(name, ops.Identity(), [x])
    if (oh, ow) == (1, 1) and window_op is ops.AvgPool:
        return ctx.add(name, ops.GlobalAvgPool(), [x])
    if h % oh or w % ow:
        raise ctx.error(name, f"adaptive pooling from {h}x{w} to {oh}x{ow} is not supported "
                              f"(the input size must be a multiple of the output size)")
    kernel = (h // oh, w // ow)
    return ctx.add(name, window_op(kernel, kernel), [x])


def adaptive_avg_module(ctx, name, m, args, kwargs, out):
    return _adaptive(ctx, name, args[0], m.output_size, ops.AvgPool)


def adaptive_avg_function(ctx, name, _, args, kwargs, out):
    return _adaptive(ctx, name, args[0], _arg(args, kwargs, 1, "output_size"), ops.AvgPool)


def adaptive_max_module(ctx, name, m, args, kwargs, out):
    return _adaptive(ctx, name, args[0], m.output_size, ops.MaxPool)


def adaptive_max_function(ctx, name, _, args, kwargs, out):
    return _adaptive(ctx, name, args[0], _arg(args, kwargs, 1, "output_size"), ops.MaxPool)


def mean(ctx, name, _, args, kwargs, out):
    x = args[0]
    rank = len(ctx.shape(x))
    dims = _arg(args, kwargs, 1, "dim")
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if rank != 4 or sorted(_axis(d, rank) for d in dims) != [2, 3]:
        raise ctx.error(name, f"mean over dims {dims} of a rank-{rank} tensor is not supported "
                              f"(only the spatial mean, dims (2, 3), of NCHW)")
    if _arg(args, kwargs, 2, "keepdim", False):
        return ctx.add(name, ops.GlobalAvgPool(), [x])
    pooled = ctx.add(f"{name}_pool", ops.GlobalAvgPool(), [x])
    return ctx.add(name, ops.Flatten(), [pooled])


# ---- shapes and routing ----------------------------------------------------------------------

def reshape(ctx, name, _, args, kwargs, out):
    """view/reshape/flatten/squeeze: a Flatten to (N, -1), or an Identity; nothing else."""
    x = args[0]
    in_shape, out_shape = ctx.shape(x), tuple(out.shape)
    if out_shape == in_shape:
        return ctx.add(name, ops.Identity(), [x])
    if len(in_shape) > 2 and out_shape == (in_shape[0], int(np.prod(in_shape[1:]))):
        return ctx.add(name, ops.Flatten(), [x])
    raise ctx.error(name, f"reshaping {in_shape} to {out_shape} is not supported "
                          f"(only flattening to (N, -1))")


def flatten_module(ctx, name, m, args, kwargs, out):
    return reshape(ctx, name, m, args, kwargs, out)


def concat(ctx, name, _, args, kwargs, out):
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    axis = _axis(_arg(args, kwargs, 1, "dim", 0), len(out.shape))
    return ctx.add(name, ops.Concat(axis), tensors)


def add(ctx, name, _, args, kwargs, out):
    a, b = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "other")
    if _arg(args, kwargs, 2, "alpha", 1) != 1:
        raise ctx.error(name, "add with alpha != 1 is not supported")
    if not isinstance(a, (Ref, torch.Tensor)) or not isinstance(b, (Ref, torch.Tensor)):
        raise ctx.error(name, "adding a number to a tensor is not supported (tensors only)")
    if ctx.shape(a) != ctx.shape(b):
        raise ctx.error(name, f"add of shapes {ctx.shape(a)} and {ctx.shape(b)} is not "
                              f"supported (no broadcasting)")
    return ctx.add(name, ops.Add(), [a, b])


def upsample(ctx, name, m, args, kwargs, out):
    mode = m.mode if m is not None else _arg(args, kwargs, 3, "mode", "nearest")
    if mode != "nearest":
        raise ctx.error(name, f"upsampling mode {mode!r} is not supported (only 'nearest')")
    (h, w), (oh, ow) = ctx.shape(args[0])[2:], tuple(out.shape[2:])
    if oh % h or ow % w or oh // h != ow // w:
        raise ctx.error(name, f"upsampling {h}x{w} to {oh}x{ow} is not supported "
                              f"(only one integer scale for both axes)")
    return ctx.add(name, ops.Upsample(oh // h), [args[0]])


def softmax_module(ctx, name, m, args, kwargs, out):
    return _softmax(ctx, name, args[0], m.dim, out)


def softmax_function(ctx, name, _, args, kwargs, out):
    return _softmax(ctx, name, args[0], _arg(args, kwargs, 1, "dim"), out)


def _softmax(ctx, name, x, dim, out):
    rank = len(out.shape)
    dim = (0 if rank in (0, 1, 3) else 1) if dim is None else dim  # PyTorch's implicit dim
    return ctx.add(name, ops.Softmax(_axis(dim, rank)), [x])


def lrn_module(ctx, name, m, args, kwargs, out):
    return _lrn(ctx, name, args[0], m.size, m.alpha, m.beta, m.k)


def lrn_function(ctx, name, _, args, kwargs, out):
    return _lrn(ctx, name, args[0], _arg(args, kwargs, 1, "size"),
                _arg(args, kwargs, 2, "alpha", 1e-4), _arg(args, kwargs, 3, "beta", 0.75),
                _arg(args, kwargs, 4, "k", 1.0))


def _lrn(ctx, name, x, size, alpha, beta, k):
    if size % 2 == 0:  # PyTorch and ONNX centre an even window differently
        raise ctx.error(name, f"LocalResponseNorm with an even size ({size}) is not supported")
    return ctx.add(name, ops.LRN(int(size), float(alpha), float(beta), float(k)), [x])


def dropout_module(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.Dropout(), [args[0]])


def dropout_function(ctx, name, _, args, kwargs, out):
    if _arg(args, kwargs, 2, "training", True) is not False:
        raise ctx.error(name, "dropout with training=True is random; pass training=self.training")
    return ctx.add(name, ops.Dropout(), [args[0]])


def identity_module(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.Identity(), [args[0]])


def pass_through(ctx, name, _, args, kwargs, out):
    if out.dtype not in (torch.float32, torch.float64, torch.float16):
        raise ctx.error(name, f"conversion to {out.dtype} is not supported")
    return args[0]


MODULES = {
    nn.Conv2d: conv2d_module, nn.Linear: linear_module,
    nn.BatchNorm1d: batchnorm_module, nn.BatchNorm2d: batchnorm_module,
    nn.ReLU: relu, nn.LeakyReLU: leaky_relu_module, nn.PReLU: prelu_module,
    nn.Hardtanh: hardtanh_module,  # ReLU6 is a Hardtanh
    nn.MaxPool2d: maxpool_module, nn.AvgPool2d: avgpool_module,
    nn.AdaptiveAvgPool2d: adaptive_avg_module, nn.AdaptiveMaxPool2d: adaptive_max_module,
    nn.LocalResponseNorm: lrn_module,
    nn.Dropout: dropout_module, nn.Dropout1d: dropout_module, nn.Dropout2d: dropout_module,
    nn.Identity: identity_module, nn.Flatten: flatten_module, nn.Softmax: softmax_module,
    nn.Upsample: upsample,  # UpsamplingNearest2d is an Upsample
}

FUNCTIONS = {
    F.conv2d: conv2d_function, torch.conv2d: conv2d_function,
    F.linear: linear_function,
    F.relu: relu, torch.relu: relu, F.relu_: relu, torch.relu_: relu,
    F.leaky_relu: leaky_relu_function, F.prelu: prelu_function, torch.prelu: prelu_function,
    F.relu6: relu6_function, F.hardtanh: hardtanh_function,
    torch.clamp: clamp, torch.clip: clamp,
    F.max_pool2d: maxpool_function, torch.max_pool2d: maxpool_function,
    F.avg_pool2d: avgpool_function,
    F.adaptive_avg_pool2d: adaptive_avg_function, F.adaptive_max_pool2d: adaptive_max_function,
    torch.mean: mean,
    torch.flatten: reshape, torch.reshape: reshape, torch.squeeze: reshape,
    torch.cat: concat, torch.concat: concat, torch.concatenate: concat,
    operator.add: add, operator.iadd: add, torch.add: add,
    F.interpolate: upsample,
    F.softmax: softmax_function, torch.softmax: softmax_function,
    F.local_response_norm: lrn_function,
    F.dropout: dropout_function, F.dropout2d: dropout_function,
}

METHODS = {
    "relu": relu, "relu_": relu, "clamp": clamp, "clip": clamp, "clamp_": clamp,
    "mean": mean, "view": reshape, "reshape": reshape, "flatten": reshape, "squeeze": reshape,
    "add": add, "add_": add, "softmax": softmax_function,
    "contiguous": pass_through, "clone": pass_through, "detach": pass_through,
    "float": pass_through,
}


def supported_names() -> list[str]:
    """The supported modules, functions and tensor methods, for error messages."""
    names = {cls.__name__ for cls in MODULES}
    names |= {getattr(f, "__name__", str(f)) for f in FUNCTIONS}
    names |= {f"Tensor.{m}" for m in METHODS}
    return sorted(names)
