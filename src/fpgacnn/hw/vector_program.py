"""The vector unit's program: one descriptor per non-conv layer, and the compiler that makes it.

`VectorDescriptor` is the one definition of the descriptor format, a `program.Descriptor`
like the engine's: its fields (least significant first) and their bit widths give both
`pack()`/`to_bytes()` and `vector_layout()`, the Amaranth layout the unit decodes.

Every op is the same walk (docs/vector_unit.md): for each channel block, each output pixel,
read the input words of its window (rows `by .. by+kernel_h`, columns `bx .. bx+kernel_w`,
clipped to the input), bring each to the output scale (the "pre" requantization, per input),
reduce the window (max or sum), then requantize, activate and saturate (the "post" stage).

    >>> d = compile_vector_layer(pool, HardwareConfig(), {"inputs": [0], "output": 4096,
    ...                          "params": 8192}, input_shapes=[(1, 8, 9, 9)],
    ...                          input_formats=[fmt], rounding="half_up")    # doctest: +SKIP
"""

from dataclasses import dataclass

import numpy as np

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.golden.arith import ROUNDINGS
from fpgacnn.hw.program import (MODES, Descriptor, _f, check_activation_slope,
                                feature_row_bytes)
from fpgacnn.ir import ops
from fpgacnn.quant.model import Requant

OPS = ("MAXPOOL", "AVGPOOL", "GLOBAL_AVGPOOL", "ADD", "COPY")
MAXPOOL, AVGPOOL, GLOBAL_AVGPOOL, ADD, COPY = range(len(OPS))
ELEMENTWISE = (ops.Upsample, ops.ReLU, ops.LeakyReLU, ops.PReLU, ops.Clip)
PARAM_ROWS = ("pre_multiplier0", "pre_shift0", "pre_multiplier1", "pre_shift1",
              "post_multiplier", "post_shift", "slope")
PRE_BITS = 32                   # the pre stage (hw.vec_rescale) saturates to int32
PRE_LIMIT = (1 << (PRE_BITS - 1)) - 1
IDENTITY = Requant("shift", np.array([1]), np.array([0]), "half_up")


@dataclass(frozen=True)
class VectorDescriptor(Descriptor):
    """One layer for the vector unit; every field an integer of the width in its metadata."""

    op: int = _f(3)                 # index into OPS
    two_inputs: int = _f(1)         # ADD: every window reads input 0 then input 1
    pre_mode: int = _f(2)           # index into program.MODES
    pre_rounding: int = _f(2)       # index into golden.arith.ROUNDINGS
    post_mode: int = _f(2)
    post_rounding: int = _f(2)
    act_rounding: int = _f(2)
    act: int = _f(1)                # negative values are multiplied by the slope
    act_shift: int = _f(6)
    in_signed0: int = _f(1)
    in_signed1: int = _f(1)
    in_zero0: int = _f(18, True)
    in_zero1: int = _f(18, True)
    out_zero: int = _f(18, True)
    out_lo: int = _f(18, True)
    out_hi: int = _f(18, True)
    kernel_h: int = _f(12)          # window rows (the whole input for a global pool)
    kernel_w: int = _f(12)
    step_h: int = _f(4)             # the window moves `step` input rows ...
    step_w: int = _f(4)
    repeat_h: int = _f(4)           # ... every `repeat` output rows (upsample: step 1)
    repeat_w: int = _f(4)
    pad_top: int = _f(4)
    pad_left: int = _f(4)
    in_h: int = _f(12)
    in_w: int = _f(12)
    out_h: int = _f(12)
    out_w: int = _f(12)
    blocks: int = _f(10)            # channel blocks of L
    channels: int = _f(14)          # real channels; lanes beyond are written as 0
    in_row_bytes: int = _f(24)
    in_plane_bytes: int = _f(32)
    out_bytes: int = _f(32)         # the whole output: blocks * out_h * out_w words
    param_step: int = _f(16)        # bytes between block records (0: one record for all)
    in_addr0: int = _f(32)
    in_addr1: int = _f(32)
    out_addr: int = _f(32)
    param_addr: int = _f(32)

    def to_bytes(self) -> bytes:
        """VECTOR_STRIDE bytes: the unit fetches whole memory words, at most 64 bytes."""
        return self.to_int().to_bytes(VECTOR_STRIDE, "little")


