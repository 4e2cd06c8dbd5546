"""The graph IR: ops, graphs, shape inference, passes and the float reference executor."""

from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph, Node, infer_shapes
from fpgacnn.ir.passes import (PIPELINE, fold_batchnorm, fold_constants, fuse_activations,
                               remove_identities, simplify)
from fpgacnn.ir.reference import run_float

__all__ = ["ops", "Graph", "Node", "infer_shapes", "PIPELINE", "fold_batchnorm",
           "fold_constants", "fuse_activations", "remove_identities", "simplify", "run_float"]
