"""The engine's program: one layer descriptor per layer, and the compiler that makes it.

`LayerDescriptor` is the ONE definition of the descriptor format: its fields (in order, least
significant first) and their bit widths give both `pack()` (the words the host writes into the
descriptor region) and `descriptor_layout()` (the Amaranth layout the controller decodes).

    >>> d = compile_layer(qlayer, HardwareConfig(), {"input": 0, "output": 4096,
    ...                   "weight": 8192, "params": 16384}, input_shape=(1, 3, 8, 8),
    ...                   input_format=qm.format_of("x"))
    >>> words = d.pack()            # little-endian 32-bit words, DESCRIPTOR_WORDS of them

Derived quantities (byte strides, kernel area) are computed here, once, so the controller
needs no multiplier.
"""

from dataclasses import dataclass, field, fields

import numpy as np

from fpgacnn.config import ENGINE_PARAM_BITS_PER_CHANNEL, HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.export.params import engine_params
from fpgacnn.golden.arith import ROUNDINGS
from fpgacnn.ir import ops

MODES = ("shift", "gemmlowp", "single_round")
WORD_BITS = 32
PARAMS_PER_CHANNEL = ENGINE_PARAM_BITS_PER_CHANNEL // WORD_BITS  # bias, multiplier, shift, slope


def _f(bits, signed=False):
    return field(default=0, metadata={"bits": bits, "signed": signed})


