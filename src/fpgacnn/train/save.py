"""The trained model as a file: the quantized-model format of fpgacnn.quant (pow2 scheme).

The trained weights are fixed-point values (powers of two apart), so the float graph that holds
them loses nothing; `quant.quantize` with the pow2 scheme then gives every tensor its static
inference format from calibration inputs, and `QModel.save` writes the one-file `.npz`.

>>> qmodel = trained_qmodel(graph, result.params, x_train[:256], Widths(bits=16))
>>> qmodel.save("digits.trained.q.npz")
"""

import numpy as np

from fpgacnn.ir.graph import Graph
from fpgacnn.train.settings import Widths


def trained_graph(graph: Graph, params) -> Graph:
    """`graph` with its trainable parameters replaced by `params[node][key]`."""
    nodes = [n.with_(params={**n.params, **params[n.name]}) if n.name in params else n
             for n in graph.nodes]
    return graph.with_nodes(nodes)


def trained_qmodel(graph: Graph, params, calibration, widths: Widths):
    """The quantized model (pow2, `widths.bits` wide) of the trained graph."""
    from fpgacnn.quant import QuantConfig, quantize

    config = QuantConfig(scheme="pow2", bits=widths.bits, acc_bits=widths.acc_bits)
    return quantize(trained_graph(graph, params), np.asarray(calibration, np.float32), config)
