import numpy as np
import pytest

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, Node, ops


def conv_node(name, inp, cin, cout, k=3, **kw):
    params = {"weight": np.zeros((cout, cin // kw.get("groups", 1), k, k), np.float32),
              "bias": np.zeros(cout, np.float32)}
    return Node(name, ops.Conv2d(cin, cout, k, **kw), (inp,), params)


def test_shapes_are_inferred_for_every_tensor():
    g = Graph("g", {"x": (1, 3, 13, 13)}, [
        conv_node("c", "x", 3, 8, stride=2, padding=(1, 0, 1, 2)),
        Node("p", ops.MaxPool(2, 1, padding=(0, 0, 1, 1)), ("c",)),
        Node("u", ops.Upsample(2), ("p",)),
        Node("f", ops.Flatten(), ("u",)),
    ], ["f"])
    # (13 + 1 + 1 - 3) // 2 + 1 = 7 rows; (13 + 0 + 2 - 3) // 2 + 1 = 7 columns
    assert g.shapes["c"] == (1, 8, 7, 7)
    assert g.shapes["p"] == (1, 8, 7, 7)  # Darknet's size-2 stride-1 pool keeps the size
    assert g.shapes["u"] == (1, 8, 14, 14)
    assert g.shapes["f"] == (1, 8 * 14 * 14)


def test_wrong_channel_count_names_the_node():
    with pytest.raises(UserError, match="'c2' \\(Conv2d\\).*expects 4 input channels, got 8"):
        Graph("g", {"x": (1, 3, 8, 8)}, [conv_node("c1", "x", 3, 8), conv_node("c2", "c1", 4, 8)],
              ["c2"])


def test_wrong_parameter_shape_is_reported():
    node = conv_node("c", "x", 3, 8)
    bad = node.with_(params={**node.params, "bias": np.zeros(7)})
    with pytest.raises(UserError, match="'bias' has shape \\(7,\\), expected \\(8,\\)"):
        Graph("g", {"x": (1, 3, 8, 8)}, [bad], ["c"])


def test_use_before_definition_and_duplicates_are_rejected():
    with pytest.raises(UserError, match="uses 'y' before it is defined"):
        Graph("g", {"x": (1, 3, 8, 8)}, [Node("r", ops.ReLU(), ("y",))], ["r"])
    with pytest.raises(UserError, match="defined twice"):
        Graph("g", {"x": (1, 3, 8, 8)}, [Node("x", ops.ReLU(), ("x",))], ["x"])


def test_concat_checks_the_other_axes():
    with pytest.raises(UserError, match="cannot concatenate"):
        Graph("g", {"a": (1, 3, 8, 8), "b": (1, 3, 4, 4)},
              [Node("c", ops.Concat(), ("a", "b"))], ["c"])


def test_groups_must_divide_channels():
    with pytest.raises(UserError, match="groups=2"):
        ops.Conv2d(3, 8, 3, groups=2)


def test_ops_are_frozen():
    op = ops.Conv2d(3, 8, 3)
    with pytest.raises(Exception):
        op.groups = 2
