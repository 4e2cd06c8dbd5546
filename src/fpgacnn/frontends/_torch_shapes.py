"""Converters for PyTorch's shape, routing and host ops (same signature as `_torch_ops`)."""

import numpy as np
import torch

from fpgacnn.frontends._torch_ops import Ref, arg, positive_axis
from fpgacnn.ir import ops


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
    tensors = list(arg(args, kwargs, 0, "tensors"))
    axis = positive_axis(arg(args, kwargs, 1, "dim", 0), len(out.shape))
    return ctx.add(name, ops.Concat(axis), tensors)


def add(ctx, name, _, args, kwargs, out):
    a, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "other")
    if arg(args, kwargs, 2, "alpha", 1) != 1:
        raise ctx.error(name, "add with alpha != 1 is not supported")
    if not isinstance(a, (Ref, torch.Tensor)) or not isinstance(b, (Ref, torch.Tensor)):
        raise ctx.error(name, "adding a number to a tensor is not supported (tensors only)")
    if ctx.shape(a) != ctx.shape(b):
        raise ctx.error(name, f"add of shapes {ctx.shape(a)} and {ctx.shape(b)} is not "
                              f"supported (no broadcasting)")
    return ctx.add(name, ops.Add(), [a, b])


def upsample(ctx, name, m, args, kwargs, out):
    mode = m.mode if m is not None else arg(args, kwargs, 3, "mode", "nearest")
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
    return _softmax(ctx, name, args[0], arg(args, kwargs, 1, "dim"), out)


def _softmax(ctx, name, x, dim, out):
    rank = len(out.shape)
    dim = (0 if rank in (0, 1, 3) else 1) if dim is None else dim  # PyTorch's implicit dim
    return ctx.add(name, ops.Softmax(positive_axis(dim, rank)), [x])


def lrn_module(ctx, name, m, args, kwargs, out):
    return _lrn(ctx, name, args[0], m.size, m.alpha, m.beta, m.k)


def lrn_function(ctx, name, _, args, kwargs, out):
    return _lrn(ctx, name, args[0], arg(args, kwargs, 1, "size"),
                arg(args, kwargs, 2, "alpha", 1e-4), arg(args, kwargs, 3, "beta", 0.75),
                arg(args, kwargs, 4, "k", 1.0))


def _lrn(ctx, name, x, size, alpha, beta, k):
    if size % 2 == 0:  # PyTorch and ONNX centre an even window differently
        raise ctx.error(name, f"LocalResponseNorm with an even size ({size}) is not supported")
    return ctx.add(name, ops.LRN(int(size), float(alpha), float(beta), float(k)), [x])


def dropout_module(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.Dropout(), [args[0]])


def dropout_function(ctx, name, _, args, kwargs, out):
    if arg(args, kwargs, 2, "training", True) is not False:
        raise ctx.error(name, "dropout with training=True is random; pass training=self.training")
    return ctx.add(name, ops.Dropout(), [args[0]])


def channel_shuffle_module(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.ChannelShuffle(m.groups), [args[0]])


def identity_module(ctx, name, m, args, kwargs, out):
    return ctx.add(name, ops.Identity(), [args[0]])


def pass_through(ctx, name, _, args, kwargs, out):
    if out.dtype not in (torch.float32, torch.float64, torch.float16):
        raise ctx.error(name, f"conversion to {out.dtype} is not supported")
    return args[0]
