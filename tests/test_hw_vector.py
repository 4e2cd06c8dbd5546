"""The vector unit's compiler and address walk, without Verilator.

Oracles: the window walk written plainly in Python (division instead of the walker's counters,
PyTorch's window rule through `ir.ops` output shapes) for the read commands; the golden model's
`Requant` values (`shift_round` on a left shift) for the parameter record.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.golden.arith import ROUNDINGS, quantize_multiplier, shift_round
from fpgacnn.golden.requant import requantize
from fpgacnn.hw.program import MODES
from fpgacnn.hw.vec_rescale import LATENCY, LaneRescaler
from fpgacnn.hw.vec_walker import WindowWalker
from fpgacnn.hw.vector_program import (ADD, COPY, PARAM_ROWS, VectorDescriptor,
                                       compile_vector_layer, record_bytes, vector_params)
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, Requant, TensorFormat

CONFIG = HardwareConfig(tm=8, tn=8, tr=8, tc=8, max_kernel=5, max_stride=3,
                        ddr_width_bits=64, burst_len=8)
WORD = 8
U8 = TensorFormat(bits=8, signed=False, scale=0.05, zero_point=128)


def layer(op, inputs=("x",), **fields):
    return QLayer(name="v", op=op, inputs=inputs, output=fields.pop("output", U8),
                  out_lo=0, out_hi=255, **fields)


def compile_(qlayer, shape, formats=(U8,)):
    addresses = {"inputs": [0x1000, 0x8000][:len(formats)], "output": 0x20000,
                 "params": 0x30000}
    return compile_vector_layer(qlayer, CONFIG, addresses, input_shapes=[shape] * len(formats),
                                input_formats=list(formats), rounding="half_up")


def model_commands(d: VectorDescriptor):
    """(addr, bytes, param, first, last, each, k) of every read command, by plain loops."""
    out = []
    each = int(d.op == COPY)
    inputs = 2 if d.two_inputs else 1
    for cb in range(d.blocks):
        out.append((d.param_addr + cb * d.param_step, record_bytes(CONFIG), 1, 0, 0, 0, 0))
        for oy in range(d.out_h):
            by = oy // d.repeat_h * d.step_h - d.pad_top
            rows = [r for r in range(by, by + d.kernel_h) if 0 <= r < d.in_h]
            for ox in range(d.out_w):
                bx = ox // d.repeat_w * d.step_w - d.pad_left
                cols = [c for c in range(bx, bx + d.kernel_w) if 0 <= c < d.in_w]
                if each:                # whole rows, each word its own window
                    cols = range(d.in_w) if ox == 0 else []
                for i, r in enumerate(rows if cols else []):
                    for k in range(inputs):
                        base = (d.in_addr0, d.in_addr1)[k] + cb * d.in_plane_bytes
                        out.append((base + r * d.in_row_bytes + cols[0] * WORD,
                                    len(cols) * WORD, 0, int(i == 0 and k == 0),
                                    int(i == len(rows) - 1 and k == inputs - 1), each, k))
    return out


def walked_commands(d: VectorDescriptor):
    dut = WindowWalker(CONFIG)
    out = []

    async def bench(ctx):
        ctx.set(dut.desc, dut.desc.shape().from_bits(d.to_int()))
        ctx.set(dut.cmd.ready, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while ctx.get(dut.busy):
            if ctx.get(dut.cmd.valid):
                c = ctx.get(dut.cmd.payload)
                out.append((c.addr, c.length, c.tag.param, c.tag.first, c.tag.last,
                            c.tag.each, c.tag.k))
                assert c.tag.beats * WORD == c.length
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


WALKS = {
    "max 3x3/2 pad 1 ceil": (ops.MaxPool(3, 2, padding=1, ceil_mode=True), (1, 11, 7, 6)),
    "max 2x2/1 darknet": (ops.MaxPool(2, 1, padding=(0, 0, 1, 1)), (1, 5, 4, 5)),
    "avg 3x3/1 pad 1": (ops.AvgPool(3, 1, padding=1), (1, 3, 5, 4)),
    "global avg": (ops.GlobalAvgPool(), (1, 17, 3, 5)),
    "upsample 2": (ops.Upsample(2), (1, 9, 3, 2)),
    "relu": (ops.ReLU(), (1, 4, 2, 3)),
}


@pytest.mark.parametrize("name", sorted(WALKS))
def test_walker_issues_the_windows_rows(name):
    op, shape = WALKS[name]
    requant = Requant("shift", np.array([1]), np.array([0]), "half_up") \
        if isinstance(op, (ops.AvgPool, ops.GlobalAvgPool)) else None
    d = compile_(layer(op, requant=requant), shape)
    assert (d.out_h, d.out_w) == tuple(op.output_shape([shape])[2:])
    assert walked_commands(d) == model_commands(d)


def test_walker_reads_both_inputs_of_an_add():
    rq = Requant("gemmlowp", np.array([1 << 30]), np.array([0]), "half_up")
    add = layer(ops.Add(), inputs=("a", "b"), input_requants=(rq, rq),
                requant=Requant("shift", np.array([1]), np.array([8]), "half_up"))
    d = compile_(add, (1, 10, 3, 2), formats=(U8, U8))
    assert d.op == ADD and d.two_inputs
    assert walked_commands(d) == model_commands(d)


@pytest.mark.parametrize("mode", ["shift", "gemmlowp", "single_round"])
@pytest.mark.parametrize("rounding", ["half_up", "half_even", "truncate"])
def test_rescaler_lanes_equal_golden_requantize(mode, rounding):
    """LaneRescaler in Amaranth's simulator against golden.requant.requantize, lane by lane."""
    rng = np.random.default_rng(7)
    lanes, count = 4, 40
    x = rng.integers(-(1 << 17), 1 << 17, (count, lanes))
    x[0] = [-(1 << 17), (1 << 17) - 1, 0, -1]
    if mode == "shift":
        mult, shift = rng.integers(1, 1 << 12, (count, lanes)), rng.integers(0, 20, (count, lanes))
    else:
        pairs = [quantize_multiplier(r) for r in 2.0 ** rng.uniform(-20, 10, count * lanes)]
        mult = np.array([p[0] for p in pairs]).reshape(count, lanes)
        shift = np.array([p[1] for p in pairs]).reshape(count, lanes)
    want = [requantize(x[i][None], Requant(mode, mult[i], shift[i], rounding), axis=1)[0]
            for i in range(count)]
    dut = LaneRescaler(lanes)
    got = []

    async def bench(ctx):
        ctx.set(dut.mode, MODES.index(mode))
        ctx.set(dut.rounding, ROUNDINGS.index(rounding))
        for i in range(count + LATENCY):
            ctx.set(dut.valid, i < count)
            for lane in range(lanes):
                ctx.set(dut.x[lane], int(x[min(i, count - 1), lane]))
                ctx.set(dut.multiplier[lane], int(mult[min(i, count - 1), lane]))
                ctx.set(dut.shift[lane], int(shift[min(i, count - 1), lane]))
            await ctx.tick()
            if ctx.get(dut.out_valid):
                got.append([ctx.get(dut.out[lane]) for lane in range(lanes)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert np.array_equal(np.array(got), np.array(want))


def test_shift_mode_left_shift_is_folded_into_the_multiplier():
    """pow2 concat input: shift -3 becomes multiplier 8, shift 0; same values as golden."""
    fmt = TensorFormat(bits=8, signed=True, scale=2.0 ** -4, zero_point=0, frac_bits=4)
    rq = Requant("shift", np.array([1]), np.array([-3]), "half_even")
    cat = QLayer(name="cat", op=ops.Concat(), inputs=("a", "b"), output=fmt, out_lo=-128,
                 out_hi=127, input_requants=(None, rq))
    record = np.frombuffer(vector_params(cat, CONFIG, 1), "<i4")[:len(PARAM_ROWS) * 8]
    rows = dict(zip(PARAM_ROWS, record.reshape(len(PARAM_ROWS), 8)))
    x = np.arange(-16, 16)
    folded = shift_round(x * rows["pre_multiplier0"][0], rows["pre_shift0"][0], "half_even")
    assert np.array_equal(folded, shift_round(x, -3, "half_even"))
    assert set(rows["post_multiplier"]) == {1} and set(rows["post_shift"]) == {0}


def test_prelu_slopes_are_per_channel_records():
    slopes = np.arange(11) * 100 - 500
    prelu = layer(ops.PReLU(11), act_multiplier=slopes, act_shift=16)
    blob = vector_params(prelu, CONFIG)
    assert len(blob) == 2 * record_bytes(CONFIG)
    records = [np.frombuffer(blob[i * record_bytes(CONFIG):], "<i4")[:len(PARAM_ROWS) * 8]
               .reshape(len(PARAM_ROWS), 8) for i in range(2)]
    got = np.concatenate([r[PARAM_ROWS.index("slope")] for r in records])
    assert np.array_equal(got, np.concatenate([slopes, np.zeros(5, np.int64)]))
    d = compile_(prelu, (1, 11, 4, 4))
    assert d.op == COPY and d.param_step == record_bytes(CONFIG) and d.act == 1


@pytest.mark.parametrize("op, message", [
    (ops.MaxPool(7, 2), "pool kernel 7 exceeds the vector unit's limit 5"),
    (ops.MaxPool(3, 4), "pool stride 4 exceeds the vector unit's limit 3"),
    (ops.Upsample(16), "upsample scale 16 exceeds the vector unit's limit 15"),
])
def test_refuses_what_the_unit_cannot_run(op, message):
    with pytest.raises(UserError, match=message) as error:
        compile_(layer(op), (1, 8, 20, 20))
    assert "'v'" in str(error.value)


def test_refuses_float32_requantization_and_an_18_bit_overflow():
    f32 = Requant("float32", np.array([0.5], np.float32), np.array([0]), "half_up")
    with pytest.raises(UserError, match="mode 'float32' is not supported"):
        compile_(layer(ops.AvgPool(2, 2), requant=f32), (1, 8, 4, 4))
    big = Requant("gemmlowp", np.array([1 << 30]), np.array([30]), "half_up")   # x 2**29
    add = layer(ops.Add(), inputs=("a", "b"), input_requants=(big, big),
                requant=Requant("shift", np.array([1]), np.array([8]), "half_up"))
    with pytest.raises(UserError, match="beyond the vector unit.s 32-bit pre stage"):
        compile_(add, (1, 8, 4, 4), formats=(U8, U8))
