"""The golden executor: runs a QModel in integers, layer by layer.

Layers whose tensors fit 8 bits run on the fast path (`fpgacnn.golden.fast`, int8 torch
tensors, channels-last); the others run the numpy definition (`fpgacnn.golden.ops`). Each
tensor is converted between the two forms only when a layer of the other kind reads it.
"""

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.golden import fast, workers
from fpgacnn.golden.convert import dequantize, quantize_tensor
from fpgacnn.golden.ops import run_layer
from fpgacnn.golden.requant import RangeError
from fpgacnn.golden.stored import image_blocks, to_codes, to_stored
from fpgacnn.quant.model import QModel


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
    if x.size and not _dtype_within(x.dtype, fmt) and _values_outside(x, fmt):
        raise UserError(f"input {name!r} has values outside [{fmt.lo}, {fmt.hi}]")
    return x


def _values_outside(x: np.ndarray, fmt) -> bool:
    """Whether x has values outside fmt's range, looked at in blocks of images on the workers."""
    found = []

    def look(images: slice):
        block = x[images]
        found.append(block.min() < fmt.lo or block.max() > fmt.hi)
    workers.for_each(look, image_blocks(x))
    return any(found)


def _dtype_within(dtype: np.dtype, fmt) -> bool:
    """Whether every value of the integer dtype lies in fmt's range (no need to look)."""
    limits = np.iinfo(dtype)
    return fmt.lo <= limits.min and limits.max <= fmt.hi


class _Tensors:
    """Every tensor as int64 numpy codes and/or a stored int8 torch tensor, made on demand;
    a model input also as given (checked codes of any integer dtype), converted from there."""

    def __init__(self, qmodel: QModel):
        self.format_of = qmodel.format_of
        self.given: dict[str, np.ndarray] = {}
        self.codes: dict[str, np.ndarray] = {}
        self.stored: dict = {}

    def numpy(self, name: str) -> np.ndarray:
        if name not in self.codes:
            self.codes[name] = (self.given[name].astype(np.int64) if name in self.given else
                                to_codes(self.stored[name], self.format_of(name)))
        return self.codes[name]

    def torch(self, name: str):
        if name not in self.stored:
            codes = self.given[name] if name in self.given else self.codes[name]
            self.stored[name] = to_stored(codes, self.format_of(name))
        return self.stored[name]

    def shape(self, name: str) -> tuple:
        for values in (self.codes, self.given, self.stored):
            if name in values:
                return tuple(values[name].shape)
        raise KeyError(name)


def _run_layer(layer, tensors: _Tensors, fmts, rounding: str, use_fast: bool) -> None:
    shapes = [tensors.shape(t) for t in layer.inputs]
    kernel = fast.kernel_for(layer, fmts, shapes) if use_fast else None
    if kernel is not None:
        with workers.torch_threads_as_workers():
            xs = [tensors.torch(t) for t in layer.inputs]
            tensors.stored[layer.name] = kernel(layer, xs, fmts, rounding)
        return
    xs = [tensors.numpy(t) for t in layer.inputs]
    if layer.host:      # small float post-processing: not worth a thread team per op
        with workers.torch_threads_as_workers():
            tensors.codes[layer.name] = run_layer(layer, xs, fmts, rounding)
    else:
        tensors.codes[layer.name] = run_layer(layer, xs, fmts, rounding)


def run(qmodel: QModel, x_int, keep: bool = False, fast_path: bool = True
        ) -> dict[str, np.ndarray]:
    """Run `qmodel` on integer input(s); returns the outputs (every tensor if `keep`) by name.

    The batch size may differ from the one the model was quantized with. `fast_path=False`
    runs every layer through the numpy definition (same results, slower).
    >>> y = run(qm, quantize_input(qm, x_float))["fc2"]          # int64 array
    """
    given = _as_input_dict(qmodel, x_int)
    tensors = _Tensors(qmodel)
    for name in qmodel.input_shapes:
        if name not in given:
            raise UserError(f"input {name!r} is not given")
        tensors.given[name] = _check_input(qmodel, name, given[name])
    for layer in qmodel.layers:
        fmts = [qmodel.format_of(t) for t in layer.inputs]
        try:
            _run_layer(layer, tensors, fmts, qmodel.rounding, fast_path)
        except RangeError as e:
            raise UserError(f"layer {layer.name!r}: {e}") from None
    wanted = list(qmodel.input_shapes) + [l.name for l in qmodel.layers] if keep else \
        qmodel.outputs
    return {k: tensors.numpy(k) for k in wanted}


def quantize_input(qmodel: QModel, x, name: str | None = None) -> np.ndarray:
    """The float input `x` as the integers the model takes (its input format)."""
    name = name or next(iter(qmodel.input_shapes))
    return quantize_tensor(x, qmodel.input_formats[name])
