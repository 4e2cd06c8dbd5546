"""Quantization: schemes, observers, calibration and the quantized-model data model.

    >>> from fpgacnn.quant import QuantConfig, quantize, QModel
    >>> qm = quantize(graph, calib, QuantConfig(scheme="pow2", bits=8))
    >>> qm.save("net.q.npz"); qm = QModel.load("net.q.npz")
"""

from fpgacnn.quant.model import QLayer, QModel, Requant, TensorFormat
from fpgacnn.quant.overflow import check_accumulators
from fpgacnn.quant.quantize import QuantConfig, quantize

__all__ = ["QLayer", "QModel", "Requant", "TensorFormat", "QuantConfig", "quantize",
           "check_accumulators"]