class Descriptor:
    """What every descriptor format shares: its dataclass fields (least significant first, bit
    widths in their metadata) give the range checks, the packed integer and the Amaranth layout."""

    def __post_init__(self):
        for f in fields(self):
            bits, signed = f.metadata["bits"], f.metadata["signed"]
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            value = getattr(self, f.name)
            if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise UserError(f"descriptor field {f.name} = {value!r} does not fit "
                                f"{'signed ' if signed else ''}{bits} bits")
            object.__setattr__(self, f.name, int(value))

    @classmethod
    def bits(cls) -> int:
        return sum(f.metadata["bits"] for f in fields(cls))

    @classmethod
    def words(cls) -> int:
        return -(-cls.bits() // WORD_BITS)

    @classmethod
    def layout(cls):
        """The Amaranth StructLayout the hardware decodes, generated from the fields."""
        from amaranth.hdl import signed, unsigned
        from amaranth.lib import data
        return data.StructLayout({
            f.name: (signed if f.metadata["signed"] else unsigned)(f.metadata["bits"])
            for f in fields(cls)})

    def to_int(self) -> int:
        """All fields as one integer, the first field at the least significant end."""
        value, offset = 0, 0
        for f in fields(self):
            bits = f.metadata["bits"]
            value |= (getattr(self, f.name) & ((1 << bits) - 1)) << offset
            offset += bits
        return value

    def pack(self) -> list[int]:
        """The descriptor as `words()` unsigned 32-bit words, least significant first."""
        value = self.to_int()
        return [(value >> (WORD_BITS * i)) & 0xFFFFFFFF for i in range(self.words())]

    def to_bytes(self) -> bytes:
        return self.to_int().to_bytes(self.words() * WORD_BITS // 8, "little")

    @classmethod
    def from_bytes(cls, blob: bytes):
        """The descriptor `to_bytes` wrote (the first `words()` words of `blob`)."""
        value, values = int.from_bytes(blob[:cls.words() * WORD_BITS // 8], "little"), {}
        for f in fields(cls):
            bits = f.metadata["bits"]
            raw, value = value & ((1 << bits) - 1), value >> bits
            negative = f.metadata["signed"] and raw >> (bits - 1)
            values[f.name] = raw - (1 << bits) if negative else raw
        return cls(**values)


@dataclass(frozen=True)
class LayerDescriptor(Descriptor):
    """One layer for the engine; every field an integer of the width in its metadata."""

    last: int = _f(1)               # the program ends after this layer
    pool: int = _f(1)               # fused 2x2 stride-2 max-pool on the output
    mode: int = _f(2)               # index into MODES
    rq_rounding: int = _f(2)        # index into golden.arith.ROUNDINGS (mode "shift")
    act_rounding: int = _f(2)       # rounding of the LeakyReLU/PReLU product
    act: int = _f(1)                # negative values are multiplied by the slope
    act_shift: int = _f(6)
    in_signed: int = _f(1)
    in_zero: int = _f(18, True)
    out_zero: int = _f(18, True)
    out_lo: int = _f(18, True)
    out_hi: int = _f(18, True)
    kernel_h: int = _f(4)
    kernel_w: int = _f(4)
    kernel_area: int = _f(8)        # kernel_h * kernel_w
    stride_h: int = _f(3)
    stride_w: int = _f(3)
    pad_top: int = _f(4)
    pad_left: int = _f(4)
    in_h: int = _f(12)
    in_w: int = _f(12)
    in_blocks: int = _f(10)         # input channel blocks of L
    out_h: int = _f(12)             # conv output rows computed (2x the written rows if pool)
    out_w: int = _f(12)
    out_blocks: int = _f(10)        # output channel blocks of Q
    out_channels: int = _f(14)      # real output channels; lanes beyond are written as 0
    tile_h: int = _f(8)             # conv output rows per tile (even if pool)
    tile_w: int = _f(8)
    in_row_bytes: int = _f(24)      # in_w * bytes per feature row
    in_plane_bytes: int = _f(32)    # in_h * in_row_bytes: one input channel block
    out_row_bytes: int = _f(24)     # written width * bytes per feature row
    out_plane_bytes: int = _f(32)   # written height * out_row_bytes
    weight_block_bytes: int = _f(24)  # one (output block, input block) of weights
    in_tile_row_step: int = _f(12)  # tile_h * stride_h: input rows between tile rows
    in_tile_col_step: int = _f(12)  # tile_w * stride_w
    in_tile_row_bytes: int = _f(32)  # in_tile_row_step * in_row_bytes
    pad_top_bytes: int = _f(24)     # pad_top * in_row_bytes
    out_tile_row_bytes: int = _f(32)  # written rows per tile * out_row_bytes
    out_block_bytes: int = _f(32)   # (Q // L) * out_plane_bytes: whole planes per output block
    in_addr: int = _f(32)
    out_addr: int = _f(32)
    weight_addr: int = _f(32)
    param_addr: int = _f(32)


DESCRIPTOR_BITS = LayerDescriptor.bits()
DESCRIPTOR_WORDS = LayerDescriptor.words()
DESCRIPTOR_STRIDE = -(-DESCRIPTOR_WORDS * 4 // 64) * 64   # bytes between descriptors in DDR


def descriptor_layout():
    """The Amaranth StructLayout of a LayerDescriptor."""
    return LayerDescriptor.layout()


# ---- sizes the hardware is built with (all derived from the configuration) -------------------

def feature_row_bytes(config: HardwareConfig) -> int:
    """Bytes of one feature-map row (L values); the engine needs it to equal the port width."""
    return -(-config.tn * config.act_bits // 8)


def input_buffer_words(config: HardwareConfig) -> int:
    """Depth of one input-buffer bank: the largest input tile of L channels."""
    rows = (config.tr - 1) * config.max_stride + config.max_kernel
    cols = (config.tc - 1) * config.max_stride + config.max_kernel
    return rows * cols


def weight_buffer_words(config: HardwareConfig) -> int:
    """Depth of one weight-buffer bank: one Q x L matrix per kernel position."""
    return config.max_kernel * config.max_kernel


def check_config(config: HardwareConfig) -> None:
    """Refuse a configuration the engine generator cannot build, naming every problem
    (`HardwareConfig.engine_problems` is the one definition of the limits)."""
    problems = config.engine_problems()
    if problems:
        raise UserError(f"hardware config: {'; '.join(problems)}")


# ---- the compiler --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Geometry:
    in_ch: int
    out_ch: int
    in_h: int
    in_w: int
    kernel: tuple
    stride: tuple
    padding: tuple
    out_h: int
    out_w: int


def _geometry(layer, input_shape) -> _Geometry:
    op = layer.op
    if isinstance(op, ops.Linear):
        return _Geometry(op.in_features, op.out_features, 1, 1, (1, 1), (1, 1), (0,) * 4, 1, 1)
    if not isinstance(op, ops.Conv2d):
        raise UserError(f"layer {layer.name!r}: the engine runs Conv2d and Linear, not {op.kind}")
    if op.groups != 1:
        raise UserError(f"layer {layer.name!r}: grouped convolution (groups={op.groups}) is not "
                        f"supported by the engine yet")
    if op.dilation != (1, 1):
        raise UserError(f"layer {layer.name!r}: dilation {op.dilation} is not supported")
    n, c, h, w = input_shape
    (_, m, oh, ow) = op.output_shape([tuple(input_shape)])
    return _Geometry(c, m, h, w, op.kernel, op.stride, op.padding, oh, ow)


def _limit(name, what, value, limit):
    if value > limit:
        raise UserError(f"layer {name!r}: {what} {value} exceeds the engine's limit {limit}")


def compile_layer(layer, config: HardwareConfig, ddr_map, *, input_shape, input_format,
                  pool: bool = False, rounding: str = "half_up",
                  last: bool = True) -> LayerDescriptor:
    """The descriptor of one quantized Conv2d/Linear layer (a `quant.model.QLayer`).

    `ddr_map` maps "input", "output", "weight", "params" to byte offsets in DDR; `rounding`
    is the model's rounding (used by LeakyReLU/PReLU); `pool` fuses a 2x2 stride-2 max-pool.
    Raises UserError naming the layer and the limit when the configuration cannot run it.
    """
    check_config(config)
    name = layer.name
    g = _geometry(layer, input_shape)
    rq = layer.requant
    if rq is None or rq.mode not in MODES:
        raise UserError(f"layer {name!r}: requantization mode "
                        f"{None if rq is None else rq.mode!r} is not supported by the engine "
                        f"(supported: {', '.join(MODES)})")
    _limit(name, "kernel height", g.kernel[0], config.max_kernel)
    _limit(name, "kernel width", g.kernel[1], config.max_kernel)
    _limit(name, "stride", max(g.stride), config.max_stride)
    _limit(name, "padding", max(g.padding), 15)
    _limit(name, "input bits", input_format.bits, config.act_bits)
    _limit(name, "output bits", layer.output.bits, config.act_bits)
    _limit(name, "weight bits", layer.weight_bits or 0, config.weight_bits)
    _check_params(layer, config)
    q, l = config.tm, config.tn
    out_h, out_w = g.out_h, g.out_w
    if pool:
        if out_h < 2 or out_w < 2:
            raise UserError(f"layer {name!r}: a 2x2 max-pool needs an output of at least 2x2, "
                            f"got {out_h}x{out_w}")
        out_h, out_w = out_h // 2 * 2, out_w // 2 * 2
    tile_h, tile_w = min(config.tr, out_h), min(config.tc, out_w)
    if pool:
        if config.tr < 2 or config.tc < 2:
            raise UserError(f"layer {name!r}: pooling needs tiles of at least 2x2 (tr, tc)")
        tile_h, tile_w = tile_h // 2 * 2, tile_w // 2 * 2
    in_tile = ((tile_h - 1) * g.stride[0] + g.kernel[0]) * ((tile_w - 1) * g.stride[1]
                                                            + g.kernel[1])
    _limit(name, "input tile (words)", in_tile, input_buffer_words(config))
    row = feature_row_bytes(config)
    written_h, written_w = (out_h // 2, out_w // 2) if pool else (out_h, out_w)
    in_blocks, out_blocks = -(-g.in_ch // l), -(-g.out_ch // q)
    act = layer.act_multiplier is not None
    return LayerDescriptor(
        last=int(last), pool=int(pool), mode=MODES.index(rq.mode),
        rq_rounding=ROUNDINGS.index(rq.rounding), act_rounding=ROUNDINGS.index(rounding),
        act=int(act), act_shift=layer.act_shift if act else 0,
        in_signed=int(input_format.signed), in_zero=input_format.zero_point,
        out_zero=layer.output.zero_point, out_lo=layer.out_lo, out_hi=layer.out_hi,
        kernel_h=g.kernel[0], kernel_w=g.kernel[1], kernel_area=g.kernel[0] * g.kernel[1],
        stride_h=g.stride[0], stride_w=g.stride[1], pad_top=g.padding[0],
        pad_left=g.padding[1], in_h=g.in_h, in_w=g.in_w, in_blocks=in_blocks,
        out_h=out_h, out_w=out_w, out_blocks=out_blocks, out_channels=g.out_ch,
        tile_h=tile_h, tile_w=tile_w, in_row_bytes=g.in_w * row,
        in_plane_bytes=g.in_h * g.in_w * row, out_row_bytes=written_w * row,
        out_plane_bytes=written_h * written_w * row,
        weight_block_bytes=g.kernel[0] * g.kernel[1] * q * l * config.weight_bits // 8,
        in_tile_row_step=tile_h * g.stride[0], in_tile_col_step=tile_w * g.stride[1],
        in_tile_row_bytes=tile_h * g.stride[0] * g.in_w * row,
        pad_top_bytes=g.padding[0] * g.in_w * row,
        out_tile_row_bytes=(tile_h // 2 if pool else tile_h) * written_w * row,
        out_block_bytes=q // l * written_h * written_w * row,
        in_addr=ddr_map["input"], out_addr=ddr_map["output"], weight_addr=ddr_map["weight"],
        param_addr=ddr_map["params"])


def _check_params(layer, config):
    """Value ranges the post-processing datapath is built for."""
    rq, name = layer.requant, layer.name
    shift = rq.shift.astype(np.int64)
    mult = rq.multiplier.astype(np.int64)
    if np.any(np.abs(mult) >= 1 << 31):
        raise UserError(f"layer {name!r}: requant multiplier does not fit int32")
    if rq.mode == "shift" and (shift.min() < 0 or shift.max() > 62):
        raise UserError(f"layer {name!r}: requant shift {shift.min()}..{shift.max()} is "
                        f"outside the engine's range 0..62")
    if rq.mode != "shift" and (shift.min() < -31 or shift.max() > 30):
        raise UserError(f"layer {name!r}: requant shift {shift.min()}..{shift.max()} is "
                        f"outside the engine's range -31..30")
    check_activation_slope(layer, "engine")
    if layer.bias is not None and np.any(np.abs(layer.bias) >= 1 << (config.acc_bits - 1)):
        raise UserError(f"layer {name!r}: bias does not fit acc_bits = {config.acc_bits}")


def check_activation_slope(layer, unit: str) -> None:
    """The LeakyReLU/PReLU slope multiplier / 2**act_shift that the post-processing lanes
    compute exactly (hw.postproc: 18-bit slopes, `slope_is_exact`), else a UserError."""
    from fpgacnn.hw.postproc import slope_is_exact

    if layer.act_multiplier is None:
        return
    am = np.asarray(layer.act_multiplier, np.int64)
    if np.any(np.abs(am) >= 1 << 17) or not 0 <= layer.act_shift < 64:
        raise UserError(f"layer {layer.name!r}: activation slope {am.min()}..{am.max()} / "
                        f"2**{layer.act_shift} is outside the {unit}'s range")
    if not all(slope_is_exact(int(v), layer.act_shift) for v in am.ravel()):
        raise UserError(f"layer {layer.name!r}: activation slope {am.min()}..{am.max()} / "
                        f"2**{layer.act_shift} is below the {unit}'s smallest exact slope "
                        f"2**-23")


def pack_params(layer, config: HardwareConfig) -> bytes:
    """The layer's per-channel parameter region as the engine reads it.

    One record per output block of Q channels: Q int32 biases, then Q multipliers, Q shifts and
    Q activation slopes (int32 little-endian each), channels zero-padded to a multiple of Q;
    the values are `fpgacnn.export.params.engine_params` (the exporter's `<layer>.params`).
    """
    m = layer.op.out_channels if isinstance(layer.op, ops.Conv2d) else layer.op.out_features
    q = config.tm
    records = np.zeros((-(-m // q) * q, PARAMS_PER_CHANNEL), np.int64)
    records[:m] = engine_params(layer, m)
    return records.reshape(-1, q, records.shape[1]).transpose(0, 2, 1).astype("<i4").tobytes()
