"""The operators of the graph IR: one frozen dataclass per op.

Every op knows its output shape from its input shapes (NCHW, or (N, F) for vectors) and the
shapes its parameters must have. Attributes live on the op; tensors (weights, biases, slopes,
BatchNorm statistics, constants) live in the node's `params`.

Padding is always explicit and may be asymmetric: `(top, left, bottom, right)`.
"""

from dataclasses import dataclass
from math import ceil, floor
from typing import ClassVar

from fpgacnn.errors import UserError

Shape = tuple[int, ...]
Pair = tuple[int, int]
Pads = tuple[int, int, int, int]


def _pair(value) -> Pair:
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)


def _pads(value) -> Pads:
    if isinstance(value, int):
        return (value,) * 4
    value = tuple(int(v) for v in value)
    return value * 2 if len(value) == 2 else value


def window_output_size(size, kernel, stride, pad_begin, pad_end, dilation=1, ceil_mode=False):
    """Output length of a sliding window (PyTorch's rule, also ONNX's and Darknet's)."""
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    out = (ceil if ceil_mode else floor)(span / stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1  # the last window must start inside the input or the leading padding
    return out


class Op:
    """Base of all ops. `host` ops run in float on the host, never on the engine."""

    host: ClassVar[bool] = False
    arity: ClassVar[int | None] = 1  # number of inputs; None means any number >= 1

    @property
    def kind(self) -> str:
        return type(self).__name__

    def output_shape(self, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def param_shapes(self, inputs: list[Shape]) -> dict[str, Shape]:
        return {}

    def check_inputs(self, inputs: list[Shape]) -> None:
        if self.arity is not None and len(inputs) != self.arity:
            raise ValueError(f"takes {self.arity} input(s), got {len(inputs)}")
        if self.arity is None and not inputs:
            raise ValueError("needs at least one input")


def _need_rank(shape: Shape, rank: int, what: str = "input") -> None:
    if len(shape) != rank:
        raise ValueError(f"{what} must have rank {rank}, got shape {shape}")


# ---- activations (standalone, or fused into a Conv2d / Linear / Add) -------------------------

@dataclass(frozen=True)
class ReLU(Op):
    pass


@dataclass(frozen=True)
class LeakyReLU(Op):
    alpha: float = 0.01


@dataclass(frozen=True)
class PReLU(Op):
    """Per-channel slope `slope[C]` (or one slope, C=1) for negative inputs."""

    channels: int = 1

    def param_shapes(self, inputs):
        return {"slope": (self.channels,)}


@dataclass(frozen=True)
class Clip(Op):
    """Clamp to [low, high]; ReLU6 is Clip(0, 6)."""

    low: float = 0.0
    high: float = 6.0


ACTIVATIONS = (ReLU, LeakyReLU, PReLU, Clip)
Activation = ReLU | LeakyReLU | PReLU | Clip


def activation_param_shapes(activation, channels) -> dict[str, Shape]:
    if isinstance(activation, PReLU):
        if activation.channels not in (1, channels):
            raise ValueError(f"PReLU has {activation.channels} slopes for {channels} channels")
        return {"slope": (activation.channels,)}
    return {}


# ---- compute layers --------------------------------------------------------------------------

@dataclass(frozen=True)
class Conv2d(Op):
    in_channels: int
    out_channels: int
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pads = (0, 0, 0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True
    activation: Activation | None = None

    def __post_init__(self):
        object.__setattr__(self, "kernel", _pair(self.kernel))
        object.__setattr__(self, "stride", _pair(self.stride))
        object.__setattr__(self, "dilation", _pair(self.dilation))
        object.__setattr__(self, "padding", _pads(self.padding))
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise UserError(f"Conv2d: groups={self.groups} does not divide in_channels="
                            f"{self.in_channels} and out_channels={self.out_channels}")
        if min(self.kernel + self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise UserError(f"Conv2d: kernel, stride and dilation must be >= 1 and padding >= 0 "
                            f"(kernel={self.kernel}, stride={self.stride}, padding={self.padding})")

    @property
    def depthwise(self) -> bool:
        return self.groups == self.in_channels and self.groups > 1

    def output_shape(self, inputs):
        (n, c, h, w), = inputs
        _need_rank(inputs[0], 4)
        if c != self.in_channels:
            raise ValueError(f"expects {self.in_channels} input channels, got {c}")
        t, l, b, r = self.padding
        oh = window_output_size(h, self.kernel[0], self.stride[0], t, b, self.dilation[0])
        ow = window_output_size(w, self.kernel[1], self.stride[1], l, r, self.dilation[1])
        if oh < 1 or ow < 1:
            raise ValueError(f"kernel {self.kernel} does not fit input {h}x{w} with padding "
                             f"{self.padding}")
        return (n, self.out_channels, oh, ow)

    def param_shapes(self, inputs):
        shapes = {"weight": (self.out_channels, self.in_channels // self.groups) + self.kernel}
        if self.bias:
            shapes["bias"] = (self.out_channels,)
        return shapes | activation_param_shapes(self.activation, self.out_channels)


@dataclass(frozen=True)
class Linear(Op):
    in_features: int
    out_features: int
    bias: bool = True
    activation: Activation | None = None

    def output_shape(self, inputs):
        _need_rank(inputs[0], 2)
        if inputs[0][1] != self.in_features:
            raise ValueError(f"expects {self.in_features} input features, got {inputs[0][1]}")
        return (inputs[0][0], self.out_features)

    def param_shapes(self, inputs):
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        return shapes | activation_param_shapes(self.activation, self.out_features)


@dataclass(frozen=True)
class BatchNorm(Op):
    channels: int
    eps: float = 1e-5

    def output_shape(self, inputs):
        if len(inputs[0]) < 2 or inputs[0][1] != self.channels:
            raise ValueError(f"expects {self.channels} channels, got shape {inputs[0]}")
        return inputs[0]

    def param_shapes(self, inputs):
        c = (self.channels,)
        return {"gamma": c, "beta": c, "mean": c, "var": c}


# ---- pooling ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Pool(Op):
    kernel: Pair
    stride: Pair
    padding: Pads = (0, 0, 0, 0)
    ceil_mode: bool = False

    def __post_init__(self):
        object.__setattr__(self, "kernel", _pair(self.kernel))
        object.__setattr__(self, "stride", _pair(self.stride))
        object.__setattr__(self, "padding", _pads(self.padding))
        if min(self.kernel + self.stride) < 1 or min(self.padding) < 0:
            raise UserError(f"{self.kind}: kernel and stride must be >= 1, padding >= 0")

    def output_shape(self, inputs):
        _need_rank(inputs[0], 4)
        n, c, h, w = inputs[0]
        t, l, b, r = self.padding
        oh = window_output_size(h, self.kernel[0], self.stride[0], t, b, 1, self.ceil_mode)
        ow = window_output_size(w, self.kernel[1], self.stride[1], l, r, 1, self.ceil_mode)
        if oh < 1 or ow < 1:
            raise ValueError(f"window {self.kernel} does not fit input {h}x{w}")
        return (n, c, oh, ow)


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max over each window; padding counts as minus infinity.

    Darknet's size-2 stride-1 "same" pool is `MaxPool(2, 1, padding=(0, 0, 1, 1))`.
    """


@dataclass(frozen=True)
class AvgPool(_Pool):
    count_include_pad: bool = True


@dataclass(frozen=True)
class GlobalAvgPool(Op):
    def output_shape(self, inputs):
        _need_rank(inputs[0], 4)
        return inputs[0][:2] + (1, 1)


# ---- shape and routing ops -------------------------------------------------------------------

@dataclass(frozen=True)
class Concat(Op):
    """Concatenation along channels (Darknet's route with several layers)."""

    arity: ClassVar[int | None] = None
    axis: int = 1

    def output_shape(self, inputs):
        first = inputs[0]
        for s in inputs[1:]:
            if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first))
                                            if i != self.axis):
                raise ValueError(f"cannot concatenate shapes {inputs} along axis {self.axis}")
        total = sum(s[self.axis] for s in inputs)
        return first[:self.axis] + (total,) + first[self.axis + 1:]


@dataclass(frozen=True)
class Upsample(Op):
    """Nearest-neighbour upsampling by an integer factor."""

    scale: int = 2

    def output_shape(self, inputs):
        _need_rank(inputs[0], 4)
        n, c, h, w = inputs[0]
        return (n, c, h * self.scale, w * self.scale)


@dataclass(frozen=True)
class Add(Op):
    """Element-wise sum of two tensors of one shape (a residual connection)."""

    arity: ClassVar[int | None] = 2
    activation: Activation | None = None

    def output_shape(self, inputs):
        if inputs[0] != inputs[1]:
            raise ValueError(f"adds tensors of different shapes {inputs[0]} and {inputs[1]}")
        return inputs[0]

    def param_shapes(self, inputs):
        return activation_param_shapes(self.activation, inputs[0][1])


@dataclass(frozen=True)
class ChannelShuffle(Op):
    """ShuffleNet's channel shuffle: view C as (groups, C/groups), transpose, flatten back.

    Output channel `i * groups + g` is input channel `g * (C / groups) + i`.
    """

    groups: int = 2

    def output_shape(self, inputs):
        _need_rank(inputs[0], 4)
        if inputs[0][1] % self.groups:
            raise ValueError(f"{inputs[0][1]} channels do not split into {self.groups} groups")
        return inputs[0]


@dataclass(frozen=True)
class Flatten(Op):
    def output_shape(self, inputs):
        n, *rest = inputs[0]
        size = 1
        for d in rest:
            size *= d
        return (n, size)


@dataclass(frozen=True)
class Dropout(Op):
    pass


@dataclass(frozen=True)
class Identity(Op):
    pass


@dataclass(frozen=True)
class Constant(Op):
    """A tensor known before run time; `params["value"]` holds it."""

    arity: ClassVar[int | None] = 0
    shape: Shape = ()

    def output_shape(self, inputs):
        return tuple(self.shape)

    def param_shapes(self, inputs):
        return {"value": tuple(self.shape)}


# ---- host ops: run in float on the dequantized tensor ----------------------------------------

@dataclass(frozen=True)
class Softmax(Op):
    host: ClassVar[bool] = True
    axis: int = 1


@dataclass(frozen=True)
class LRN(Op):
    """Local response normalisation across channels (ONNX's definition)."""

    host: ClassVar[bool] = True
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 1.0


@dataclass(frozen=True)
class YoloHead(Op):
    """Darknet's [yolo] layer: logistic on x, y, objectness and classes of each masked anchor."""

    host: ClassVar[bool] = True
    anchors: tuple[tuple[int, int], ...] = ()
    mask: tuple[int, ...] = ()
    classes: int = 80

    def output_shape(self, inputs):
        _need_rank(inputs[0], 4)
        expected = len(self.mask) * (5 + self.classes)
        if inputs[0][1] != expected:
            raise ValueError(f"needs {expected} channels for {len(self.mask)} anchors and "
                             f"{self.classes} classes, got {inputs[0][1]}")
        return inputs[0]


ALL_OPS = (ReLU, LeakyReLU, PReLU, Clip, Conv2d, Linear, BatchNorm, MaxPool, AvgPool,
           GlobalAvgPool, Concat, Upsample, Add, ChannelShuffle, Flatten, Dropout, Identity,
           Constant, Softmax, LRN, YoloHead)
FUSES_ACTIVATION = (Conv2d, Linear, Add)
