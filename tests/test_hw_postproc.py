"""PostProcessor against the golden model's requantize/finish (fpgacnn.golden.requant)."""

import re

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator
from hypothesis import Phase, given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.golden import arith
from fpgacnn.golden.arith import ROUNDINGS
from fpgacnn.golden.requant import finish, requantize
from fpgacnn.hw.postproc import LATENCY, PostProcessor, shift_round, slope_is_exact
from fpgacnn.hw.program import MODES
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, Requant, TensorFormat

Q = 4
CONFIG = HardwareConfig(tm=Q, tn=4, ddr_width_bits=32)
INT32 = (-(1 << 31), (1 << 31) - 1)
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
# Parameters span what the compiler (hw.program._check_params) admits: |bias|, |M| < 2**31,
# shift-mode shifts up to 61 (the golden model refuses 62), |slope| < 2**17, slopes exact
# in the lanes (postproc.slope_is_exact).
SLOPE_MAX = (1 << 17) - 1


def simulate(accs, bias, mult, shift, slope, ctrl, pool=False, config=CONFIG):
    """Feed `accs` (cycles x Q) one row per cycle; return the outputs (rows x Q)."""
    dut = PostProcessor(config)
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
    bias = draw(lanes(st.one_of(st.integers(-(1 << 24), 1 << 24),
                                st.integers(-INT32[1], INT32[1]))))
    if mode == "shift":
        mult = draw(lanes(st.one_of(st.sampled_from([1, 1, 1, 3, -2, 255, INT32[1], -INT32[1]]),
                                    st.integers(-INT32[1], INT32[1]))))
        shift = draw(lanes(st.one_of(st.integers(0, 40), st.integers(0, 61))))
    else:
        mult = draw(lanes(st.one_of(st.integers(1 << 30, INT32[1]), st.integers(*INT32))))
        shift = draw(lanes(st.one_of(st.integers(-31, 8), st.integers(-31, 30))))
    act = draw(st.booleans())
    act_shift = draw(st.integers(0, 39))
    slope = [exact_slope(v, act_shift)
             for v in draw(lanes(st.integers(-SLOPE_MAX, SLOPE_MAX)))]
    lo = draw(st.integers(-(1 << 15), (1 << 15) - 1))
    hi = draw(st.integers(lo, (1 << 15) - 1))
    out_zero = draw(st.integers(lo, hi))
    return dict(accs=accs, bias=bias, mult=mult, shift=shift, slope=slope, mode=mode,
                rq_rounding=draw(st.sampled_from(ROUNDINGS)),
                act_rounding=draw(st.sampled_from(ROUNDINGS)), act=act,
                act_shift=act_shift, out_zero=out_zero, lo=lo, hi=hi)


def exact_slope(value, act_shift):
    """`value`, its magnitude raised to the smallest slope the lanes take exactly (and 0 to
    that slope beyond act_shift 23, where the golden model's clamp of y by a zero slope
    overflows its int64 check)."""
    if slope_is_exact(value, act_shift) and (value or act_shift <= 23):
        return value
    return (-1 if value < 0 else 1) << (act_shift - 23)


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


def extreme(mode, mult, shift, accs, bias, **kw):
    c = dict(mode=mode, mult=[mult] * Q, shift=[shift] * Q, accs=accs, bias=[bias] * Q,
             slope=[0] * Q, rq_rounding="half_even", act_rounding="half_up", act=False,
             act_shift=0, out_zero=0, lo=-(1 << 15), hi=(1 << 15) - 1)
    return dict(c, **kw)


LIMITS = [[INT32[0], INT32[1], 0, -1], [INT32[1], INT32[0], 1, -INT32[1]],
          [1 << 30, -(1 << 30), 12345, -12345]]
SMALL = [[-300, 300, -1, 1], [-70000, 70000, -5, 5], [-(1 << 20), 1 << 20, 0, -2]]


