"""The quantized model: every tensor's integer format and every layer's integer parameters.

A `QModel` is what quantization produces and what the golden model, the exporter, the engine
and the training code consume. It is plain data (frozen dataclasses holding numpy arrays);
`save`/`load` write it to one `.npz` file with a JSON header (no pickle). The meaning of each
field is documented in docs/numerics.md ("The data model").

    >>> qm = QModel.load("digits.q.npz")
    >>> qm.layer("conv1").weight.dtype, qm.layer("conv1").requant.mode
    (dtype('int8'), 'gemmlowp')
"""

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, ops
from fpgacnn.ir.ops import Shape

SCHEMES = ("pow2", "affine")
MODES = ("shift", "gemmlowp", "single_round", "float32")
AFFINE_MODES = ("gemmlowp", "single_round", "float32")


@dataclass(frozen=True)
class TensorFormat:
    """An integer tensor: real = scale * (q - zero_point), q in [lo, hi] of `bits` bits.

    For the pow2 scheme `frac_bits` is set, scale == 2**-frac_bits and zero_point == 0.
    >>> TensorFormat(8, False, 0.05, 3).lo, TensorFormat(8, True, 2**-4, 0, 4).hi
    (0, 127)
    """

    bits: int
    signed: bool
    scale: float
    zero_point: int = 0
    frac_bits: int | None = None

    def __post_init__(self):
        if not isinstance(self.bits, (int, np.integer)) or not 2 <= self.bits <= 16:
            raise UserError(f"bits must be an integer in 2..16, got {self.bits!r}")
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "zero_point", int(self.zero_point))
        if self.frac_bits is not None:
            object.__setattr__(self, "frac_bits", int(self.frac_bits))
        if not self.scale > 0:
            raise UserError(f"scale must be positive, got {self.scale}")
        if not self.lo <= self.zero_point <= self.hi:
            raise UserError(f"zero point {self.zero_point} is outside [{self.lo}, {self.hi}]")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


@dataclass(frozen=True, eq=False)
class Requant:
    """Turns an int accumulator (at scale s_acc) into an integer at scale s_out, per channel.

    `multiplier` and `shift` have one entry per output channel, or one for the whole tensor.
    - mode "shift" (pow2): y = round(acc / 2**shift) with `rounding`; shift < 0 shifts left.
    - "gemmlowp": y = RoundingDivideByPOT(SRDHM(acc * 2**max(shift,0), M0), max(-shift,0)),
      multiplier = M0 (Q31 int), real multiplier = M0 * 2**(shift - 31).
    - "single_round": y = (acc * M0 + 2**(30 - shift)) >> (31 - shift): one rounding, half up.
    - "float32": y = round_half_even(float32(acc) * multiplier), multiplier a float32 value.
    """

    mode: str
    multiplier: np.ndarray
    shift: np.ndarray
    rounding: str = "half_up"

    def __post_init__(self):
        if self.mode not in MODES:
            raise UserError(f"requantization mode must be one of {', '.join(MODES)}, "
                            f"not {self.mode!r}")
        dtype = np.float32 if self.mode == "float32" else np.int64
        object.__setattr__(self, "multiplier", np.atleast_1d(np.asarray(self.multiplier, dtype)))
        object.__setattr__(self, "shift", np.atleast_1d(np.asarray(self.shift, np.int64)))

    @property
    def real(self) -> np.ndarray:
        """The real multiplier each channel applies (float64)."""
        if self.mode == "shift":
            return 2.0 ** -self.shift.astype(np.float64)
        if self.mode == "float32":
            return self.multiplier.astype(np.float64)
        return self.multiplier.astype(np.float64) * 2.0 ** (self.shift.astype(np.float64) - 31)


