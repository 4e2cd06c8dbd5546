"""What the three frontends share: a node list with unique names, and the unsupported-op error."""

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, Node


class GraphBuilder:
    """Collects IR nodes in order, giving each a unique, readable name.

    >>> b = GraphBuilder("net", {"input": (1, 3, 8, 8)})
    >>> b.add("conv", ops.Conv2d(3, 4, 3), ["input"], {"weight": w, "bias": bias})
    'conv'
    >>> graph = b.build(["conv"])
    """

    def __init__(self, name: str, inputs: dict):
        self.name = name
        self.inputs = dict(inputs)
        self.nodes: list[Node] = []
        self.shapes = {k: tuple(v) for k, v in inputs.items()}
        self._taken = set(inputs)

    def unique(self, base: str) -> str:
        name, i = base, 1
        while name in self._taken:
            name = f"{base}_{i}"
            i += 1
        self._taken.add(name)
        return name

    def add(self, base: str, op, inputs, params=None) -> str:
        """Append a node named `base` (or `base_1`, ... if taken); returns the name used.

        The node's output shape is inferred at once (`self.shapes`); a ValueError from
        shape inference becomes a UserError naming the node.
        """
        name = self.unique(base)
        params = _float32(params or {})
        in_shapes = [self.shapes[t] for t in inputs]
        try:
            op.check_inputs(in_shapes)
            self.shapes[name] = tuple(int(d) for d in op.output_shape(in_shapes))
        except (ValueError, IndexError) as e:
            raise UserError(f"{self.name}: node {name!r} ({op.kind}): {e}") from None
        self.nodes.append(Node(name, op, tuple(inputs), params))
        return name

    def node(self, name: str) -> Node | None:
        """The node that makes tensor `name`, or None for a graph input."""
        return next((n for n in self.nodes if n.name == name), None)

    def replace(self, name: str, op, params) -> None:
        """Change the op and parameters of node `name` (its output shape must not change)."""
        index = next(i for i, n in enumerate(self.nodes) if n.name == name)
        params = _float32(params)
        self.nodes[index] = self.nodes[index].with_(op=op, params=params)

    def build(self, outputs) -> Graph:
        return Graph(self.name, self.inputs, tuple(self.nodes), tuple(outputs))


def _float32(params: dict) -> dict:
    """float32 arrays, writable (copied only when read-only, e.g. straight from a file)."""
    return {k: np.require(v, np.float32, ["W"]) for k, v in params.items()}


def unsupported(where: str, node: str, op_type: str, supported) -> UserError:
    """The error for an op outside the supported set: names node, op type and what we support."""
    return UserError(f"{where}: node {node!r}: op {op_type} is not supported "
                     f"(supported: {', '.join(sorted(supported))})")
