"""One training step as the Conv2d/Linear layers the engine would run (for the planner).

`training_step_layers(graph, batch)` lists `(name, op, input_shape)`: first the forward
Conv2d/Linear layers (`conv1`), then, in reverse order, each layer's backward GEMMs.

For a Conv2d `(N, Cin, H, W) -> (N, Cout, OH, OW)` (stride s, dilation d, groups g):

- `L.grad_input`: Conv2d(Cout -> Cin, k, stride 1, dilation d, groups g) on dY with s-1
  zeros inserted between elements (padded, or cropped where a pad is negative)
- `L.grad_weight`, conv form: Conv2d(g*N -> Cout, kernel OH x OW, stride d, dilation s,
  groups g) on X viewed as (Cin/g, g*N, H, W), dY being the kernel
- `L.grad_weight`, GEMM form (im2col): Linear(N*OH*OW -> Cin/g*kh*kw) on dY viewed as
  (Cout/g, N*OH*OW), the weight operand being im2col(X)^T (Cin/g*kh*kw, N*OH*OW); one per
  group (`L.grad_weight.g0`, ...) when g > 1
- `L.grad_bias`: Linear(N*OH*OW -> 1) on dY viewed as (Cout, N*OH*OW)

`weight_grad` chooses the form: "conv" (the default) reads X once and expands it on chip, but
its kernel is OH x OW (55 x 55 for AlexNet's conv1), beyond the engine's max_kernel; "gemm"
fits any engine but reads im2col(X) from DDR (kh*kw/(sh*sw) times X); "auto" takes the conv
form where OH and OW fit `max_kernel`, the GEMM form elsewhere.

For a Linear `(N, in) -> (N, out)`: `L.grad_input` Linear(out -> in) on dY (N, out);
`L.grad_weight` Linear(N -> in) on dY^T (out, N); `L.grad_bias` Linear(N -> 1) on dY^T.

An average pool's input gradient is a depthwise Conv2d (a k x k kernel of ones) on dY
divided by each window's count, with zeros inserted; an upsample's a depthwise Conv2d
(scale x scale ones, stride scale). Max pool (routing to the argmax), activations (masks and
slopes), flatten, concat and add are addressing or post-processing, not GEMMs, and are not
listed; nor is the weight update (element-wise). The input gradient of a layer that reads the
graph input is not needed.

>>> for name, op, shape in training_step_layers(load_model("zoo:digits"), batch=32): ...
"""

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph
from fpgacnn.train.conv_grad import grad_input_geometry

Item = tuple[str, ops.Op, tuple[int, ...]]
WEIGHT_GRAD_FORMS = ("auto", "conv", "gemm")


def with_batch(graph: Graph, batch: int) -> Graph:
    """`graph` with every input's batch dimension set to `batch`."""
    inputs = {k: (batch,) + tuple(v[1:]) for k, v in graph.inputs.items()}
    return Graph(graph.name, inputs, graph.nodes, graph.outputs)


def _strided_conv_input_grad(name, op: ops.Conv2d, in_shape, out_shape) -> Item:
    """The input gradient of `op` as a stride-1 Conv2d on the zero-inserted output gradient."""
    n, cin, h, w = in_shape
    geo = grad_input_geometry(op, (h, w), out_shape[2:])
    t, l, b, r = geo.pads
    rows = geo.dilated_hw[0] + min(t, 0) + min(b, 0)
    cols = geo.dilated_hw[1] + min(l, 0) + min(r, 0)
    conv = ops.Conv2d(op.out_channels, cin, op.kernel, 1,
                      (max(t, 0), max(l, 0), max(b, 0), max(r, 0)), op.dilation, op.groups,
                      bias=False)
    return f"{name}.grad_input", conv, (n, op.out_channels, rows, cols)


