"""The golden executor: runs a QModel in integers, layer by layer."""

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.golden.convert import dequantize, quantize_tensor
from fpgacnn.golden.ops import run_layer
from fpgacnn.golden.requant import RangeError
from fpgacnn.quant.model import QModel, TensorFormat


def _as_input_dict(qmodel: QModel, x) -> dict:
    if isinstance(x, dict):
        return x
    if len(qmodel.input_shapes) != 1:
        raise UserError(f"{qmodel.name}: has inputs {list(qmodel.input_shapes)}; "
                        f"give a dict by input name")
    (name,) = qmodel.input_shapes
    return {name: x}


def _check_input(qmodel: QModel, name: str, x) -> np.ndarray:
    x = np.asarray(x)
    expected = qmodel.input_shapes[name]
    if x.ndim != len(expected) or tuple(x.shape[1:]) != tuple(expected[1:]):
        raise UserError(f"input {name!r} has shape {x.shape}, expected (N,) + "
                        f"{tuple(expected[1:])}")
    fmt = qmodel.input_formats[name]
    if not np.issubdtype(x.dtype, np.integer):
        raise UserError(f"input {name!r} has dtype {x.dtype}; the golden model takes integers "
                        f"(use quantize_input)")
    if x.size and (x.min() < fmt.lo or x.max() > fmt.hi):
        raise UserError(f"input {name!r} has values outside [{fmt.lo}, {fmt.hi}]")
    return x.astype(np.int64)


def run(qmodel: QModel, x_int, keep: bool = False) -> dict[str, np.ndarray]:
    """Run `qmodel` on integer input(s); returns the outputs (every tensor if `keep`) by name.

    The batch size may differ from the one the model was quantized with.
    >>> y = run(qm, quantize_input(qm, x_float))["fc2"]          # int64 array
    """
    given = _as_input_dict(qmodel, x_int)
    values = {}
    for name in qmodel.input_shapes:
        if name not in given:
            raise UserError(f"input {name!r} is not given")
        values[name] = _check_input(qmodel, name, given[name])
    for layer in qmodel.layers:
        xs = [values[t] for t in layer.inputs]
        fmts = [qmodel.format_of(t) for t in layer.inputs]
        try:
            values[layer.name] = run_layer(layer, xs, fmts, qmodel.rounding)
        except RangeError as e:
            raise UserError(f"layer {layer.name!r}: {e}") from None
    wanted = values.keys() if keep else qmodel.outputs
    return {k: values[k] for k in wanted}


def quantize_input(qmodel: QModel, x, name: str | None = None) -> np.ndarray:
    """The float input `x` as the integers the model takes (its input format)."""
    name = name or next(iter(qmodel.input_shapes))
    return quantize_tensor(x, qmodel.input_formats[name])
