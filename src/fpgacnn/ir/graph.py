"""The graph: named nodes in topological order, each producing one tensor of its own name.

A `Graph` checks itself when built (unique names, inputs defined before use, parameter shapes,
shape inference), so every Graph in the program is valid and knows the shape of every tensor.
"""

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.ir.ops import Op, Shape


@dataclass(frozen=True, eq=False)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...] = ()
    params: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        frozen = {k: np.asarray(v) for k, v in self.params.items()}
        object.__setattr__(self, "params", MappingProxyType(frozen))

    def with_(self, **changes) -> "Node":
        """A copy with some fields changed: `node.with_(inputs=("x",))`."""
        return replace(self, **changes)

    def __repr__(self):
        return f"Node({self.name!r}, {self.op!r}, inputs={self.inputs})"


@dataclass(frozen=True, eq=False)
class Graph:
    """`inputs` maps each graph input's name to its shape (NCHW, batch included)."""

    name: str
    inputs: Mapping[str, Shape]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    shapes: Mapping[str, Shape] = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "inputs",
                           MappingProxyType({k: tuple(v) for k, v in self.inputs.items()}))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "shapes", MappingProxyType(infer_shapes(self)))

    def with_nodes(self, nodes, outputs=None) -> "Graph":
        """A new graph with other nodes (and outputs); it is validated again."""
        return Graph(self.name, self.inputs, tuple(nodes),
                     tuple(self.outputs if outputs is None else outputs))

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, tensor: str) -> Node | None:
        """The node that makes `tensor`, or None for a graph input."""
        return None if tensor in self.inputs else self.node(tensor)

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def input_shapes(self, node: Node) -> list[Shape]:
        return [self.shapes[t] for t in node.inputs]


def infer_shapes(graph: Graph) -> dict[str, Shape]:
    """Shape of every tensor; raises UserError naming the first node that is wrong."""
    shapes: dict[str, Shape] = dict(graph.inputs)
    for node in graph.nodes:
        if node.name in shapes:
            raise UserError(f"{graph.name}: tensor name {node.name!r} is defined twice")
        missing = [t for t in node.inputs if t not in shapes]
        if missing:
            raise UserError(f"{graph.name}: node {node.name!r} ({node.op.kind}) uses "
                            f"{missing[0]!r} before it is defined")
        in_shapes = [shapes[t] for t in node.inputs]
        try:
            node.op.check_inputs(in_shapes)
            out = tuple(int(d) for d in node.op.output_shape(in_shapes))
            _check_params(node, node.op.param_shapes(in_shapes))
        except (ValueError, IndexError) as e:
            raise UserError(f"{graph.name}: node {node.name!r} ({node.op.kind}): {e}") from None
        shapes[node.name] = out
    for name in graph.outputs:
        if name not in shapes:
            raise UserError(f"{graph.name}: output {name!r} is not produced by any node")
    return shapes


def _check_params(node: Node, expected: dict[str, Shape]) -> None:
    for key, shape in expected.items():
        if key not in node.params:
            raise ValueError(f"parameter {key!r} is missing")
        if tuple(node.params[key].shape) != tuple(shape):
            raise ValueError(f"parameter {key!r} has shape {tuple(node.params[key].shape)}, "
                             f"expected {tuple(shape)}")
    extra = set(node.params) - set(expected)
    if extra:
        raise ValueError(f"unexpected parameter(s) {sorted(extra)}")
