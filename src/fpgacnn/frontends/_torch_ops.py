"""Converters from PyTorch modules, functions and tensor methods to IR ops: layers,
activations and pooling (shapes and routing are in `_torch_shapes`, the lookup tables in
`_torch_table`).

Every converter has the signature `convert(ctx, name, module, args, kwargs, out) -> Ref`:
`module` is the nn.Module for module calls (else None), `args`/`kwargs` hold Refs (IR
tensors), constant tensors and plain values, and `out` is the tensor PyTorch computed.
"""

from dataclasses import dataclass

import numpy as np
import torch

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


def arg(args, kwargs, index, key, default=None):
    return args[index] if len(args) > index else kwargs.get(key, default)


def _np(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _const(ctx, name, value, what) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        raise ctx.error(name, f"{what} must be a constant tensor (a parameter or buffer), "
                              f"not computed from the input")
    return _np(value)


def positive_axis(dim, rank) -> int:
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
    weight = _const(ctx, name, arg(args, kwargs, 1, "weight"), "the conv2d weight")
    bias = arg(args, kwargs, 2, "bias")
    bias = None if bias is None else _const(ctx, name, bias, "the conv2d bias")
    return _conv_op(ctx, name, args[0], weight, bias, arg(args, kwargs, 3, "stride", 1),
                    arg(args, kwargs, 4, "padding", 0), arg(args, kwargs, 5, "dilation", 1),
                    arg(args, kwargs, 6, "groups", 1))


def _linear_op(ctx, name, x, weight, bias):
    op = ops.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    params = {"weight": weight} | ({} if bias is None else {"bias": bias})
    return ctx.add(name, op, [x], params)


def linear_module(ctx, name, m, args, kwargs, out):
    return _linear_op(ctx, name, args[0], _np(m.weight), None if m.bias is None else _np(m.bias))


def linear_function(ctx, name, _, args, kwargs, out):
    weight = _const(ctx, name, arg(args, kwargs, 1, "weight"), "the linear weight")
    bias = arg(args, kwargs, 2, "bias")
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


def batchnorm_function(ctx, name, _, args, kwargs, out):
    """F.batch_norm / aten.batch_norm(input, weight, bias, running_mean, running_var,
    training, momentum, eps, ...) with running statistics."""
    if arg(args, kwargs, 5, "training", False):
        raise ctx.error(name, "batch_norm with training=True is not supported")
    mean = _const(ctx, name, arg(args, kwargs, 3, "running_mean"), "the running mean")
    var = _const(ctx, name, arg(args, kwargs, 4, "running_var"), "the running variance")
    weight, bias = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    gamma = np.ones_like(mean) if weight is None else _const(ctx, name, weight, "the weight")
    beta = np.zeros_like(mean) if bias is None else _const(ctx, name, bias, "the bias")
    params = {"gamma": gamma, "beta": beta, "mean": mean, "var": var}
    eps = float(arg(args, kwargs, 7, "eps", 1e-5))
    return ctx.add(name, ops.BatchNorm(mean.size, eps), [args[0]], params)


# ---- activations -----------------------------------------------------------------------------

def relu(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.ReLU(), [args[0]])


def leaky_relu_module(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.LeakyReLU(float(m.negative_slope)), [args[0]])


def leaky_relu_function(ctx, name, _, args, kwargs, out):
    slope = float(arg(args, kwargs, 1, "negative_slope", 0.01))
    return ctx.add(name, ops.LeakyReLU(slope), [args[0]])


def prelu_module(ctx, name, m, args, kwargs, out):
    slope = _np(m.weight).reshape(-1)
    return ctx.add(name, ops.PReLU(slope.size), [args[0]], {"slope": slope})


def prelu_function(ctx, name, _, args, kwargs, out):
    slope = _const(ctx, name, arg(args, kwargs, 1, "weight"), "the prelu weight").reshape(-1)
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
    return _clip(ctx, name, args[0], arg(args, kwargs, 1, "min_val", -1.0),
                 arg(args, kwargs, 2, "max_val", 1.0))


def relu6_function(ctx, name, _, args, kwargs, out):
    return _clip(ctx, name, args[0], 0.0, 6.0)


def clamp(ctx, name, _, args, kwargs, out):
    return _clip(ctx, name, args[0], arg(args, kwargs, 1, "min"), arg(args, kwargs, 2, "max"))


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
    return _pool(ctx, name, ops.MaxPool, args[0], arg(args, kwargs, 1, "kernel_size"),
                 arg(args, kwargs, 2, "stride"), arg(args, kwargs, 3, "padding", 0),
                 arg(args, kwargs, 4, "dilation", 1), arg(args, kwargs, 5, "ceil_mode", False))


def _avgpool(ctx, name, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor):
    if divisor is not None:
        raise ctx.error(name, "avg_pool2d with divisor_override is not supported")
    return _pool(ctx, name, ops.AvgPool, x, kernel, stride, padding, 1, ceil_mode,
                 count_include_pad=bool(count_include_pad))


def avgpool_module(ctx, name, m, args, kwargs, out):
    return _avgpool(ctx, name, args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode,
                    m.count_include_pad, m.divisor_override)


def avgpool_function(ctx, name, _, args, kwargs, out):
    return _avgpool(ctx, name, args[0], arg(args, kwargs, 1, "kernel_size"),
                    arg(args, kwargs, 2, "stride"), arg(args, kwargs, 3, "padding", 0),
                    arg(args, kwargs, 4, "ceil_mode", False),
                    arg(args, kwargs, 5, "count_include_pad", True),
                    arg(args, kwargs, 6, "divisor_override"))


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
    return _adaptive(ctx, name, args[0], arg(args, kwargs, 1, "output_size"), ops.AvgPool)


def adaptive_max_module(ctx, name, m, args, kwargs, out):
    return _adaptive(ctx, name, args[0], m.output_size, ops.MaxPool)


def adaptive_max_function(ctx, name, _, args, kwargs, out):
    return _adaptive(ctx, name, args[0], arg(args, kwargs, 1, "output_size"), ops.MaxPool)


def mean(ctx, name, _, args, kwargs, out):
    x = args[0]
    rank = len(ctx.shape(x))
    dims = arg(args, kwargs, 1, "dim")
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if rank != 4 or sorted(positive_axis(d, rank) for d in dims) != [2, 3]:
        raise ctx.error(name, f"mean over dims {dims} of a rank-{rank} tensor is not supported "
                              f"(only the spatial mean, dims (2, 3), of NCHW)")
    if arg(args, kwargs, 2, "keepdim", False):
        return ctx.add(name, ops.GlobalAvgPool(), [x])
    pooled = ctx.add(f"{name}_pool", ops.GlobalAvgPool(), [x])
    return ctx.add(name, ops.Flatten(), [pooled])
