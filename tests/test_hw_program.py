"""The engine's program (hw.program): descriptor format, compiler refusals, derived fields.

Oracles: Amaranth's own decoding of `descriptor_layout()` (data.Const) for the packed bits,
and values computed by hand (in the comments) for one conv and one FC layer and for the
parameter record. No simulation.
"""

import random
import re
import struct
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from amaranth.lib import data

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.hw.program import (DESCRIPTOR_BITS, DESCRIPTOR_STRIDE, DESCRIPTOR_WORDS,
                                LayerDescriptor, compile_layer, descriptor_layout,
                                input_buffer_words, pack_params)
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, Requant, TensorFormat

ADDRESSES = {"input": 0x100, "output": 0x2000, "weight": 0x40000, "params": 0x80000}
U8 = TensorFormat(8, False, 0.05, 3)
S8 = TensorFormat(8, True, 0.1, -2)


def field_range(f):
    bits = f.metadata["bits"]
    if f.metadata["signed"]:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def random_descriptor(rng):
    return LayerDescriptor(**{f.name: rng.randint(*field_range(f))
                              for f in fields(LayerDescriptor)})


# ---- the descriptor format -----------------------------------------------------------------

def test_packed_bits_decode_field_by_field_in_amaranth():
    layout = descriptor_layout()
    assert layout.size == DESCRIPTOR_BITS
    rng = random.Random(7)
    extremes = [LayerDescriptor(**{f.name: field_range(f)[i] for f in fields(LayerDescriptor)})
                for i in (0, 1)]
    for d in extremes + [random_descriptor(rng) for _ in range(20)]:
        words = d.pack()
        assert len(words) == DESCRIPTOR_WORDS and all(0 <= w < 1 << 32 for w in words)
        from_words = sum(w << (32 * i) for i, w in enumerate(words))
        from_bytes = int.from_bytes(d.to_bytes(), "little")
        assert from_words == from_bytes == d.to_int() < 1 << DESCRIPTOR_BITS
        assert struct.unpack(f"<{DESCRIPTOR_WORDS}I", d.to_bytes()) == tuple(words)
        decoded = data.Const(layout, from_words)
        for f in fields(LayerDescriptor):
            assert getattr(decoded, f.name) == getattr(d, f.name), f.name
        assert LayerDescriptor.from_bytes(d.to_bytes()) == d     # the host's decode


def test_descriptor_size_and_stride():
    assert DESCRIPTOR_WORDS * 32 >= DESCRIPTOR_BITS > (DESCRIPTOR_WORDS - 1) * 32
    assert DESCRIPTOR_STRIDE % 64 == 0 and DESCRIPTOR_STRIDE >= DESCRIPTOR_WORDS * 4


@pytest.mark.parametrize("name, value, width", [
    ("kernel_h", 16, "4 bits"), ("stride_w", -1, "3 bits"), ("in_zero", 1 << 17, "signed 18"),
    ("out_lo", -(1 << 17) - 1, "signed 18"), ("in_addr", 1 << 32, "32 bits"),
    ("last", 2, "1 bits"), ("tile_h", 1.0, "8 bits")])
def test_field_out_of_range_is_refused_naming_the_field(name, value, width):
    with pytest.raises(UserError) as e:
        LayerDescriptor(**{name: value})
    assert f"descriptor field {name} = {value!r}" in str(e.value) and width in str(e.value)


# ---- layers by hand ------------------------------------------------------------------------

def qlayer(op, *, name="c", out_channels, weight_bits=8, mode="gemmlowp", output=S8,
           bias=None, act_multiplier=None, act_shift=0, shift=None):
    weight = np.zeros((out_channels, 1), np.int8)
    rq = Requant(mode, np.full(out_channels, 1 << 30), np.zeros(out_channels) if shift is None
                 else shift, rounding="half_even" if mode == "shift" else "half_up")
    return QLayer(name=name, op=op, inputs=("x",), output=output, out_lo=-2, out_hi=127,
                  weight=weight, weight_scale=np.ones(out_channels), weight_bits=weight_bits,
                  bias=np.zeros(out_channels, np.int64) if bias is None else bias, requant=rq,
                  act_multiplier=act_multiplier, act_shift=act_shift)


def conv(cin=3, cout=20, kernel=3, stride=2, padding=1, **kwargs):
    op = ops.Conv2d(cin, cout, kernel, stride, padding, **kwargs)
    return qlayer(op, out_channels=cout)


def compile_(layer, config=HardwareConfig(), shape=(1, 3, 40, 36), input_format=U8, **kw):
    return compile_layer(layer, config, ADDRESSES, input_shape=shape,
                         input_format=input_format, **kw)


