"""The static worst-case accumulator check: can any layer's accumulator overflow?"""

from dataclasses import dataclass

import numpy as np

from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, TensorFormat


@dataclass(frozen=True)
class AccumulatorReport:
    layer: str
    worst: int          # largest |accumulator| any input in range can produce
    bits_needed: int    # signed width holding +-worst
    acc_bits: int

    @property
    def fits(self) -> bool:
        return self.bits_needed <= self.acc_bits


def _max_offset(fmt: TensorFormat) -> int:
    """The largest |q - zero_point| of a format."""
    return max(fmt.hi - fmt.zero_point, fmt.zero_point - fmt.lo)


def accumulator_range(layer: QLayer, fin: TensorFormat) -> tuple[np.ndarray, np.ndarray]:
    """Exact smallest and largest accumulator per output channel over all inputs in range.

    Each term w * (x - zp) independently ranges over [w*(lo-zp), w*(hi-zp)] (in some order),
    so the extremes of the sum are the sums of the extremes, plus the bias; both are reached.
    """
    w = layer.weight.reshape(layer.weight.shape[0], -1).astype(np.int64)
    a, b = fin.lo - fin.zero_point, fin.hi - fin.zero_point
    low = np.minimum(w * a, w * b).sum(axis=1)
    high = np.maximum(w * a, w * b).sum(axis=1)
    if layer.bias is not None:
        low, high = low + layer.bias, high + layer.bias
    return low, high


def worst_accumulator(layer: QLayer, in_formats: list[TensorFormat]) -> int:
    """max |acc| over all inputs in range (conv, linear: exact; average pools: sum bound)."""
    op = layer.op
    if isinstance(op, (ops.Conv2d, ops.Linear)):
        low, high = accumulator_range(layer, in_formats[0])
        return int(max(-low.min(), high.max()))
    if isinstance(op, ops.AvgPool):
        return op.kernel[0] * op.kernel[1] * _max_offset(in_formats[0])
    return 0


def check_accumulators(qmodel: QModel) -> list[AccumulatorReport]:
    """One report per conv, linear and average-pool layer.

    >>> [r for r in check_accumulators(qm) if not r.fits]
    []
    """
    reports = []
    for layer in qmodel.layers:
        fmts = [qmodel.format_of(t) for t in layer.inputs]
        if isinstance(layer.op, ops.GlobalAvgPool):
            shape = qmodel.shapes[layer.inputs[0]]
            worst = shape[2] * shape[3] * _max_offset(fmts[0])
        elif isinstance(layer.op, (ops.Conv2d, ops.Linear, ops.AvgPool)):
            worst = worst_accumulator(layer, fmts)
        else:
            continue
        reports.append(AccumulatorReport(layer.name, worst, worst.bit_length() + 1,
                                         qmodel.acc_bits))
    return reports
