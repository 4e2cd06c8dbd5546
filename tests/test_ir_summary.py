"""fpgacnn.ir.summary on graphs built directly, against PyTorch's modules and plain formulas."""

from fractions import Fraction
from math import ceil, prod

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, Node, ops
from fpgacnn.ir.summary import summarize, tensor_bytes


def exact_bytes(elements, bits):
    return ceil(Fraction(elements * bits, 8))


@settings(max_examples=60)
@given(st.integers(1, 3), st.sampled_from([1, 2, 4]), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 2), st.integers(1, 2), st.integers(2, 16),
       st.booleans())
def test_conv_row_matches_torch(n, groups, in_mult, out_mult, stride, pad, dilation, bits,
                                bias):
    cin, cout, k = groups * in_mult, groups * out_mult, 3
    conv = torch.nn.Conv2d(cin, cout, k, stride, pad, dilation, groups, bias=bias)
    x = torch.zeros(n, cin, 9, 11)
    out = conv(x)
    params = {"weight": conv.weight.detach().numpy()}
    if bias:
        params["bias"] = conv.bias.detach().numpy()
    op = ops.Conv2d(cin, cout, k, stride, pad, dilation, groups, bias=bias)
    graph = Graph("g", {"x": tuple(x.shape)}, [Node("conv", op, ("x",), params)], ["conv"])
    (row,) = summarize(graph, bits).layers
    torch_params = sum(p.numel() for p in conv.parameters())
    assert row.output_shape == tuple(out.shape)
    assert row.params == torch_params
    # each output element is a sum of cin/groups * k * k products
    assert row.macs == out.numel() * (cin // groups) * k * k
    assert row.output_bytes == exact_bytes(out.numel(), bits)
    assert row.weight_bytes == exact_bytes(torch_params, bits)


@given(st.integers(0, 10_000), st.integers(2, 16))
def test_tensor_bytes_is_the_packed_ceiling(elements, bits):
    assert tensor_bytes(elements, bits) == exact_bytes(elements, bits)


def test_linear_add_concat_and_host_rows():
    rng = np.random.default_rng(0)
    nodes = [
        Node("a", ops.Conv2d(3, 4, 1), ("x",), {"weight": rng.random((4, 3, 1, 1)),
                                                "bias": rng.random(4)}),
        Node("sum", ops.Add(activation=ops.PReLU(4)), ("a", "a"), {"slope": rng.random(4)}),
        Node("cat", ops.Concat(), ("sum", "a")),
        Node("flat", ops.Flatten(), ("cat",)),
        Node("fc", ops.Linear(8 * 5 * 5, 7, bias=False), ("flat",),
             {"weight": rng.random((7, 200))}),
        Node("prob", ops.Softmax(), ("fc",)),
    ]
    summary = summarize(Graph("g", {"x": (2, 3, 5, 5)}, nodes, ["prob"]), bits=3)
    rows = {row.name: row for row in summary.layers}
    assert rows["sum"].params == 4 and rows["sum"].macs == 0
    assert rows["sum"].activation == "PReLU"
    assert rows["cat"].input_shapes == ((2, 4, 5, 5), (2, 4, 5, 5))
    assert rows["fc"].macs == 2 * 7 * 200 and rows["fc"].params == 1400
    assert rows["prob"].host and not rows["fc"].host
    totals = summary.totals
    assert totals["params"] == 16 + 4 + 1400 and totals["macs"] == 2 * 4 * 25 * 3 + 2800
    assert totals["host_layers"] == 1
    assert totals["input_bytes"] == exact_bytes(150, 3)
    assert totals["max_output_bytes"] == exact_bytes(400, 3)
    as_dict = summary.as_dict()
    assert as_dict["layers"][2]["input_shape"] == [2, 4, 5, 5]
    assert as_dict["totals"] == totals


@pytest.mark.parametrize("bits", [1, 17, 0])
def test_bits_outside_2_to_16_are_user_errors(bits):
    graph = Graph("g", {"x": (1, 2)}, [Node("y", ops.ReLU(), ("x",))], ["y"])
    with pytest.raises(UserError, match="bits"):
        summarize(graph, bits)
    assert prod(summarize(graph, 16).layers[0].output_shape) == 2