@pytest.mark.parametrize("c", [
    # shift mode: |acc + bias| = 2**32 - 1 times |M| = 2**31 - 1, just below 2**63
    extreme("shift", INT32[1], 0, LIMITS, INT32[1]),
    extreme("shift", -INT32[1], 0, LIMITS, -INT32[1]),
    extreme("shift", INT32[1], 61, LIMITS, INT32[1], rq_rounding="half_up"),
    extreme("shift", -INT32[1], 61, LIMITS, -INT32[1]),
    extreme("shift", INT32[1], 47, LIMITS, INT32[1], rq_rounding="truncate"),
    extreme("shift", 1, 1, SMALL, 0, rq_rounding="half_even"),
    # gemmlowp and single round at the ends of their shifts, M0 at both int32 limits
    extreme("gemmlowp", INT32[1], 30, LIMITS, INT32[1]),
    extreme("gemmlowp", INT32[0], -31, LIMITS, 0),
    extreme("gemmlowp", INT32[0], 0, [[INT32[0]] * Q, [INT32[0] + 1] * Q], 0),
    extreme("gemmlowp", 1 << 30, -31, SMALL, -INT32[1]),
    extreme("single_round", INT32[1], 30, LIMITS, INT32[1]),
    extreme("single_round", -INT32[1], -31, LIMITS, -INT32[1]),
    # largest slopes at act_shift 0 (products of 2**41 x 2**17), the largest exact shift,
    # shifts beyond it with the smallest exact slope, 16-bit outputs at the range ends
    extreme("shift", 1, 0, SMALL, 0, act=True, slope=[SLOPE_MAX, -SLOPE_MAX, 1, 0]),
    extreme("shift", INT32[1], 0, LIMITS, INT32[1], act=True,
            slope=[-SLOPE_MAX, SLOPE_MAX, -1, 1]),
    extreme("shift", 1, 0, SMALL, 0, act=True, act_shift=23, act_rounding="half_even",
            slope=[SLOPE_MAX, -SLOPE_MAX, 1, -1]),
    extreme("shift", 1, 0, LIMITS, INT32[1], act=True, act_shift=23, act_rounding="truncate",
            slope=[SLOPE_MAX, -SLOPE_MAX, 1, -1]),
    extreme("shift", 1, 0, LIMITS, -INT32[1], act=True, act_shift=39,
            slope=[1 << 16, -(1 << 16), SLOPE_MAX, -SLOPE_MAX]),
    extreme("gemmlowp", INT32[1], 30, LIMITS, -INT32[1], act=True, act_shift=30,
            slope=[1 << 7, -(1 << 7), -SLOPE_MAX, SLOPE_MAX], out_zero=-(1 << 15)),
    extreme("single_round", INT32[1], 30, SMALL, 0, act=True, act_shift=16,
            slope=[6554, -6554, SLOPE_MAX, -SLOPE_MAX], out_zero=(1 << 15) - 1),
    extreme("shift", 3, 2, SMALL, 7, act=True, act_shift=16, slope=[6554] * Q,
            lo=-(1 << 15), hi=(1 << 15) - 1, out_zero=-(1 << 15)),
], ids=lambda c: f"{c['mode']}-M{c['mult'][0]}-sh{c['shift'][0]}-act{c['act_shift']}")
def test_postproc_extreme_parameters_match_golden(c):
    got = simulate(c["accs"], c["bias"], c["mult"], c["shift"], c["slope"], ctrl_of(c))
    np.testing.assert_array_equal(got, golden(**c))


def test_no_signal_is_wider_than_64_bits():
    """Verilator evaluates values beyond 64 bits through slow wide-word helpers. (One lane:
    wider configurations only widen the ports, Q lanes side by side.)"""
    from amaranth.back import verilog
    text = verilog.convert(PostProcessor(HardwareConfig(tm=1, tn=1)), emit_src=False)
    widths = [int(msb) + 1 for msb in re.findall(r"\[(\d+):0\]", text)]
    assert widths and max(widths) <= 64


def test_slope_is_exact_at_the_boundary():
    assert slope_is_exact(1, 23) and not slope_is_exact(1, 24)
    assert slope_is_exact(2, 24) and slope_is_exact(-2, 24) and not slope_is_exact(3, 25)
    assert slope_is_exact(0, 63) and slope_is_exact(SLOPE_MAX, 39)
