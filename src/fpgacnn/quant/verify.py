"""How good and how exact a quantized model is: per-layer SQNR against the float model,
accuracy of both models, and element mismatches against onnxruntime.

    >>> report = verify(qmodel, x_test, y_test)
    >>> report.float_accuracy, report.int_accuracy, report.layers[0].sqnr_db
"""

from dataclasses import asdict, dataclass

import numpy as np

from fpgacnn import golden
from fpgacnn.errors import UserError
from fpgacnn.ir import run_float
from fpgacnn.quant.calibrate import check_calibration, with_batch
from fpgacnn.quant.model import QModel


@dataclass(frozen=True)
class LayerCheck:
    name: str
    op: str
    host: bool
    sqnr_db: float | None          # None without a float model
    onnx_mismatches: int | None    # None when onnxruntime was not run
    elements: int


@dataclass(frozen=True)
class VerifyReport:
    model: str
    samples: int
    layers: tuple[LayerCheck, ...]
    float_accuracy: float | None
    int_accuracy: float | None
    onnx_status: str               # "compared", or why onnxruntime was not run

    def as_dict(self) -> dict:
        return asdict(self) | {"layers": [asdict(l) for l in self.layers]}


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (ref - approx)^2); inf when they are equal.

    >>> round(sqnr_db(np.array([1.0, 2.0]), np.array([1.0, 2.1])), 1)
    26.9
    """
    signal = float(np.sum(np.square(reference, dtype=np.float64)))
    noise = float(np.sum(np.square(reference - approx, dtype=np.float64)))
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return 10 * np.log10(signal / noise)


def _accuracy(logits: np.ndarray, labels) -> float | None:
    if labels is None:
        return None
    return float(np.mean(logits.reshape(len(labels), -1).argmax(axis=1) == labels))


def onnxruntime_outputs(qmodel: QModel, x_int: np.ndarray):
    """Every layer's tensor from onnxruntime, or (None, reason) when it cannot express it."""
    from fpgacnn.quant.to_onnx import run_onnxruntime, to_onnx
    try:
        model = to_onnx(qmodel, all_layers=True)
    except UserError as e:
        return None, f"not compared: {e}"
    return run_onnxruntime(model, x_int), "compared"


def verify(qmodel: QModel, x: np.ndarray, labels=None, use_onnxruntime: bool = True,
           batch: int = 64) -> VerifyReport:
    """Run float, golden and (if possible) onnxruntime on float inputs `x` (N, C, H, W)."""
    graph = qmodel.float_graph
    if graph is not None:
        x = check_calibration(graph, x, "verify data")
    if labels is not None and len(labels) != len(x):
        raise UserError(f"verify data: {len(labels)} labels for {len(x)} inputs")
    x_int = golden.quantize_input(qmodel, x)
    ints = _batched(lambda xi: golden.run(qmodel, xi, keep=True), x_int, batch)
    floats = None
    if graph is not None:
        floats = _batched(lambda xf: run_float(with_batch(graph, len(xf)), xf, keep=True), x,
                          batch)
    onnx_values, status = (onnxruntime_outputs(qmodel, x_int) if use_onnxruntime
                           else (None, "not compared: disabled"))
    layers = []
    for layer in qmodel.layers:
        value = ints[layer.name]
        sq = None
        if floats is not None and layer.name in floats:
            sq = sqnr_db(floats[layer.name], golden.dequantize(value, layer.output))
        mism = None if onnx_values is None else int(np.sum(onnx_values[layer.name] != value))
        layers.append(LayerCheck(layer.name, layer.kind, layer.host, sq, mism, int(value.size)))
    out = qmodel.outputs[0]
    return VerifyReport(
        qmodel.name, len(x), tuple(layers),
        _accuracy(floats[out], labels) if floats is not None else None,
        _accuracy(golden.dequantize(ints[out], qmodel.format_of(out)), labels), status)


def _batched(fn, x, batch):
    parts = [fn(x[i:i + batch]) for i in range(0, len(x), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