@dataclass(frozen=True, eq=False)
class QLayer:
    """One layer in integers; `op` is the IR op (kernel, stride, fused activation kind ...).

    - weight: int8/int16 array (IR weight shape), symmetric (zero point 0), `weight_bits` wide;
      weight_scale: float64 per output channel (or one); real weight = weight_scale * weight.
    - bias: int64 per output channel at scale s_in * weight_scale (added to the accumulator).
    - requant: accumulator -> output integer (conv, linear, avg pools).
    - input_requants: one Requant per input (concat, add) bringing it to the output scale,
      or None where an input already has the output's format.
    - act_multiplier/act_shift: LeakyReLU (one) or PReLU (per channel) slope as the signed
      integer act_multiplier / 2**act_shift, applied to negative values.
    - act_slope: float32 mode only, a standalone LeakyReLU (one) or PReLU (per channel): the
      float32 slope applied to the dequantized value, as onnxruntime does.
    - out_lo/out_hi: saturation bounds of the output integer (ReLU and Clip folded in).
    - host: runs in float on the dequantized input (softmax, LRN, YOLO head).
    """

    name: str
    op: ops.Op
    inputs: tuple[str, ...]
    output: TensorFormat
    out_lo: int
    out_hi: int
    weight: np.ndarray | None = None
    weight_scale: np.ndarray | None = None
    weight_bits: int | None = None
    bias: np.ndarray | None = None
    requant: Requant | None = None
    input_requants: tuple[Requant | None, ...] = ()
    act_multiplier: np.ndarray | None = None
    act_shift: int = 0
    act_slope: np.ndarray | None = None

    @property
    def host(self) -> bool:
        return self.op.host

    @property
    def kind(self) -> str:
        return self.op.kind


@dataclass(frozen=True, eq=False)
class QModel:
    """A quantized network: layers in topological order, each producing the tensor of its name.

    `input_formats` gives the format of each graph input (shape in `input_shapes`).
    `float_graph` is the float model it came from (BatchNorm folded), used by `verify`.
    `shapes` gives every tensor's shape at the batch size of `input_shapes`.
    """

    name: str
    scheme: str
    mode: str
    rounding: str
    acc_bits: int
    input_shapes: Mapping[str, Shape]
    input_formats: Mapping[str, TensorFormat]
    layers: tuple[QLayer, ...]
    outputs: tuple[str, ...]
    float_graph: Graph | None = None
    shapes: Mapping[str, Shape] = field(init=False, repr=False)
    _by_name: Mapping[str, QLayer] = field(init=False, repr=False)

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise UserError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        object.__setattr__(self, "input_shapes", MappingProxyType(
            {k: tuple(v) for k, v in self.input_shapes.items()}))
        object.__setattr__(self, "input_formats", MappingProxyType(dict(self.input_formats)))
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "_by_name", MappingProxyType({l.name: l for l in self.layers}))
        object.__setattr__(self, "shapes", MappingProxyType(self._infer_shapes()))

    def _infer_shapes(self) -> dict[str, Shape]:
        shapes = dict(self.input_shapes)
        for layer in self.layers:
            missing = [t for t in layer.inputs if t not in shapes]
            if missing:
                raise UserError(f"{self.name}: layer {layer.name!r} uses {missing[0]!r} "
                                f"before it is defined")
            try:
                shape = layer.op.output_shape([shapes[t] for t in layer.inputs])
            except (ValueError, IndexError) as e:
                raise UserError(f"{self.name}: layer {layer.name!r} ({layer.kind}): {e}") from None
            shapes[layer.name] = tuple(shape)
        return shapes

    def layer(self, name: str) -> QLayer:
        try:
            return self._by_name[name]
        except KeyError:
            raise UserError(f"{self.name}: no layer named {name!r}") from None

    def format_of(self, tensor: str) -> TensorFormat:
        """The integer format of a tensor (a graph input or a layer's output)."""
        if tensor in self.input_formats:
            return self.input_formats[tensor]
        return self.layer(tensor).output

    def save(self, path) -> None:
        from fpgacnn.quant.serialize import save_qmodel
        save_qmodel(self, path)

    @staticmethod
    def load(path) -> "QModel":
        from fpgacnn.quant.serialize import load_qmodel
        return load_qmodel(path)
