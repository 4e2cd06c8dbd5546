"""The backward pass of a whole graph in fixed point, node by node in reverse order.

A tensor used by several nodes receives the sum of their gradients (fractions aligned
exactly, rounded once). The input gradient of a layer that reads the graph input is not
computed: nothing needs it.

>>> grads = backward(graph, params, tape, dlogits, rounder=Rounder(16))
>>> grads.params["conv1"]["weight"]
"""

from dataclasses import dataclass, field

from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph, Node
from fpgacnn.train import conv_grad, pooling, routing
from fpgacnn.train.activation_grad import activation_grad, prelu_slope_grad
from fpgacnn.train.fixed import Fixed, Rounder, align
from fpgacnn.train.forward import Tape, activation_slope


@dataclass
class Gradients:
    tensors: dict[str, Fixed] = field(default_factory=dict)
    params: dict[str, dict[str, Fixed]] = field(default_factory=dict)


def _accumulate(grads: Gradients, tensor: str, g: Fixed, rounder: Rounder) -> None:
    if tensor not in grads.tensors:
        grads.tensors[tensor] = g
        return
    old = grads.tensors[tensor]
    frac = max(old.frac_bits, g.frac_bits)
    total = align(old.value, old.frac_bits, frac) + align(g.value, g.frac_bits, frac)
    grads.tensors[tensor] = rounder(total, frac)


def _through_activation(node: Node, act, dy: Fixed, p, tape: Tape, rounder, grads) -> Fixed:
    """dL/dz of an activation (standalone or fused), recording PReLU's slope gradient."""
    z = tape.pre_activation[node.name]
    if isinstance(act, ops.PReLU):
        grads.params.setdefault(node.name, {})["slope"] = prelu_slope_grad(
            dy, z, act.channels, rounder)
    # the slope the forward used: LeakyReLU's alpha at the activation width, z's
    return activation_grad(act, dy, z, rounder, activation_slope(node, p, z.bits))


def _layer_grads(node, dz: Fixed, x: Fixed, p, rounder, need_input: bool) -> tuple:
    """(dx or None, {param: gradient}) of a Conv2d or Linear from dL/dz."""
    op = node.op
    if isinstance(op, ops.Conv2d):
        weight = conv_grad.conv2d_grad_weight(op, x, dz, rounder)
        dx = (conv_grad.conv2d_grad_input(op, dz, p["weight"], x.shape[2:], rounder)
              if need_input else None)
    else:
        weight = conv_grad.linear_grad_weight(x, dz, rounder)
        dx = conv_grad.linear_grad_input(dz, p["weight"], rounder) if need_input else None
    param_grads = {"weight": weight}
    if op.bias:
        param_grads["bias"] = conv_grad.bias_grad(dz, rounder)
    return dx, param_grads


def node_input_grads(node: Node, dy: Fixed, tape: Tape, p, rounder: Rounder,
                     grads: Gradients, need_input) -> list[Fixed | None]:
    """The gradients of `node`'s inputs (None where not needed), given dL/d(output)."""
    op = node.op
    xs = [tape.values[t] for t in node.inputs]
    if isinstance(op, ops.ACTIVATIONS):
        return [_through_activation(node, op, dy, p, tape, rounder, grads)]
    if getattr(op, "activation", None) is not None:
        dy = _through_activation(node, op.activation, dy, p, tape, rounder, grads)
    if isinstance(op, (ops.Conv2d, ops.Linear)):
        dx, param_grads = _layer_grads(node, dy, xs[0], p, rounder, need_input[0])
        grads.params.setdefault(node.name, {}).update(param_grads)
        return [dx]
    if isinstance(op, ops.MaxPool):
        return [pooling.maxpool_grad(op, dy, tape.argmax[node.name], xs[0].shape, rounder)]
    if isinstance(op, ops.AvgPool):
        return [pooling.avgpool_grad(op, dy, xs[0].shape, rounder)]
    if isinstance(op, ops.GlobalAvgPool):
        return [pooling.global_avgpool_grad(dy, xs[0].shape, rounder)]
    if isinstance(op, ops.Flatten):
        return [routing.flatten_grad(dy, xs[0].shape)]
    if isinstance(op, ops.Concat):
        return routing.concat_grad(dy, [x.shape[op.axis] for x in xs], op.axis)
    if isinstance(op, ops.Upsample):
        return [routing.upsample_grad(dy, op.scale, rounder)]
    if isinstance(op, ops.Add):
        return [dy, dy]
    if isinstance(op, (ops.Identity, ops.Dropout)):
        return [dy]
    raise TypeError(f"no fixed-point backward for {op.kind}")


def backward(graph: Graph, params, tape: Tape, d_output: Fixed, rounder: Rounder,
             output: str | None = None) -> Gradients:
    """Gradients of every parameter (and tensor) from dL/d`output` (the graph's output)."""
    output = output or graph.outputs[0]
    grads = Gradients({output: d_output})
    for node in reversed(graph.nodes):
        if node.name not in grads.tensors:
            continue
        need = [t not in graph.inputs for t in node.inputs]
        dxs = node_input_grads(node, grads.tensors[node.name], tape,
                               params.get(node.name, {}), rounder, grads, need)
        for tensor, dx, needed in zip(node.inputs, dxs, need):
            if needed and dx is not None:
                _accumulate(grads, tensor, dx, rounder)
    return grads
