"""Per-layer facts of a graph: shapes, parameter count, MACs, feature-map and weight bytes.

This is the table the seed documents compute by hand to size buffers and DSP arrays.

- `params`: elements of the node's parameter tensors (weights, biases, PReLU slopes,
  BatchNorm statistics in an unfolded graph, constants).
- `macs`: multiply-accumulates of convolutions (`N*Cout*OH*OW * Cin/groups*KH*KW`) and linear
  layers (`N*out*in`), batch included; every other op counts 0 (pooling, activations, adds,
  host ops are not MAC-array work).
- `output_bytes` / `weight_bytes`: `ceil(elements * bits / 8)` of the output tensor and of all
  parameter tensors, every element stored at `bits` bits.
"""

from dataclasses import dataclass
from math import prod

from fpgacnn.errors import UserError
from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph, Node

Shape = tuple[int, ...]
MIN_BITS, MAX_BITS = 2, 16


@dataclass(frozen=True)
class LayerSummary:
    """One row of the table: one node of the graph."""

    name: str
    op: str
    activation: str | None
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    params: int
    macs: int
    output_bytes: int
    weight_bytes: int
    host: bool

    def as_dict(self) -> dict:
        """JSON-ready; `input_shape` is the first input's shape, `input_shapes` all of them."""
        return {"name": self.name, "op": self.op, "activation": self.activation,
                "input_shape": list(self.input_shapes[0]) if self.input_shapes else None,
                "input_shapes": [list(s) for s in self.input_shapes],
                "output_shape": list(self.output_shape), "params": self.params,
                "macs": self.macs, "output_bytes": self.output_bytes,
                "weight_bytes": self.weight_bytes, "host": self.host}


@dataclass(frozen=True)
class GraphSummary:
    graph: str
    inputs: dict[str, Shape]
    outputs: tuple[str, ...]
    bits: int
    layers: tuple[LayerSummary, ...]

    @property
    def totals(self) -> dict[str, int]:
        """Sums over the layers, plus the largest output feature map and the input bytes."""
        return {
            "layers": len(self.layers),
            "host_layers": sum(layer.host for layer in self.layers),
            "params": sum(layer.params for layer in self.layers),
            "macs": sum(layer.macs for layer in self.layers),
            "output_bytes": sum(layer.output_bytes for layer in self.layers),
            "weight_bytes": sum(layer.weight_bytes for layer in self.layers),
            "max_output_bytes": max((layer.output_bytes for layer in self.layers), default=0),
            "input_bytes": sum(tensor_bytes(prod(s), self.bits) for s in self.inputs.values()),
        }

    def as_dict(self) -> dict:
        return {"graph": self.graph, "bits": self.bits,
                "inputs": {k: list(v) for k, v in self.inputs.items()},
                "outputs": list(self.outputs),
                "layers": [layer.as_dict() for layer in self.layers], "totals": self.totals}


def tensor_bytes(elements: int, bits: int) -> int:
    """Bytes to store `elements` values of `bits` bits, packed: `tensor_bytes(10, 4) == 5`."""
    return (elements * bits + 7) // 8


def node_macs(node: Node, output_shape: Shape) -> int:
    """Multiply-accumulates of one node (0 for ops that are not convolutions or linear)."""
    op = node.op
    if isinstance(op, ops.Conv2d):
        return prod(output_shape) * (op.in_channels // op.groups) * op.kernel[0] * op.kernel[1]
    if isinstance(op, ops.Linear):
        return prod(output_shape) * op.in_features
    return 0


def summarize(graph: Graph, bits: int = 8) -> GraphSummary:
    """The per-layer table of `graph` at `bits` bits per stored value.

    >>> s = summarize(load_model("zoo:digits"), bits=8)
    >>> s.totals["macs"], s.layers[0].output_shape
    (452864, (1, 16, 8, 8))
    """
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise UserError(f"bits: must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits}")
    layers = []
    for node in graph.nodes:
        out_shape = graph.shapes[node.name]
        params = sum(int(v.size) for v in node.params.values())
        activation = getattr(node.op, "activation", None)
        layers.append(LayerSummary(
            name=node.name, op=node.op.kind,
            activation=None if activation is None else activation.kind,
            input_shapes=tuple(graph.input_shapes(node)), output_shape=out_shape,
            params=params, macs=node_macs(node, out_shape),
            output_bytes=tensor_bytes(prod(out_shape), bits),
            weight_bytes=tensor_bytes(params, bits), host=node.op.host))
    return GraphSummary(graph.name, dict(graph.inputs), tuple(graph.outputs), bits, tuple(layers))