def test_conv_fields_by_hand():
    # Default config: Q=16, L=8, tiles 16x16, 8-bit words of a 64-bit port (8 bytes per row).
    # 3x3 stride 2 pad 1 on 40x36: output (40+2-3)//2+1 = 20 rows, (36+2-3)//2+1 = 18 cols.
    d = compile_(conv())
    expected = dict(
        last=1, pool=0, mode=1, rq_rounding=0, act_rounding=0, act=0, act_shift=0,
        in_signed=0, in_zero=3, out_zero=-2, out_lo=-2, out_hi=127,
        kernel_h=3, kernel_w=3, kernel_area=9, stride_h=2, stride_w=2, pad_top=1, pad_left=1,
        in_h=40, in_w=36, in_blocks=1, out_h=20, out_w=18, out_blocks=2, out_channels=20,
        tile_h=16, tile_w=16,
        in_row_bytes=36 * 8, in_plane_bytes=40 * 36 * 8,
        out_row_bytes=18 * 8, out_plane_bytes=20 * 18 * 8,
        weight_block_bytes=9 * 16 * 8,              # 9 kernel positions of a 16 x 8 matrix
        in_tile_row_step=32, in_tile_col_step=32,   # 16 output rows * stride 2
        in_tile_row_bytes=32 * 36 * 8, pad_top_bytes=36 * 8,
        out_tile_row_bytes=16 * 18 * 8,
        out_block_bytes=2 * 20 * 18 * 8,            # Q / L = 2 planes of L channels
        in_addr=0x100, out_addr=0x2000, weight_addr=0x40000, param_addr=0x80000)
    assert {f.name: getattr(d, f.name) for f in fields(d)} == expected


def test_conv_with_fused_pool_by_hand():
    d = compile_(conv(), pool=True, rounding="truncate", last=False)
    # 20 x 18 conv output, even already; written 10 x 9; tiles of 16 x 16 (even).
    assert (d.pool, d.last, d.act_rounding) == (1, 0, 2)
    assert (d.out_h, d.out_w, d.tile_h, d.tile_w) == (20, 18, 16, 16)
    assert d.out_row_bytes == 9 * 8 and d.out_plane_bytes == 10 * 9 * 8
    assert d.out_tile_row_bytes == 8 * 9 * 8 and d.out_block_bytes == 2 * 10 * 9 * 8
    odd = compile_(conv(padding=0), pool=True)   # 19 x 17 -> pooled over 18 x 16
    assert (odd.out_h, odd.out_w, odd.tile_h, odd.tile_w) == (18, 16, 16, 16)


def test_fc_fields_by_hand():
    config = HardwareConfig(tm=16, tn=8)
    slope = np.full(21, 13)
    layer = qlayer(ops.Linear(37, 21), name="fc", out_channels=21, mode="shift",
                   act_multiplier=slope, act_shift=5, shift=np.full(21, 7))
    d = compile_(layer, config, shape=(4, 37), input_format=S8)
    # A 1x1 "image" of 37 channels: ceil(37/8) = 5 input blocks, ceil(21/16) = 2 output blocks.
    assert (d.mode, d.rq_rounding, d.act, d.act_shift, d.in_signed, d.in_zero) == (0, 1, 1, 5,
                                                                                    1, -2)
    assert (d.kernel_h, d.kernel_w, d.kernel_area, d.stride_h, d.pad_top) == (1, 1, 1, 1, 0)
    assert (d.in_h, d.in_w, d.out_h, d.out_w, d.tile_h, d.tile_w) == (1, 1, 1, 1, 1, 1)
    assert (d.in_blocks, d.out_blocks, d.out_channels) == (5, 2, 21)
    assert (d.in_row_bytes, d.in_plane_bytes, d.out_row_bytes, d.out_plane_bytes) == (8,) * 4
    assert d.weight_block_bytes == 16 * 8 and d.out_block_bytes == 16
    assert (d.in_tile_row_step, d.in_tile_row_bytes, d.pad_top_bytes) == (1, 8, 0)


def test_largest_kernel_and_stride_fit_the_input_buffer():
    # The buffer is sized for max_kernel/max_stride, so the input-tile refusal cannot trigger
    # for a layer within those limits.
    config = HardwareConfig(tm=8, tn=8, tr=5, tc=7, max_kernel=11, max_stride=4)
    d = compile_(conv(kernel=11, stride=4, padding=0), config, shape=(1, 3, 60, 60))
    assert ((d.tile_h - 1) * 4 + 11) * ((d.tile_w - 1) * 4 + 11) == input_buffer_words(config)


# ---- refusals ------------------------------------------------------------------------------

def refusal(layer, config=HardwareConfig(), **kw) -> str:
    with pytest.raises(UserError) as e:
        compile_(layer, config, **kw)
    message = str(e.value)
    assert f"layer {layer.name!r}" in message and "\n" not in message
    return message