def _conv_weight_grad_as_conv(name, op: ops.Conv2d, in_shape, out_shape) -> list[Item]:
    n, cin, h, w = in_shape
    _, _, oh, ow = out_shape
    t, l = op.padding[:2]
    need_h = (oh - 1) * op.stride[0] + (op.kernel[0] - 1) * op.dilation[0] + 1
    need_w = (ow - 1) * op.stride[1] + (op.kernel[1] - 1) * op.dilation[1] + 1
    rows, cols = min(h, need_h - t), min(w, need_w - l)
    pads = (t, l, need_h - t - rows, need_w - l - cols)
    conv = ops.Conv2d(op.groups * n, op.out_channels, (oh, ow), op.dilation, pads, op.stride,
                      op.groups, bias=False)
    return [(f"{name}.grad_weight", conv, (cin // op.groups, op.groups * n, rows, cols))]


def _conv_weight_grad_as_gemm(name, op: ops.Conv2d, in_shape, out_shape) -> list[Item]:
    n, _, oh, ow = out_shape
    positions = n * oh * ow
    taps = op.in_channels // op.groups * op.kernel[0] * op.kernel[1]
    gemm = ops.Linear(positions, taps, bias=False)
    shape = (op.out_channels // op.groups, positions)
    if op.groups == 1:
        return [(f"{name}.grad_weight", gemm, shape)]
    return [(f"{name}.grad_weight.g{i}", gemm, shape) for i in range(op.groups)]


def _conv_weight_grad(name, op: ops.Conv2d, in_shape, out_shape, form: str,
                      max_kernel: int) -> list[Item]:
    if form == "auto":
        form = "conv" if max(out_shape[2:]) <= max_kernel else "gemm"
    if form == "conv":
        return _conv_weight_grad_as_conv(name, op, in_shape, out_shape)
    return _conv_weight_grad_as_gemm(name, op, in_shape, out_shape)


def _conv_items(name, op: ops.Conv2d, in_shape, out_shape, needs_input, form,
                max_kernel) -> list[Item]:
    items = [_strided_conv_input_grad(name, op, in_shape, out_shape)] if needs_input else []
    items += _conv_weight_grad(name, op, in_shape, out_shape, form, max_kernel)
    if op.bias:
        positions = out_shape[0] * out_shape[2] * out_shape[3]
        items.append((f"{name}.grad_bias", ops.Linear(positions, 1, bias=False),
                      (op.out_channels, positions)))
    return items


def _linear_items(name, op: ops.Linear, batch: int, needs_input: bool) -> list[Item]:
    items = []
    if needs_input:
        items.append((f"{name}.grad_input", ops.Linear(op.out_features, op.in_features,
                                                        bias=False), (batch, op.out_features)))
    items.append((f"{name}.grad_weight", ops.Linear(batch, op.in_features, bias=False),
                  (op.out_features, batch)))
    if op.bias:
        items.append((f"{name}.grad_bias", ops.Linear(batch, 1, bias=False),
                      (op.out_features, batch)))
    return items


def _backward_items(graph: Graph, node, batch: int, form: str, max_kernel: int) -> list[Item]:
    op, name = node.op, node.name
    in_shape, out_shape = graph.shapes[node.inputs[0]], graph.shapes[name]
    needs_input = node.inputs[0] not in graph.inputs
    if isinstance(op, ops.Conv2d):
        return _conv_items(name, op, in_shape, out_shape, needs_input, form, max_kernel)
    if isinstance(op, ops.Linear):
        return _linear_items(name, op, batch, needs_input)
    if isinstance(op, ops.AvgPool) and needs_input:
        c = in_shape[1]
        window = ops.Conv2d(c, c, op.kernel, op.stride, op.padding, groups=c, bias=False)
        return [_strided_conv_input_grad(name, window, in_shape, out_shape)]
    if isinstance(op, ops.Upsample) and needs_input:
        c = in_shape[1]
        return [(f"{name}.grad_input", ops.Conv2d(c, c, op.scale, op.scale, groups=c,
                                                  bias=False), out_shape)]
    return []


def training_step_layers(graph: Graph, batch: int, weight_grad: str = "conv",
                         max_kernel: int = HardwareConfig.max_kernel) -> list[Item]:
    """Every Conv2d/Linear the engine runs for one training step on `batch` images.

    `weight_grad` chooses the form of the conv weight gradients (see the module docstring).
    >>> [name for name, _, _ in training_step_layers(graph, 32)][:3]
    ['conv1', 'conv2', 'conv3']
    """
    if weight_grad not in WEIGHT_GRAD_FORMS:
        raise UserError(f"weight_grad must be one of {', '.join(WEIGHT_GRAD_FORMS)}, "
                        f"not {weight_grad!r}")
    graph = with_batch(graph, batch)
    forward = [(n.name, n.op, graph.shapes[n.inputs[0]]) for n in graph.nodes
               if isinstance(n.op, (ops.Conv2d, ops.Linear))]
    backward = [item for node in reversed(graph.nodes)
                for item in _backward_items(graph, node, batch, weight_grad, max_kernel)]
    return forward + backward
