"""Graph passes: each takes a Graph and returns a new Graph that computes the same function.

`simplify` runs the standard pipeline, in order: remove dropout/identity, fold constants,
fold BatchNorm into the preceding conv/linear, fuse activations into their producer.
"""

from dataclasses import replace

import numpy as np
import torch

from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph, Node
from fpgacnn.ir.reference import run_node


def _rename_uses(nodes, outputs, old, new):
    nodes = [n.with_(inputs=tuple(new if t == old else t for t in n.inputs)) for n in nodes]
    return nodes, [new if t == old else t for t in outputs]


def _splice_out(graph: Graph, node: Node, keep_name: str) -> Graph:
    """Drop `node`, whose output equals tensor `keep_name`; uses of it read `keep_name`."""
    nodes = [n for n in graph.nodes if n is not node]
    nodes, outputs = _rename_uses(nodes, graph.outputs, node.name, keep_name)
    return graph.with_nodes(nodes, outputs)


def remove_identities(graph: Graph) -> Graph:
    """Dropout (at inference) and Identity pass their input through: remove them."""
    for node in graph.nodes:
        if isinstance(node.op, (ops.Dropout, ops.Identity)):
            if node.name in graph.outputs and node.inputs[0] in graph.inputs:
                continue  # an output that is a graph input: keep the node
            return remove_identities(_splice_out(graph, node, node.inputs[0]))
    return graph


def fold_constants(graph: Graph) -> Graph:
    """Evaluate every node whose inputs are all constants; drop constants nobody uses."""
    nodes = list(graph.nodes)
    const = {n.name: n.params["value"] for n in nodes if isinstance(n.op, ops.Constant)}
    for i, node in enumerate(nodes):
        if node.inputs and all(t in const for t in node.inputs):
            args = [torch.as_tensor(const[t]) for t in node.inputs]
            params = {k: torch.as_tensor(v) for k, v in node.params.items()}
            value = run_node(node, args, params).numpy()
            const[node.name] = value
            nodes[i] = Node(node.name, ops.Constant(tuple(value.shape)), (), {"value": value})
    used = {t for n in nodes for t in n.inputs} | set(graph.outputs)
    nodes = [n for n in nodes if not isinstance(n.op, ops.Constant) or n.name in used]
    return graph.with_nodes(nodes)


def _sole_consumer(graph: Graph, tensor: str) -> bool:
    return tensor not in graph.outputs and len(graph.consumers(tensor)) == 1


def fold_batchnorm(graph: Graph) -> Graph:
    """Fold a BatchNorm into the conv or linear layer before it (scale weights, shift bias)."""
    for bn in graph.nodes:
        if not isinstance(bn.op, ops.BatchNorm):
            continue
        prev = graph.producer(bn.inputs[0])
        if (prev is None or not isinstance(prev.op, (ops.Conv2d, ops.Linear))
                or prev.op.activation is not None or not _sole_consumer(graph, prev.name)):
            continue
        p = bn.params
        scale = p["gamma"].astype(np.float64) / np.sqrt(p["var"].astype(np.float64) + bn.op.eps)
        weight = prev.params["weight"].astype(np.float64)
        bias = prev.params.get("bias", np.zeros(weight.shape[0])).astype(np.float64)
        dtype = prev.params["weight"].dtype
        folded_weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
        folded_bias = (bias - p["mean"]) * scale + p["beta"]
        folded = prev.with_(op=replace(prev.op, bias=True),
                            params={**prev.params, "weight": folded_weight.astype(dtype),
                                    "bias": folded_bias.astype(dtype)})
        nodes = [folded if n is prev else n for n in graph.nodes]
        return fold_batchnorm(_splice_out(graph.with_nodes(nodes), bn, prev.name))
    return graph


def fuse_activations(graph: Graph) -> Graph:
    """Fuse ReLU/LeakyReLU/PReLU/Clip into the conv, linear or add that produces its input."""
    for act in graph.nodes:
        if not isinstance(act.op, ops.ACTIVATIONS):
            continue
        prev = graph.producer(act.inputs[0])
        if (prev is None or not isinstance(prev.op, ops.FUSES_ACTIVATION)
                or prev.op.activation is not None or not _sole_consumer(graph, prev.name)):
            continue
        if isinstance(act.op, ops.PReLU) and act.op.channels not in (1, graph.shapes[prev.name][1]):
            continue
        fused = prev.with_(op=replace(prev.op, activation=act.op),
                           params={**prev.params, **act.params})
        nodes = [fused if n is prev else n for n in graph.nodes]
        return fuse_activations(_splice_out(graph.with_nodes(nodes), act, prev.name))
    return graph


PIPELINE = (remove_identities, fold_constants, fold_batchnorm, fuse_activations)


def simplify(graph: Graph, passes=PIPELINE) -> Graph:
    """Run `passes` in order (the standard pipeline by default)."""
    for graph_pass in passes:
        graph = graph_pass(graph)
    return graph
