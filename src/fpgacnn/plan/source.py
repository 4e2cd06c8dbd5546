"""Where the planner's layers come from: a named workload, a QModel file or any model name.

- `workload:NAME`: a built-in list of layers (`workload:zhang-alexnet`, Zhang et al.'s AlexNet);
- `FILE.npz`: a quantized model from `fpgacnn quantize`; its bit widths are used;
- anything else: a model name for `fpgacnn.frontends.load_model` (`zoo:vgg16`, `net.onnx`, ...).

>>> src = load_source("workload:zhang-alexnet")
>>> [layer.name for layer in src.layers][:2], src.bits
(['conv1', 'conv2'], None)
"""

from collections import Counter
from dataclasses import dataclass

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, ops
from fpgacnn.plan.workload import (Layer, layer_from_op, layers_from_graph, named_workload,
                                   with_fused_pool)


@dataclass(frozen=True)
class Source:
    name: str
    layers: tuple[Layer, ...]
    graph: Graph | None = None
    bits: tuple[int, int, int] | None = None     # (act_bits, weight_bits, acc_bits)
    others: tuple[tuple[str, str], ...] = ()      # (name, op kind) of the non-GEMM nodes


def load_source(spec: str, input_shape=None) -> Source:
    if spec.startswith("workload:"):
        return Source(spec, tuple(named_workload(spec[len("workload:"):])))
    if spec.endswith(".npz"):
        return _from_qmodel(spec)
    from fpgacnn.frontends import load_model
    graph = load_model(spec, input_shape)
    others = tuple((n.name, n.op.kind) for n in graph.nodes
                   if not isinstance(n.op, (ops.Conv2d, ops.Linear)))
    return Source(spec, tuple(layers_from_graph(graph)), graph, None, others)


def _from_qmodel(path: str) -> Source:
    from fpgacnn.quant.model import QModel
    qm = QModel.load(path)
    shapes = dict(qm.input_shapes)
    layers, others, act_bits, weight_bits = [], [], [], []
    for fmt in qm.input_formats.values():
        act_bits.append(fmt.bits)
    for q in qm.layers:
        in_shapes = [shapes[t] for t in q.inputs]
        shapes[q.name] = tuple(q.op.output_shape(in_shapes))
        if isinstance(q.op, (ops.Conv2d, ops.Linear)):
            users = [u.op for u in qm.layers if q.name in u.inputs]
            layer = layer_from_op(q.name, q.op, in_shapes[0])
            layers.append(with_fused_pool(layer, q.op, users, q.name in qm.outputs))
            act_bits.append(q.output.bits)
            weight_bits.append(q.weight_bits or q.output.bits)
        else:
            others.append((q.name, q.op.kind))
    if not layers:
        raise UserError(f"{path}: the quantized model has no Conv2d or Linear layer")
    return Source(path, tuple(layers), qm.float_graph,
                  (max(act_bits), max(weight_bits), qm.acc_bits), tuple(others))


def describe_others(others) -> str:
    """One line: which non-GEMM nodes the cycle model leaves out, by kind."""
    counts = Counter(kind for _, kind in others)
    return ", ".join(f"{kind} x{n}" for kind, n in sorted(counts.items()))
