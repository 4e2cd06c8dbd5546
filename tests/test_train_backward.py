"""The whole-graph fixed-point forward and backward (fused activations, a tensor used twice,
concat, upsample, pools, add) against torch autograd on the same dequantized weights and
input; and the static checks that refuse a model before training."""

import numpy as np
import pytest
import torch

from fpgacnn.errors import UserError
from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph, Node
from fpgacnn.ir.reference import run_node
from fpgacnn.train.backward import backward
from fpgacnn.train.checks import check_trainable, check_widths
from fpgacnn.train.fixed import Rounder
from fpgacnn.train.forward import forward
from fpgacnn.train.settings import Widths

BITS = 16


def mixed_graph() -> Graph:
    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.standard_normal(shape) * np.sqrt(2 / np.prod(shape[1:]))).astype(np.float32)

    nodes = [
        Node("c1", ops.Conv2d(3, 4, 3, padding=1, activation=ops.PReLU(4)), ("x",),
             {"weight": w(4, 3, 3, 3), "bias": w(4, 1)[:, 0], "slope": np.full(4, 0.2, "f4")}),
        Node("c2", ops.Conv2d(4, 4, 3, 2, 1, activation=ops.LeakyReLU(0.1)), ("c1",),
             {"weight": w(4, 4, 3, 3), "bias": w(4, 1)[:, 0]}),
        Node("up", ops.Upsample(2), ("c2",)),
        Node("add", ops.Add(activation=ops.ReLU()), ("c1", "up")),
        Node("cat", ops.Concat(), ("add", "c1")),
        Node("mp", ops.MaxPool(2, 2), ("cat",)),
        Node("ap", ops.AvgPool(3, 1, 1), ("mp",)),
        Node("gap", ops.GlobalAvgPool(), ("ap",)),
        Node("flat", ops.Flatten(), ("gap",)),
        Node("fc", ops.Linear(8, 5), ("flat",), {"weight": w(5, 8), "bias": w(5, 1)[:, 0]}),
    ]
    return Graph("mixed", {"x": (2, 3, 6, 6)}, nodes, ("fc",))


def test_graph_gradients_match_autograd():
    graph = mixed_graph()
    rounder = Rounder(BITS)
    rng = np.random.default_rng(1)
    x = rounder.float(rng.standard_normal((2, 3, 6, 6)))
    params = {n.name: {k: rounder.float(v) for k, v in n.params.items()} for n in graph.nodes}
    tape = forward(graph, params, x, rounder)
    d_out = rounder.float(rng.standard_normal((2, 5)))
    grads = backward(graph, params, tape, d_out, rounder)

    values = {"x": torch.tensor(x.to_float())}
    tensors = {n: {k: torch.tensor(v.to_float(), requires_grad=True) for k, v in p.items()}
               for n, p in params.items()}
    for node in graph.nodes:
        values[node.name] = run_node(node, [values[t] for t in node.inputs], tensors[node.name])
    np.testing.assert_allclose(tape.values["fc"].to_float(), values["fc"].detach().numpy(),
                               atol=1e-3 * values["fc"].abs().max().item())
    values["fc"].backward(torch.tensor(d_out.to_float()))
    for node, p in tensors.items():
        for key, t in p.items():
            ours = grads.params[node][key].to_float()
            ref = t.grad.numpy()
            # the forward values carry 16-bit roundings too: a loose bound, far below the
            # O(1) errors a wrong formula gives
            assert np.max(np.abs(ours - ref)) <= 2.0 ** -8 * np.max(np.abs(ref)), (node, key)


def _graph_with(op, params=None) -> Graph:
    nodes = [Node("conv", ops.Conv2d(1, 2, 3), ("x",), {"weight": np.zeros((2, 1, 3, 3)),
                                                        "bias": np.zeros(2)}),
             Node("odd", op, ("conv",), params or {}), Node("flat", ops.Flatten(), ("odd",))]
    return Graph("g", {"x": (1, 1, 5, 5)}, nodes, ("flat",))


def test_a_layer_without_backward_op_is_refused():
    graph = _graph_with(ops.BatchNorm(2), {k: np.ones(2) for k in ("gamma", "beta", "mean",
                                                                   "var")})
    with pytest.raises(UserError, match=r"layer 'odd' \(BatchNorm\) has no backward op"):
        check_trainable(graph)
    check_trainable(_graph_with(ops.MaxPool(2, 1)))
    with_softmax = Graph("s", {"x": (1, 4)}, [
        Node("fc", ops.Linear(4, 3), ("x",), {"weight": np.zeros((3, 4)), "bias": np.zeros(3)}),
        Node("prob", ops.Softmax(), ("fc",))], ("prob",))
    check_trainable(with_softmax)  # a final softmax is part of the host loss


def test_accumulators_too_narrow_for_the_gradients_are_refused():
    from fpgacnn.frontends import load_model

    graph = load_model("zoo:digits")
    check_widths(graph, Widths(bits=16), batch=32)
    # conv1's weight gradient sums 32 * 8 * 8 = 2048 products of 16-bit activations and
    # 16-bit gradients: 16 + 16 - 1 + 12 = 43 bits
    with pytest.raises(UserError, match=r"layer 'conv1': the weight-gradient accumulator needs "
                                        r"43 bits \(16-bit x 16-bit products summed over 2048"):
        check_widths(graph, Widths(bits=16, acc_bits=42), batch=32)
    check_widths(graph, Widths(bits=16, acc_bits=43), batch=32)
    # one shared PReLU slope sums over every element: 32 * 4 * 6 * 6 = 4608 terms, 44 bits,
    # more than the conv's own weight gradient (32 * 6 * 6 = 1152 terms, 42 bits)
    shared = Graph("p", {"x": (1, 3, 6, 6)}, [
        Node("c", ops.Conv2d(3, 4, 3, padding=1, activation=ops.PReLU(1)), ("x",),
             {"weight": np.zeros((4, 3, 3, 3)), "bias": np.zeros(4), "slope": np.zeros(1)})],
        ("c",))
    with pytest.raises(UserError, match=r"layer 'c': the slope-gradient accumulator needs 44"):
        check_widths(shared, Widths(bits=16, acc_bits=43), batch=32)
    check_widths(shared, Widths(bits=16, acc_bits=44), batch=32)
    with pytest.raises(UserError, match="--grad-bits must be an integer in 2..16"):
        Widths(bits=16, grad_bits=20)
    with pytest.raises(UserError, match="--update-bits"):
        Widths(bits=16, update_bits=16)


def test_leaky_relu_backward_uses_the_forward_alpha():
    """With --bits 4 and --grad-bits 16 the backward multiplies by the alpha the forward used
    (0.1 in 4 bits: 6 * 2**-6), not by alpha rounded to the gradient width."""
    graph = Graph("l", {"x": (2, 3)}, [
        Node("fc", ops.Linear(3, 4), ("x",), {"weight": np.eye(4, 3), "bias": np.zeros(4)}),
        Node("act", ops.LeakyReLU(0.1), ("fc",))], ("act",))
    act, grad = Rounder(4), Rounder(BITS)
    params = {"fc": {k: act.float(v) for k, v in graph.node("fc").params.items()}}
    x = act.float(np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]]))
    tape = forward(graph, params, x, act)
    d_out = grad.float(np.arange(1.0, 9.0).reshape(2, 4))
    dz = backward(graph, params, tape, d_out, grad).tensors["fc"]
    z = tape.values["fc"].to_float()
    np.testing.assert_array_equal(dz.to_float(), np.where(z > 0, 1, 6 / 64) * d_out.to_float())