VECTOR_BITS = VectorDescriptor.bits()
VECTOR_WORDS = VectorDescriptor.words()
VECTOR_STRIDE = -(-VECTOR_WORDS * 4 // 64) * 64


def vector_layout():
    """The Amaranth StructLayout of a VectorDescriptor."""
    return VectorDescriptor.layout()


def record_bytes(config: HardwareConfig) -> int:
    """Bytes of one block's parameter record: PARAM_ROWS x L int32, padded to whole words."""
    word = config.ddr_width_bits // 8
    return -(-len(PARAM_ROWS) * config.tn * 4 // word) * word


# ---- parameters ------------------------------------------------------------------------------

def _pre_requants(layer, k):
    """The requantization of each input before the window reduction (None: identity)."""
    if isinstance(layer.op, ops.Concat):
        return [layer.input_requants[k]]
    if isinstance(layer.op, ops.Add):
        return list(layer.input_requants)
    if isinstance(layer.op, ELEMENTWISE) and layer.input_requants:
        return [layer.input_requants[0]]
    return [None]


def _post_requant(layer):
    if isinstance(layer.op, (ops.AvgPool, ops.GlobalAvgPool, ops.Add)):
        return layer.requant
    return IDENTITY


def _hw_requant(layer, rq, what):
    """`rq` as the hardware runs it: shift mode folds a left shift into the multiplier."""
    rq = IDENTITY if rq is None else rq
    if rq.mode not in MODES:
        raise UserError(f"layer {layer.name!r}: {what} requantization mode {rq.mode!r} is not "
                        f"supported by the vector unit (supported: {', '.join(MODES)})")
    mult, shift = rq.multiplier.astype(np.int64), rq.shift.astype(np.int64)
    if rq.mode == "shift":
        left = np.maximum(-shift, 0)
        if np.any(left > 31):
            raise UserError(f"layer {layer.name!r}: {what} left shift {left.max()} is beyond 31")
        mult, shift = mult << left, np.maximum(shift, 0)
    lo, hi = (0, 62) if rq.mode == "shift" else (-31, 30)
    if np.any(np.abs(mult) >= 1 << 31) or shift.min() < lo or shift.max() > hi:
        raise UserError(f"layer {layer.name!r}: {what} requantization (multiplier "
                        f"{mult.min()}..{mult.max()}, shift {shift.min()}..{shift.max()}) is "
                        f"outside the vector unit's range (int32, shift {lo}..{hi})")
    return rq.mode, rq.rounding, mult, shift


def _gain(mode, mult, shift) -> float:
    """The largest real factor of a hardware requantization."""
    if mode == "shift":
        return float(np.max(np.abs(mult) * 2.0 ** -shift.astype(np.float64)))
    return float(np.max(np.abs(mult) * 2.0 ** (shift.astype(np.float64) - 31)))


def vector_params(layer, config: HardwareConfig, k=None) -> bytes:
    """The parameter record(s) the unit reads for `layer` (input `k` of a Concat).

    One record per channel block of L: rows PARAM_ROWS, L int32 each (little-endian), the
    record zero-padded to whole memory words. When every value is per tensor there is a single
    record, used for every block (the descriptor's `param_step` is 0).
    """
    l = config.tn
    pre = [_hw_requant(layer, rq, "input") for rq in _pre_requants(layer, k)]
    pre += pre[:1] * (2 - len(pre))
    post = _hw_requant(layer, _post_requant(layer), "output")
    slope = np.zeros(1, np.int64) if layer.act_multiplier is None \
        else np.asarray(layer.act_multiplier, np.int64)
    rows = [pre[0][2], pre[0][3], pre[1][2], pre[1][3], post[2], post[3], slope]
    channels = max(np.size(r) for r in rows)
    padded = -(-channels // l) * l
    table = np.zeros((len(rows), padded), np.int64)
    for i, r in enumerate(rows):
        table[i, :channels] = np.broadcast_to(np.asarray(r).ravel(), (channels,))
    if channels == 1:
        table[:] = table[:, :1]
    records = table.reshape(len(rows), -1, l).transpose(1, 0, 2).astype("<i4")
    pad = record_bytes(config) - len(PARAM_ROWS) * l * 4
    return b"".join(r.tobytes() + bytes(pad) for r in records)


# ---- the compiler ----------------------------------------------------------------------------

def _limit(name, what, value, limit):
    if value > limit:
        raise UserError(f"layer {name!r}: {what} {value} exceeds the vector unit's limit {limit}")


def _walk(layer, config, shape):
    """(op, kernel, step, repeat, padding, output h/w) of the window walk."""
    op, name = layer.op, layer.name
    h, w = shape[2:]
    if isinstance(op, (ops.MaxPool, ops.AvgPool)):
        _limit(name, "pool kernel", max(op.kernel), config.max_kernel)
        _limit(name, "pool stride", max(op.stride), min(config.max_stride, 15))
        _limit(name, "pool padding", max(op.padding), 15)
        oh, ow = op.output_shape([tuple(shape)])[2:]
        _check_windows(name, op, h, w, oh, ow)
        code = MAXPOOL if isinstance(op, ops.MaxPool) else AVGPOOL
        return code, op.kernel, op.stride, (1, 1), op.padding[:2], (oh, ow)
    if isinstance(op, ops.GlobalAvgPool):
        return GLOBAL_AVGPOOL, (h, w), (1, 1), (1, 1), (0, 0), (1, 1)
    if isinstance(op, ops.Add):
        return ADD, (1, 1), (1, 1), (1, 1), (0, 0), (h, w)
    scale = op.scale if isinstance(op, ops.Upsample) else 1
    _limit(name, "upsample scale", scale, 15)
    return COPY, (1, 1), (1, 1), (scale, scale), (0, 0), (h * scale, w * scale)


def _check_windows(name, op, h, w, oh, ow):
    """Every window must hold at least one input element (the walk reads no empty row)."""
    for size, out, k, s, before in ((h, oh, op.kernel[0], op.stride[0], op.padding[0]),
                                    (w, ow, op.kernel[1], op.stride[1], op.padding[1])):
        for o in range(out):
            start = o * s - before
            if min(start + k, size) <= max(start, 0):
                raise UserError(f"layer {name!r}: pooling window {o} lies wholly in the "
                                f"padding, which the vector unit does not support")


def _check_ranges(layer, config, formats, kernel, pre):
    """The pre stage's int32 output and the window sum (acc_bits) must hold every value.

    A requantization rounds the exact product (x - zp) * gain, so its result lies within
    [floor, ceil] of the extreme products.
    """
    total = 0
    for fmt, (mode, _, mult, shift) in zip(formats, pre):
        _limit(layer.name, "input bits", fmt.bits, config.act_bits)
        gain = _gain(mode, mult, shift)
        high = int(np.ceil((fmt.hi - fmt.zero_point) * gain))
        low = int(np.floor((fmt.lo - fmt.zero_point) * gain))
        if high > PRE_LIMIT or low < -PRE_LIMIT - 1:
            raise UserError(f"layer {layer.name!r}: input rescaled by {gain:.4g} spans "
                            f"{low}..{high}, beyond the vector unit's {PRE_BITS}-bit pre stage "
                            f"(the input's scale is too large against the output's)")
        total += max(high, -low)
    terms = kernel[0] * kernel[1]
    _limit(layer.name, "window sum bound", total * terms, (1 << (config.acc_bits - 1)) - 1)
    _limit(layer.name, "output bits", layer.output.bits, config.act_bits)
    check_activation_slope(layer, "vector unit")


def _descriptor(layer, config, addresses, shapes, formats, rounding, k=None):
    from fpgacnn.hw.program import check_config
    check_config(config)
    shape = tuple(shapes[0])
    if len(shape) != 4:
        raise UserError(f"layer {layer.name!r}: the vector unit runs NCHW feature maps, "
                        f"input shape {shape}")
    code, kernel, step, repeat, pad, (oh, ow) = _walk(layer, config, shape)
    pre = [_hw_requant(layer, rq, "input") for rq in _pre_requants(layer, k)]
    _check_ranges(layer, config, formats, kernel, pre)
    post = _hw_requant(layer, _post_requant(layer), "output")
    if len({p[:2] for p in pre}) > 1:
        raise UserError(f"layer {layer.name!r}: its inputs are requantized in different modes")
    l, row = config.tn, feature_row_bytes(config)
    n, c, h, w = shape
    blocks = -(-c // l)
    params = vector_params(layer, config, k)
    records = len(params) // record_bytes(config)
    if records not in (1, blocks):
        raise UserError(f"layer {layer.name!r}: per-channel parameters for "
                        f"{records * l} channels, the input has {c}")
    inputs = list(addresses["inputs"]) + list(addresses["inputs"][:1])
    act = layer.act_multiplier is not None
    fmts = list(formats) + list(formats[:1])
    return VectorDescriptor(
        op=code, two_inputs=int(code == ADD), pre_mode=MODES.index(pre[0][0]),
        pre_rounding=ROUNDINGS.index(pre[0][1]), post_mode=MODES.index(post[0]),
        post_rounding=ROUNDINGS.index(post[1]), act_rounding=ROUNDINGS.index(rounding),
        act=int(act), act_shift=layer.act_shift if act else 0,
        in_signed0=int(fmts[0].signed), in_signed1=int(fmts[1].signed),
        in_zero0=fmts[0].zero_point, in_zero1=fmts[1].zero_point,
        out_zero=layer.output.zero_point, out_lo=layer.out_lo, out_hi=layer.out_hi,
        kernel_h=kernel[0], kernel_w=kernel[1], step_h=step[0], step_w=step[1],
        repeat_h=repeat[0], repeat_w=repeat[1], pad_top=pad[0], pad_left=pad[1],
        in_h=h, in_w=w, out_h=oh, out_w=ow, blocks=blocks, channels=c,
        in_row_bytes=w * row, in_plane_bytes=h * w * row, out_bytes=blocks * oh * ow * row,
        param_step=0 if records == 1 else record_bytes(config),
        in_addr0=inputs[0], in_addr1=inputs[1], out_addr=addresses["output"],
        param_addr=addresses["params"])


VECTOR_OPS = (ops.MaxPool, ops.AvgPool, ops.GlobalAvgPool, ops.Add) + ELEMENTWISE


def compile_vector_layer(layer, config: HardwareConfig, addresses, *, input_shapes,
                         input_formats, rounding) -> VectorDescriptor:
    """The descriptor of a MaxPool/AvgPool/GlobalAvgPool/Add/Upsample/activation QLayer.

    `addresses`: {"inputs": [byte offset per input], "output": ..., "params": ...} (the
    params region holds `vector_params(layer, config)`); `rounding`: the model's rounding.
    """
    if not isinstance(layer.op, VECTOR_OPS):
        raise UserError(f"layer {layer.name!r}: the vector unit does not run {layer.op.kind}")
    if len(input_shapes) != len(layer.inputs) or len(input_formats) != len(layer.inputs):
        raise UserError(f"layer {layer.name!r}: needs {len(layer.inputs)} input shapes and "
                        f"formats")
    return _descriptor(layer, config, addresses, input_shapes, input_formats, rounding)


def compile_concat_input(concat_layer, k, config: HardwareConfig, addresses, *, input_shape,
                         input_format, rounding) -> VectorDescriptor:
    """The requantizing copy of input `k` of a Concat into its slice (`addresses["output"]`).

    `addresses["params"]` holds `vector_params(concat_layer, config, k)`.
    """
    if not isinstance(concat_layer.op, ops.Concat) or concat_layer.op.axis != 1:
        raise UserError(f"layer {concat_layer.name!r}: not a channel concat")
    if not 0 <= k < len(concat_layer.inputs):
        raise UserError(f"layer {concat_layer.name!r}: has no input {k}")
    return _descriptor(concat_layer, config, {**addresses, "inputs": [addresses["inputs"][0]]},
                       [input_shape], [input_format], rounding, k)
