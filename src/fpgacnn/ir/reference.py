"""The float reference executor: runs a Graph in float32 (or float64) with PyTorch's kernels.

It must agree with the framework the model came from (PyTorch, onnxruntime) and is the float
baseline that quantization is measured against.
"""

import numpy as np
import torch
import torch.nn.functional as F

from fpgacnn.errors import UserError
from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph, Node


def run_float(graph: Graph, inputs, *, dtype=np.float32, keep=False) -> dict[str, np.ndarray]:
    """Run `graph`; `inputs` is an array (one graph input) or a dict by input name.

    Returns the graph outputs by name, or every tensor when `keep` is true.
    >>> out = run_float(graph, np.zeros(graph.inputs["x"], np.float32))
    """
    if not isinstance(inputs, dict):
        (name,) = graph.inputs
        inputs = {name: inputs}
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    values = {}
    for name, shape in graph.inputs.items():
        if name not in inputs:
            raise UserError(f"input {name!r} of shape {shape} is not given")
        array = np.asarray(inputs[name])
        if tuple(array.shape) != tuple(shape):
            raise UserError(f"input {name!r} has shape {array.shape}, expected {shape}")
        values[name] = torch.as_tensor(array, dtype=tdtype)
    with torch.no_grad():
        for node in graph.nodes:
            args = [values[t] for t in node.inputs]
            params = {k: torch.as_tensor(np.array(v), dtype=tdtype) for k, v in node.params.items()}
            values[node.name] = run_node(node, args, params)
    wanted = values.keys() if keep else graph.outputs
    return {k: values[k].numpy() for k in wanted}


def run_node(node: Node, args, params):
    op = node.op
    out = _KERNELS[type(op)](op, args, params)
    if getattr(op, "activation", None) is not None:
        out = activate(op.activation, out, params.get("slope"))
    return out


def activate(act, x, slope=None):
    if isinstance(act, ops.ReLU):
        return F.relu(x)
    if isinstance(act, ops.LeakyReLU):
        return F.leaky_relu(x, act.alpha)
    if isinstance(act, ops.PReLU):
        return F.prelu(x, slope)
    if isinstance(act, ops.Clip):
        return torch.clamp(x, act.low, act.high)
    raise TypeError(act)


def _conv(op, args, p):
    t, l, b, r = op.padding
    x = F.pad(args[0], (l, r, t, b))
    return F.conv2d(x, p["weight"], p.get("bias"), op.stride, 0, op.dilation, op.groups)


def _pad_for_window(op, x, out_hw, fill):
    """Pad explicitly, plus whatever ceil mode needs, so that a plain window covers out_hw."""
    t, l, b, r = op.padding
    h, w = x.shape[2:]
    extra_b = max(0, (out_hw[0] - 1) * op.stride[0] + op.kernel[0] - (h + t + b))
    extra_r = max(0, (out_hw[1] - 1) * op.stride[1] + op.kernel[1] - (w + l + r))
    x = F.pad(x, (l, r, t, b), value=fill)
    return F.pad(x, (0, extra_r, 0, extra_b), value=fill)


def _window(op, x, reduce, fill):
    out_hw = op.output_shape([tuple(x.shape)])[2:]
    padded = _pad_for_window(op, x, out_hw, fill)
    y = reduce(padded, op.kernel, op.stride)
    return y[:, :, :out_hw[0], :out_hw[1]]


def _maxpool(op, args, p):
    return _window(op, args[0], F.max_pool2d, float("-inf"))


def _avgpool(op, args, p):
    x = args[0]
    sums = _window(op, x, lambda v, k, s: F.avg_pool2d(v, k, s, divisor_override=1), 0.0)
    ones = torch.ones_like(x[:1, :1])
    if op.count_include_pad:
        t, l, b, r = op.padding
        ones = F.pad(ones, (l, r, t, b), value=1.0)
        counting = ops.AvgPool(op.kernel, op.stride, 0, op.ceil_mode)
        counts = _window(counting, ones, lambda v, k, s: F.avg_pool2d(v, k, s,
                                                                      divisor_override=1), 0.0)
        counts = counts[:, :, :sums.shape[2], :sums.shape[3]]
    else:
        counts = _window(op, ones, lambda v, k, s: F.avg_pool2d(v, k, s, divisor_override=1),
                         0.0)
    return sums / counts


def _batchnorm(op, args, p):
    return F.batch_norm(args[0], p["mean"], p["var"], p["gamma"], p["beta"], False, 0.0, op.eps)


def _lrn(op, args, p):
    x = args[0]
    c = x.shape[1]
    before, after = (op.size - 1) // 2, op.size // 2  # ONNX: floor((size-1)/2), ceil((size-1)/2)
    sq = F.pad(x * x, (0, 0, 0, 0, before, after))
    window_sum = sum(sq[:, i:i + c] for i in range(op.size))
    return x / (op.bias + op.alpha / op.size * window_sum) ** op.beta


def _yolo(op, args, p):
    x = args[0].clone()
    n, _, h, w = x.shape
    per_anchor = x.view(n, len(op.mask), 5 + op.classes, h, w)
    per_anchor[:, :, 0:2] = torch.sigmoid(per_anchor[:, :, 0:2])
    per_anchor[:, :, 4:] = torch.sigmoid(per_anchor[:, :, 4:])
    return x


def _channel_shuffle(op, args, p):
    n, c, h, w = args[0].shape
    return args[0].reshape(n, op.groups, c // op.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _activation(op, args, p):
    return activate(op, args[0], p.get("slope"))


_KERNELS = {
    ops.Conv2d: _conv,
    ops.Linear: lambda op, a, p: F.linear(a[0], p["weight"], p.get("bias")),
    ops.BatchNorm: _batchnorm,
    ops.ReLU: _activation,
    ops.LeakyReLU: _activation,
    ops.PReLU: _activation,
    ops.Clip: _activation,
    ops.MaxPool: _maxpool,
    ops.AvgPool: _avgpool,
    ops.GlobalAvgPool: lambda op, a, p: a[0].mean(dim=(2, 3), keepdim=True),
    ops.Concat: lambda op, a, p: torch.cat(a, dim=op.axis),
    ops.Upsample: lambda op, a, p: a[0].repeat_interleave(op.scale, 2)
                                       .repeat_interleave(op.scale, 3),
    ops.Add: lambda op, a, p: a[0] + a[1],
    ops.ChannelShuffle: _channel_shuffle,
    ops.Flatten: lambda op, a, p: a[0].reshape(a[0].shape[0], -1),
    ops.Dropout: lambda op, a, p: a[0],
    ops.Identity: lambda op, a, p: a[0],
    ops.Constant: lambda op, a, p: p["value"],
    ops.Softmax: lambda op, a, p: torch.softmax(a[0], dim=op.axis),
    ops.LRN: _lrn,
    ops.YoloHead: _yolo,
}
