"""What the planner plans: GEMM-shaped layers, from a graph, a QModel or a plain list.

A `Layer` is one convolution in Zhang et al.'s loop nest: per group, M output channels,
N input channels, R x C output pixels, a K_h x K_w kernel. A Linear layer on a (B, F) input is
a 1x1 convolution with M = out_features, N = in_features, R = 1 and C = B (FC layers run as
1x1 convolutions on the engine).

>>> from fpgacnn.ir import ops
>>> layer = layer_from_op("fc", ops.Linear(4096, 1000), (1, 4096))
>>> (layer.m, layer.n, layer.r, layer.c, layer.macs)
(1000, 4096, 1, 1, 4096000)
"""

from dataclasses import dataclass, replace

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, ops


@dataclass(frozen=True)
class Layer:
    """One GEMM-shaped layer; `m` and `n` are per group, `batch` images run one after another."""

    name: str
    kind: str           # "conv" or "linear"
    m: int
    n: int
    r: int
    c: int
    kh: int = 1
    kw: int = 1
    sh: int = 1
    sw: int = 1
    dh: int = 1
    dw: int = 1
    groups: int = 1
    batch: int = 1
    in_h: int = 0       # input rows and columns without padding (0: as the window needs)
    in_w: int = 0
    pool: int = 1       # 2: a 2x2 stride-2 max-pool fused into post-processing

    def __post_init__(self):
        for key in ("m", "n", "r", "c", "kh", "kw", "sh", "sw", "dh", "dw", "groups", "batch",
                    "pool"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"layer {self.name}: {key} must be a positive integer, "
                                f"got {value!r}")
        if self.pool > min(self.r, self.c):
            raise UserError(f"layer {self.name}: a fused {self.pool}x{self.pool} pool needs "
                            f"at least {self.pool}x{self.pool} outputs, got {self.r}x{self.c}")

    @property
    def rows(self) -> int:
        """Output rows computed: with a fused pool, the rows its windows cover."""
        return self.r // self.pool * self.pool

    @property
    def cols(self) -> int:
        return self.c // self.pool * self.pool

    @property
    def macs(self) -> int:
        return self.batch * self.groups * self.m * self.n * self.r * self.c * self.kh * self.kw

    @property
    def ops(self) -> int:
        """Operations as Zhang et al. count them: a multiply and an add per MAC."""
        return 2 * self.macs

    def input_rows(self, out_rows: int) -> int:
        """Input rows that `out_rows` output rows read (halo included; works on arrays)."""
        need = (out_rows - 1) * self.sh + (self.kh - 1) * self.dh + 1
        return np.minimum(need, self.in_h) if self.in_h else need

    def input_cols(self, out_cols: int) -> int:
        need = (out_cols - 1) * self.sw + (self.kw - 1) * self.dw + 1
        return np.minimum(need, self.in_w) if self.in_w else need


def layer_from_op(name: str, op, input_shape) -> Layer:
    """The Layer of a Conv2d or Linear op applied to `input_shape` (NCHW or (N, F))."""
    if isinstance(op, ops.Conv2d):
        n, c, h, w = input_shape
        _, m, r, cols = op.output_shape([tuple(input_shape)])
        return Layer(name, "conv", m // op.groups, c // op.groups, r, cols,
                     op.kernel[0], op.kernel[1], op.stride[0], op.stride[1],
                     op.dilation[0], op.dilation[1], op.groups, n, h, w)
    if isinstance(op, ops.Linear):
        if len(input_shape) != 2:
            raise UserError(f"layer {name}: Linear input must be (N, F), got {input_shape}")
        return Layer(name, "linear", op.out_features, op.in_features, 1, input_shape[0],
                     in_h=1, in_w=input_shape[0])
    raise UserError(f"layer {name}: the engine model takes Conv2d or Linear, got "
                    f"{type(op).__name__}")


def layers_from_list(items) -> list[Layer]:
    """Layers from `(name, op, input_shape)` triples (the training workload's form)."""
    return [layer_from_op(name, op, tuple(shape)) for name, op, shape in items]


def layers_from_graph(graph: Graph) -> list[Layer]:
    """The Conv2d and Linear layers of a graph, in order, with 2x2 max-pools fused."""
    layers = []
    for node in graph.nodes:
        if isinstance(node.op, (ops.Conv2d, ops.Linear)):
            layer = layer_from_op(node.name, node.op, graph.input_shapes(node)[0])
            users = [n.op for n in graph.consumers(node.name)]
            layers.append(with_fused_pool(layer, node.op, users, node.name in graph.outputs))
    return layers


def with_fused_pool(layer: Layer, op, users, is_output: bool) -> Layer:
    """`layer` with pool=2 when its only consumer is a 2x2 stride-2 max-pool (fused)."""
    if (not isinstance(op, ops.Conv2d) or len(users) != 1 or is_output
            or min(layer.r, layer.c) < 2):
        return layer
    pool = users[0]
    if (isinstance(pool, ops.MaxPool) and pool.kernel == (2, 2) and pool.stride == (2, 2)
            and pool.padding == (0, 0, 0, 0) and not pool.ceil_mode):
        return replace(layer, pool=2)
    return layer


def other_nodes(graph: Graph) -> list:
    """Nodes that are not GEMM layers, with how the engine handles each (see engine model)."""
    return [node for node in graph.nodes if not isinstance(node.op, (ops.Conv2d, ops.Linear))]


ZHANG_ALEXNET = (
    # name, M, N, R(=C), K, S, input size: one group of AlexNet (Zhang et al., FPGA'15, Table 3)
    ("conv1", 48, 3, 55, 11, 4, 227),
    ("conv2", 128, 48, 27, 5, 1, 31),
    ("conv3", 192, 256, 13, 3, 1, 15),
    ("conv4", 192, 192, 13, 3, 1, 15),
    ("conv5", 128, 192, 13, 3, 1, 15),
)


def zhang_alexnet() -> list[Layer]:
    """AlexNet's five convolutions in two-group form, one group, as Zhang et al. model them.

    Input sizes include the padding (conv2: 27 + 2 + 2; conv3..conv5: 13 + 1 + 1).
    """
    return [Layer(name, "conv", m, n, r, r, k, k, s, s, in_h=size, in_w=size)
            for name, m, n, r, k, s, size in ZHANG_ALEXNET]


WORKLOADS = {"zhang-alexnet": zhang_alexnet}
"""Named workloads: MODEL `workload:NAME` on the command line."""


def named_workload(name: str) -> list[Layer]:
    if name not in WORKLOADS:
        raise UserError(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}")
    return WORKLOADS[name]()
