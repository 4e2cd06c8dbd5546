"""Static checks before training: every layer has a backward op, and the widths hold every
accumulator the forward, backward and update steps build.

A product of an a-bit and a b-bit signed integer is at most 2**(a+b-2) in magnitude; K of them
summed need `a + b - 1 + bit_length(K)` bits. Each Conv2d/Linear builds three sums per step:

    forward          activations x weights    over K = Cin/g * kh * kw (or in_features)
    input gradient   gradients x weights      over K = Cout/g * kh * kw (or out_features)
    weight gradient  activations x gradients  over K = N * OH * OW (or N)

and a PReLU (standalone or fused) one more: its slope gradient, activations x gradients over
K = N * H * W per channel (N * C * H * W for one shared slope).

>>> check_trainable(graph); check_widths(graph, Widths(bits=16), batch=32)
"""

import math

from fpgacnn.errors import UserError
from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph
from fpgacnn.train.settings import Widths

TRAINABLE = (ops.Conv2d, ops.Linear, ops.ReLU, ops.LeakyReLU, ops.PReLU, ops.Clip, ops.MaxPool,
             ops.AvgPool, ops.GlobalAvgPool, ops.Flatten, ops.Concat, ops.Upsample, ops.Add,
             ops.Identity, ops.Dropout)


def loss_input(graph: Graph) -> str:
    """The tensor the loss reads: the output, or the input of a final Softmax (which the host
    loss computes itself)."""
    (output,) = graph.outputs
    node = graph.producer(output)
    if node is not None and isinstance(node.op, ops.Softmax):
        return node.inputs[0]
    return output


def check_trainable(graph: Graph) -> None:
    """UserError naming the first layer without a fixed-point backward op."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UserError(f"{graph.name}: training needs one input and one output, got "
                        f"{len(graph.inputs)} and {len(graph.outputs)}")
    last = loss_input(graph)
    for node in graph.nodes:
        if node.name == graph.outputs[0] and last != node.name:
            continue  # the final softmax, folded into the host loss
        if not isinstance(node.op, TRAINABLE):
            raise UserError(f"layer {node.name!r} ({node.op.kind}) has no backward op; "
                            f"trainable ops: {', '.join(t.__name__ for t in TRAINABLE)}")
        if isinstance(node.op, ops.Concat) and node.op.axis != 1:
            raise UserError(f"layer {node.name!r} (Concat): training supports axis 1 only")


def accumulator_bits(a_bits: int, b_bits: int, terms: int) -> int:
    """Bits a signed accumulator needs for `terms` products of a- and b-bit signed values."""
    return a_bits + b_bits - 1 + int(terms).bit_length()


def layer_sums(graph: Graph, node, batch: int) -> list[tuple[str, str, int]]:
    """(what, kind of operands, terms) of each sum a node builds in one step."""
    sums = gemm_sums(graph, node, batch) if isinstance(node.op, (ops.Conv2d, ops.Linear)) else []
    act = node.op if isinstance(node.op, ops.PReLU) else getattr(node.op, "activation", None)
    if isinstance(act, ops.PReLU):
        shape = (batch,) + tuple(graph.shapes[node.name][1:])
        per_slope = math.prod(shape) // (shape[1] if act.channels > 1 else 1)
        sums.append(("slope-gradient", "act x grad", per_slope))
    return sums


def gemm_sums(graph: Graph, node, batch: int) -> list[tuple[str, str, int]]:
    """The forward, input-gradient and weight-gradient sums of a Conv2d or Linear."""
    op = node.op
    y_shape = graph.shapes[node.name]
    if isinstance(op, ops.Conv2d):
        taps = op.kernel[0] * op.kernel[1]
        fwd, back = op.in_channels // op.groups * taps, op.out_channels // op.groups * taps
        wgrad = batch * y_shape[2] * y_shape[3]
    else:
        fwd, back, wgrad = op.in_features, op.out_features, batch
    sums = [("forward", "act x weight", fwd), ("weight-gradient", "act x grad", wgrad)]
    if node.inputs[0] not in graph.inputs:
        sums.insert(1, ("input-gradient", "grad x weight", back))
    return sums


def check_widths(graph: Graph, widths: Widths, batch: int) -> None:
    """UserError naming the first layer whose accumulator cannot hold its worst-case sum."""
    width_of = {"act": widths.bits, "weight": widths.bits, "grad": widths.grad}
    for node in graph.nodes:
        for what, kinds, terms in layer_sums(graph, node, batch):
            a, b = (width_of[k] for k in kinds.split(" x "))
            need = accumulator_bits(a, b, terms)
            if need > widths.acc_bits:
                raise UserError(
                    f"layer {node.name!r}: the {what} accumulator needs {need} bits "
                    f"({a}-bit x {b}-bit products summed over {terms} terms), more than "
                    f"--acc-bits {widths.acc_bits}")
