"""The training forward pass in fixed point, keeping what the backward pass needs.

Differs from the inference golden model in what it keeps and how formats are chosen: every
activation tensor gets its fraction from its own largest value in this batch (dynamic fixed
point), and a fused activation is applied after the convolution's result has been rounded to
the activation width (the kept pre-activation z is that rounded value).

>>> tape = forward(graph, params, x, rounder=Rounder(16))
>>> tape.values[graph.outputs[0]].to_float()
"""

from dataclasses import dataclass, field

import numpy as np

from fpgacnn.golden.arith import saturate
from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph, Node
from fpgacnn.train import pooling, routing
from fpgacnn.train.activation_grad import scaled_negative
from fpgacnn.train.fixed import (Fixed, Rounder, align, exact_conv2d, exact_matmul,
                                 pad_or_crop, quantize_float, round_divide)


@dataclass
class Tape:
    """Every tensor of one forward pass, the pre-activations of fused activations, and the
    max-pool choices."""

    values: dict[str, Fixed] = field(default_factory=dict)
    pre_activation: dict[str, Fixed] = field(default_factory=dict)
    argmax: dict[str, np.ndarray] = field(default_factory=dict)


def leaky_alpha(act: ops.LeakyReLU, bits: int) -> Fixed:
    """LeakyReLU's alpha as the fixed-point constant both passes use."""
    return quantize_float(np.array(act.alpha), bits)


def add_bias(acc, acc_frac: int, bias: Fixed):
    """acc + bias, the bias brought to the accumulator's fraction (rounded if finer)."""
    shape = (1, -1) + (1,) * (acc.ndim - 2)
    if bias.frac_bits <= acc_frac:
        aligned = align(bias.value, bias.frac_bits, acc_frac)
    else:
        aligned = round_divide(bias.value, 1 << (bias.frac_bits - acc_frac))
    return acc + aligned.reshape(shape)


def activate(act, z: Fixed, rounder: Rounder, slope: Fixed | None) -> Fixed:
    """An activation applied to a fixed-point tensor (LeakyReLU/PReLU round once)."""
    if isinstance(act, ops.ReLU):
        return Fixed(np.maximum(z.value, 0), z.frac_bits, z.bits)
    if isinstance(act, ops.Clip):
        low, high = (int(np.floor(np.ldexp(v, z.frac_bits) + 0.5)) for v in (act.low, act.high))
        return Fixed(saturate(np.clip(z.value, low, high), z.bits, True), z.frac_bits, z.bits)
    return scaled_negative(z, z, slope, rounder)   # z * slope where z <= 0


def _conv(node: Node, x: Fixed, p) -> tuple[np.ndarray, int]:
    op = node.op
    acc = exact_conv2d(pad_or_crop(x.value, op.padding), p["weight"].value, op.stride,
                       op.dilation, op.groups, what=f"layer {node.name!r}")
    return acc, x.frac_bits + p["weight"].frac_bits


def _linear(node: Node, x: Fixed, p) -> tuple[np.ndarray, int]:
    acc = exact_matmul(x.value, p["weight"].value.T, what=f"layer {node.name!r}")
    return acc, x.frac_bits + p["weight"].frac_bits


def activation_slope(node: Node, p, bits: int) -> Fixed | None:
    """The fixed-point slope of the node's activation: PReLU's parameter or LeakyReLU's alpha."""
    act = node.op.activation if not isinstance(node.op, ops.ACTIVATIONS) else node.op
    if isinstance(act, ops.PReLU):
        return p["slope"]
    if isinstance(act, ops.LeakyReLU):
        return leaky_alpha(act, bits)
    return None


def run_node(node: Node, args: list[Fixed], p, rounder: Rounder, tape: Tape) -> Fixed:
    op = node.op
    if isinstance(op, (ops.Conv2d, ops.Linear)):
        acc, frac = (_conv if isinstance(op, ops.Conv2d) else _linear)(node, args[0], p)
        if op.bias:
            acc = add_bias(acc, frac, p["bias"])
        z = rounder(acc, frac)
    elif isinstance(op, ops.Add):
        z = routing.add_forward(args[0], args[1], rounder)
    elif isinstance(op, ops.ACTIVATIONS):
        tape.pre_activation[node.name] = args[0]
        return activate(op, args[0], rounder, activation_slope(node, p, rounder.bits))
    elif isinstance(op, ops.MaxPool):
        y, tape.argmax[node.name] = pooling.maxpool_forward(op, args[0])
        return y
    elif isinstance(op, ops.AvgPool):
        return pooling.avgpool_forward(op, args[0], rounder)
    elif isinstance(op, ops.GlobalAvgPool):
        return pooling.global_avgpool_forward(args[0], rounder)
    elif isinstance(op, ops.Flatten):
        return Fixed(args[0].value.reshape(args[0].shape[0], -1), args[0].frac_bits,
                     args[0].bits)
    elif isinstance(op, ops.Concat):
        return routing.concat_forward(args, rounder, op.axis)
    elif isinstance(op, ops.Upsample):
        return routing.upsample_forward(args[0], op.scale)
    elif isinstance(op, (ops.Identity, ops.Dropout)):
        return args[0]
    else:
        raise TypeError(f"no fixed-point training forward for {op.kind}")
    if op.activation is None:
        return z
    tape.pre_activation[node.name] = z
    return activate(op.activation, z, rounder, activation_slope(node, p, rounder.bits))


def forward(graph: Graph, params, x: Fixed, rounder: Rounder, stop_at=None) -> Tape:
    """Run `graph` on `x`; `params[node][key]` are Fixed weights. Stops after node `stop_at`."""
    tape = Tape()
    (name,) = graph.inputs
    tape.values[name] = x
    for node in graph.nodes:
        args = [tape.values[t] for t in node.inputs]
        tape.values[node.name] = run_node(node, args, params.get(node.name, {}), rounder, tape)
        if node.name == stop_at:
            break
    return tape
