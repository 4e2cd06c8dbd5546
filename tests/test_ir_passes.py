"""Each pass keeps the function the graph computes (checked with the float executor)."""

import numpy as np

from fpgacnn.ir import Graph, Node, ops, run_float, simplify
from fpgacnn.ir.passes import fold_batchnorm, fold_constants, fuse_activations, remove_identities

rng = np.random.default_rng(0)


def bn_params(c):
    return {"gamma": rng.uniform(0.5, 2, c), "beta": rng.standard_normal(c),
            "mean": rng.standard_normal(c), "var": rng.uniform(0.5, 2, c)}


def sample_graph():
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    lw = rng.standard_normal((5, 6 * 4 * 4)).astype(np.float32)
    return Graph("g", {"x": (2, 3, 8, 8)}, [
        Node("conv", ops.Conv2d(3, 6, 3, padding=1, bias=False), ("x",), {"weight": w}),
        Node("bn", ops.BatchNorm(6), ("conv",), bn_params(6)),
        Node("act", ops.LeakyReLU(0.1), ("bn",)),
        Node("drop", ops.Dropout(), ("act",)),
        Node("pool", ops.MaxPool(2, 2), ("drop",)),
        Node("flat", ops.Flatten(), ("pool",)),
        Node("fc", ops.Linear(96, 5), ("flat",), {"weight": lw, "bias": np.zeros(5, np.float32)}),
        Node("relu", ops.ReLU(), ("fc",)),
    ], ["relu"])


def same_function(a, b):
    x = rng.standard_normal(a.inputs["x"]).astype(np.float32)
    ya, = run_float(a, x).values()
    yb, = run_float(b, x).values()
    np.testing.assert_allclose(ya, yb, rtol=1e-4, atol=1e-5)


def test_standard_pipeline_folds_and_fuses():
    g = sample_graph()
    s = simplify(g)
    assert [n.op.kind for n in s.nodes] == ["Conv2d", "MaxPool", "Flatten", "Linear"]
    assert s.node("conv").op.activation == ops.LeakyReLU(0.1)
    assert s.node("fc").op.activation == ops.ReLU()
    assert s.outputs == ("fc",)
    same_function(g, s)


def test_each_pass_alone_keeps_the_function():
    g = sample_graph()
    for p in (remove_identities, fold_batchnorm, fuse_activations):
        same_function(g, p(g))


def test_activation_not_fused_into_a_shared_producer():
    g = sample_graph()
    nodes = list(g.nodes) + [Node("side", ops.ReLU(), ("conv",))]
    g = g.with_nodes(nodes, ["relu", "side"])
    s = fuse_activations(fold_batchnorm(g))
    assert s.node("conv").op.activation is None  # conv feeds bn and side: no fold, no fusion


def test_fold_constants_evaluates_constant_subgraphs():
    value = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    g = Graph("g", {"x": (1, 3, 8, 8)}, [
        Node("k", ops.Constant((1, 3, 8, 8)), (), {"value": value}),
        Node("k2", ops.ReLU(), ("k",)),
        Node("sum", ops.Add(), ("x", "k2")),
    ], ["sum"])
    s = fold_constants(g)
    assert [n.op.kind for n in s.nodes] == ["Constant", "Add"]
    np.testing.assert_array_equal(s.node("k2").params["value"], np.maximum(value, 0))
    same_function(g, s)