def test_kernel_stride_padding_beyond_the_limits():
    small = HardwareConfig(max_kernel=3, max_stride=2)
    assert "kernel height 5 exceeds the engine's limit 3" in refusal(conv(kernel=(5, 3)), small)
    assert "kernel width 5 exceeds the engine's limit 3" in refusal(conv(kernel=(3, 5)), small)
    assert "stride 3 exceeds the engine's limit 2" in refusal(conv(stride=3), small)
    assert "padding 16 exceeds the engine's limit 15" in refusal(conv(padding=16))


def test_bits_beyond_the_configured_widths():
    wide = TensorFormat(16, True, 0.01, 0)
    assert "input bits 16 exceeds the engine's limit 8" in refusal(conv(), input_format=wide)
    layer = replace(conv(), output=wide)
    assert "output bits 16 exceeds the engine's limit 8" in refusal(layer)
    layer = replace(conv(), weight_bits=12)
    assert "weight bits 12 exceeds the engine's limit 8" in refusal(layer)


def test_grouped_and_dilated_convolutions():
    assert "groups=3" in refusal(conv(cin=3, cout=3, groups=3))
    assert "dilation (2, 2)" in refusal(conv(dilation=2))


def test_other_ops_and_requant_modes():
    pool = replace(conv(), op=ops.MaxPool(2, 2))
    assert "Conv2d and Linear" in refusal(pool)
    float32 = replace(conv(), requant=Requant("float32", np.ones(20, np.float32), np.zeros(20)))
    message = refusal(float32)
    assert "'float32'" in message and "shift, gemmlowp, single_round" in message


def test_parameter_ranges():
    big_shift = replace(conv(), requant=Requant("shift", np.ones(20), np.full(20, 63)))
    assert "0..62" in refusal(big_shift)
    big_bias = replace(conv(), bias=np.full(20, 1 << 31))
    assert "acc_bits = 32" in refusal(big_bias)
    steep = replace(conv(), act_multiplier=np.full(20, 1 << 17), act_shift=3)
    assert "activation slope" in refusal(steep)
    # the lanes clamp y at -2**41 before the slope product: exact only for slopes >= 2**-23
    shallow = replace(conv(), act_multiplier=np.full(20, 3), act_shift=30)
    assert "smallest exact slope 2**-23" in refusal(shallow)
    compile_(replace(conv(), act_multiplier=np.full(20, 1 << 7), act_shift=30), HardwareConfig())


def test_pool_needs_a_2x2_output():
    assert "at least 2x2" in refusal(conv(kernel=3, padding=0), shape=(1, 3, 4, 40), pool=True)


def test_input_tile_larger_than_the_buffer(monkeypatch):
    # Unreachable with the buffer sized from max_kernel/max_stride (test above); the message
    # is checked with a smaller buffer.
    import fpgacnn.hw.program as program
    monkeypatch.setattr(program, "input_buffer_words", lambda config: 100)
    message = refusal(conv())
    assert "input tile (words) 1089 exceeds the engine's limit 100" in message  # 33 x 33


def test_unbuildable_config_is_refused():
    with pytest.raises(UserError, match="tn \\* act_bits = 128 must equal ddr_width_bits = 64"):
        compile_(conv(), HardwareConfig(tm=16, tn=16))


# ---- the parameter record ------------------------------------------------------------------

def test_pack_params_by_hand():
    config = HardwareConfig(tm=4, tn=4, ddr_width_bits=32)
    bias = np.array([10, -20, 30, -40, 50])
    layer = replace(qlayer(ops.Linear(7, 5), out_channels=5, bias=bias),
                    requant=Requant("gemmlowp", np.array([1, 2, 3, 4, 5]) << 26, np.array([-1])),
                    act_multiplier=np.array([-7]), act_shift=4)
    record0 = [10, -20, 30, -40] + [1 << 26, 2 << 26, 3 << 26, 4 << 26] + [-1] * 4 + [-7] * 4
    record1 = [50, 0, 0, 0] + [5 << 26, 0, 0, 0] + [-1, 0, 0, 0] + [-7, 0, 0, 0]
    expected = struct.pack("<32i", *record0, *record1)
    assert pack_params(layer, config) == expected
    plain = replace(layer, act_multiplier=None)
    assert pack_params(plain, config)[48:64] == bytes(16)   # no slope: zeros


# ---- docs/engine.md ------------------------------------------------------------------------

def test_engine_doc_lists_exactly_the_descriptor_fields():
    doc = (Path(__file__).parents[1] / "docs" / "engine.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+)\.\.(\d+) \| ([us])(\d+) \|", doc, re.M)
    offset, expected = 0, []
    for f in fields(LayerDescriptor):
        bits = f.metadata["bits"]
        expected.append((f.name, str(offset), str(offset + bits - 1),
                         "s" if f.metadata["signed"] else "u", str(bits)))
        offset += bits
    assert rows == expected
