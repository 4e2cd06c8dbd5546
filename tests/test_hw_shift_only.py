"""Shift-only post-processing lanes (`post_multipliers = false`): the lane against the golden
"shift" requantization, the compiler's refusals, the planner's DSPs against yosys, and
pow2 networks on the Verilator engine against the golden model."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import Phase, given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.golden.arith import ROUNDINGS
from fpgacnn.golden.requant import finish, requantize
from fpgacnn.hw.postproc import LATENCY, PostProcessor
from fpgacnn.hw.program import MODES
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, Requant, TensorFormat

Q = 4
LANES = HardwareConfig(tm=Q, tn=4, ddr_width_bits=32, post_multipliers=False)
INT32 = (-(1 << 31), (1 << 31) - 1)
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def simulate_lanes(accs, bias, shift, ctrl):
    """Feed `accs` (cycles x Q) one row per cycle to shift-only lanes; the outputs."""
    dut = PostProcessor(LANES)
    outputs = []

    async def bench(ctx):
        for lane in range(Q):
            ctx.set(dut.bias[lane], int(bias[lane]))
            ctx.set(dut.shift[lane], int(shift[lane]))
            ctx.set(dut.multiplier[lane], 1)
        for name, value in ctrl.items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.pool_first, 1)
        ctx.set(dut.pool_last, 1)
        for i in range(len(accs) + LATENCY + 2):
            ctx.set(dut.valid, i < len(accs))
            for lane in range(Q):
                ctx.set(dut.acc[lane], int(accs[i][lane]) if i < len(accs) else 0)
            await ctx.tick()
            if ctx.get(dut.out_valid):
                outputs.append([ctx.get(dut.out[lane]) for lane in range(Q)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(outputs, dtype=np.int64)


def golden_lanes(accs, bias, shift, rounding, act, out_zero, lo, hi):
    """golden.requant: "shift" mode with M = 1, then a zero slope when `act`."""
    fmt = TensorFormat(16, True, 1.0, out_zero)
    layer = QLayer("conv", ops.Conv2d(Q, Q, 1), ("x",), fmt, lo, hi,
                   act_multiplier=np.zeros(Q, np.int64) if act else None, act_shift=0)
    acc = np.asarray(accs, np.int64) + np.asarray(bias, np.int64)
    return finish(requantize(acc, Requant("shift", np.ones(Q, np.int64), np.asarray(shift),
                                          rounding)), layer)


def ctrl_of(rounding, act, out_zero, lo, hi):
    return dict(mode=MODES.index("shift"), rq_rounding=ROUNDINGS.index(rounding),
                act_rounding=0, act=int(act), act_shift=0, out_zero=out_zero, out_lo=lo,
                out_hi=hi)


def check_lanes(accs, bias, shift, rounding, act=False, out_zero=0, lo=-(1 << 15),
                hi=(1 << 15) - 1):
    got = simulate_lanes(accs, bias, shift, ctrl_of(rounding, act, out_zero, lo, hi))
    want = golden_lanes(accs, bias, shift, rounding, act, out_zero, lo, hi)
    np.testing.assert_array_equal(got, want)


lanes = lambda s: st.lists(s, min_size=Q, max_size=Q)  # noqa: E731
edge_acc = st.one_of(st.integers(*INT32), st.integers(-(1 << 12), 1 << 12), st.sampled_from(
    [INT32[0], INT32[1], 0, -1, 1, 1 << 30, -(1 << 30), 12345, -12345]))


@settings(max_examples=40, deadline=None, phases=NO_SHRINK)
@given(st.data())
def test_shift_only_lanes_match_golden_shift_mode(data):
    # left shifts up to 29 keep |acc + bias| * 2**left inside the golden model's 64 bits
    n = data.draw(st.integers(1, 10))
    accs = data.draw(st.lists(lanes(edge_acc), min_size=n, max_size=n))
    bias = data.draw(lanes(st.one_of(st.integers(-(1 << 20), 1 << 20),
                                     st.integers(-INT32[1], INT32[1]))))
    shift = data.draw(lanes(st.one_of(st.integers(-29, 0), st.integers(0, 20),
                                      st.integers(0, 61))))
    lo = data.draw(st.integers(-(1 << 15), (1 << 15) - 1))
    hi = data.draw(st.integers(lo, (1 << 15) - 1))
    check_lanes(accs, bias, shift, data.draw(st.sampled_from(ROUNDINGS)),
                act=data.draw(st.booleans()), out_zero=data.draw(st.integers(lo, hi)),
                lo=lo, hi=hi)


LIMITS = [[INT32[0], INT32[1], 0, -1], [INT32[1], INT32[0], 1, -INT32[1]],
          [1 << 30, -(1 << 30), 12345, -12345]]
TIES = [[-3, 3, -1, 1], [-5, 5, -7, 7], [-(1 << 20) - 1, (1 << 20) + 1, 2, -2]]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("accs, bias, shift", [
    (LIMITS, [INT32[1]] * Q, [0, 1, 31, 61]),            # |acc + bias| up to 2**32 - 1
    (LIMITS, [-INT32[1]] * Q, [33, 32, 60, 2]),
    (LIMITS, [0] * Q, [-1, -9, -17, -29]),               # left shifts: saturate
    (TIES, [0] * Q, [1, 1, 2, 3]),                       # halves: every rounding differs
    ([[1, -1, 0, 3]], [0] * Q, [-42, -41, -60, -17]),    # the largest left shifts
])
def test_shift_only_lanes_at_the_extremes(accs, bias, shift, rounding):
    check_lanes(accs, bias, shift, rounding)
    check_lanes(accs, bias, shift, rounding, act=True, out_zero=-3, lo=-128, hi=127)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_shift_only_lanes_left_shifts_at_the_widest_output(rounding):
    # 16-bit outputs (the golden model's widest): 2**16 - 2**15 saturates to 2**15 - 1,
    # 2**15 - 2**15 does not; every larger shift saturates
    check_lanes([[1, -1, 1, -1], [3, 0, -2, 1]], [0] * Q, [-15, -16, -17, -20], rounding,
                out_zero=-(1 << 15), lo=-(1 << 15), hi=(1 << 15) - 1)


def test_shift_only_lanes_known_values():
    """Hand-checked: 1000 / 16 = 62.5 -> 62 (half_even), 63 (half_up), 62 (truncate);
    -5 * 2**3 = -40, ReLU'd by a zero slope to 0."""
    for rounding, expected in (("half_even", 62), ("half_up", 63), ("truncate", 62)):
        got = simulate_lanes([[1000, 1000, -5, -5]], [0] * Q, [4, 4, -3, -3],
                             ctrl_of(rounding, act=False, out_zero=0, lo=-128, hi=127))
        assert got.tolist() == [[expected, expected, -40, -40]]
    got = simulate_lanes([[1000, 1000, -5, -5]], [0] * Q, [4, 4, -3, -3],
                         ctrl_of("half_up", act=True, out_zero=0, lo=-128, hi=127))
    assert got.tolist() == [[63, 63, 0, 0]]
