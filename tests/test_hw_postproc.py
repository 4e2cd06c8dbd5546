"""PostProcessor against the golden model's requantize/finish (fpgacnn.golden.requant)."""

import numpy as np
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator
from hypothesis import Phase, given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.golden import arith
from fpgacnn.golden.arith import ROUNDINGS
from fpgacnn.golden.requant import finish, requantize
from fpgacnn.hw.postproc import LATENCY, PostProcessor, shift_round
from fpgacnn.hw.program import MODES
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, Requant, TensorFormat

Q = 4
CONFIG = HardwareConfig(tm=Q, tn=4, ddr_width_bits=32)
INT32 = (-(1 << 31), (1 << 31) - 1)
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
# Ranges keep the golden model's int64 products (acc * M, y * slope) from wrapping.


def simulate(accs, bias, mult, shift, slope, ctrl, pool=False):
    """Feed `accs` (cycles x Q) one row per cycle; return the outputs (rows x Q)."""
    dut = PostProcessor(CONFIG)
    outputs = []

    async def bench(ctx):
        for name, values in (("bias", bias), ("multiplier", mult), ("shift", shift),
                             ("slope", slope)):
            for lane in range(Q):
                ctx.set(getattr(dut, name)[lane], int(values[lane]))
        for name, value in ctrl.items():
            ctx.set(getattr(dut, name), value)
        for i in range(len(accs) + LATENCY + 2):
            if i < len(accs):
                for lane in range(Q):
                    ctx.set(dut.acc[lane], int(accs[i][lane]))
                ctx.set(dut.valid, 1)
                ctx.set(dut.pool_first, (i % 4 == 0) if pool else 1)
                ctx.set(dut.pool_last, (i % 4 == 3) if pool else 1)
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if ctx.get(dut.out_valid):
                outputs.append([ctx.get(dut.out[lane]) for lane in range(Q)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(outputs, dtype=np.int64)


def golden(accs, bias, mult, shift, slope, mode, rq_rounding, act_rounding, act, act_shift,
           out_zero, lo, hi):
    rq = Requant(mode, mult, shift, rq_rounding)
    fmt = TensorFormat(16, True, 1.0, out_zero)
    layer = QLayer("conv", ops.Conv2d(Q, Q, 1), ("x",), fmt, lo, hi,
                   act_multiplier=np.asarray(slope) if act else None, act_shift=act_shift)
    acc = np.asarray(accs, np.int64) + np.asarray(bias, np.int64)
    return finish(requantize(acc, rq), layer, rounding=act_rounding)


lanes = lambda s: st.lists(s, min_size=Q, max_size=Q)  # noqa: E731
edge_acc = st.one_of(st.integers(*INT32), st.sampled_from(
    [INT32[0], INT32[1], 0, -1, 1, 1 << 30, -(1 << 30), 12345, -12345]))


@st.composite
def cases(draw):
    mode = draw(st.sampled_from(MODES))
    n = draw(st.integers(1, 12))
    accs = draw(st.lists(lanes(edge_acc), min_size=n, max_size=n))
    bias = draw(lanes(st.integers(-(1 << 24), 1 << 24)))
    if mode == "shift":
        mult = draw(lanes(st.sampled_from([1, 1, 1, 3, -2, 255])))
        shift = draw(lanes(st.integers(0, 40)))
    else:
        mult = draw(lanes(st.one_of(st.integers(1 << 30, INT32[1]), st.integers(0, INT32[1]))))
        shift = draw(lanes(st.integers(-31, 8)))
    act = draw(st.booleans())
    slope = draw(lanes(st.integers(-(1 << 16), (1 << 16) - 1)))
    lo = draw(st.integers(-(1 << 15), (1 << 15) - 1))
    hi = draw(st.integers(lo, (1 << 15) - 1))
    out_zero = draw(st.integers(lo, hi))
    return dict(accs=accs, bias=bias, mult=mult, shift=shift, slope=slope, mode=mode,
                rq_rounding=draw(st.sampled_from(ROUNDINGS)),
                act_rounding=draw(st.sampled_from(ROUNDINGS)), act=act,
                act_shift=draw(st.integers(0, 40)), out_zero=out_zero, lo=lo, hi=hi)


def ctrl_of(c):
    return dict(mode=MODES.index(c["mode"]), rq_rounding=ROUNDINGS.index(c["rq_rounding"]),
                act_rounding=ROUNDINGS.index(c["act_rounding"]), act=int(c["act"]),
                act_shift=c["act_shift"], out_zero=c["out_zero"], out_lo=c["lo"],
                out_hi=c["hi"])


@settings(max_examples=60, deadline=None, phases=NO_SHRINK)
@given(cases())
def test_postproc_matches_golden(c):
    got = simulate(c["accs"], c["bias"], c["mult"], c["shift"], c["slope"], ctrl_of(c))
    want = golden(**c)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=10, deadline=None, phases=NO_SHRINK)
@given(cases(), st.integers(1, 3))
def test_postproc_max_pool_takes_window_max(c, windows):
    rng = np.random.default_rng(windows)
    accs = rng.integers(-(1 << 20), 1 << 20, size=(4 * windows, Q))
    c = dict(c, accs=accs)
    got = simulate(accs, c["bias"], c["mult"], c["shift"], c["slope"], ctrl_of(c), pool=True)
    want = golden(**c).reshape(windows, 4, Q).max(axis=1)
    np.testing.assert_array_equal(got, want)


def test_postproc_known_values():
    """Hand-checked: 1000/16 = 62.5 -> 62 (half_even), 63 (half_up), 62 (truncate)."""
    for rounding, expected in (("half_even", 62), ("half_up", 63), ("truncate", 62)):
        c = dict(mode="shift", rq_rounding=rounding, act_rounding="half_up", act=False,
                 act_shift=0, out_zero=0, lo=-128, hi=127)
        got = simulate([[1000] * Q], [0] * Q, [1] * Q, [4] * Q, [0] * Q, ctrl_of(c))
        assert got.tolist() == [[expected] * Q]


def test_shift_round_equals_golden_on_every_8_bit_input():
    """The guard/sticky rounding against golden.arith.shift_round, exhaustively on 8 bits,
    shifting by up to 15 (beyond the width: sign bits only)."""
    x, amount, rounding = Signal(signed(8)), Signal(4), Signal(2)
    y = Signal(signed(9))
    m = Module()
    m.d.comb += y.eq(shift_round(x, amount, rounding))
    values = np.arange(-128, 128)
    got = []

    async def bench(ctx):
        for r in range(len(ROUNDINGS)):
            for a in range(16):
                ctx.set(rounding, r)
                ctx.set(amount, a)
                for v in values:
                    ctx.set(x, int(v))
                    got.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = [int(w) for r in ROUNDINGS for a in range(16)
            for w in arith.shift_round(values, a, r)]
    assert got == want
