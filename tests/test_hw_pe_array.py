"""MacArray against a numpy model: Q dot products of length L, accumulated over runs."""

import numpy as np
from amaranth.sim import Simulator
from hypothesis import Phase, given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.pe_array import LATENCY, MacArray

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def simulate(config, xs, ws, firsts, lasts, valids):
    dut = MacArray(config, tag_bits=8)
    q, l = config.tm, config.tn
    out = []

    async def bench(ctx):
        for i in range(len(xs) + LATENCY + 1):
            if i < len(xs):
                ctx.set(dut.valid, int(valids[i]))
                ctx.set(dut.first, int(firsts[i]))
                ctx.set(dut.last, int(lasts[i]))
                ctx.set(dut.tag, i % 256)
                for j in range(l):
                    ctx.set(dut.x[j], int(xs[i][j]))
                for j in range(q * l):
                    ctx.set(dut.w[j], int(ws[i][j]))
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if ctx.get(dut.psum_valid):
                out.append((ctx.get(dut.psum_tag), [ctx.get(dut.psum[r]) for r in range(q)]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


def model(config, xs, ws, firsts, lasts, valids):
    """Naive loops: one accumulator per row, reset by `first`, read out at `last`."""
    q, l = config.tm, config.tn
    acc = [0] * q
    out = []
    for i in range(len(xs)):
        if not valids[i]:
            continue
        for r in range(q):
            dot = sum(int(xs[i][j]) * int(ws[i][r * l + j]) for j in range(l))
            acc[r] = dot if firsts[i] else acc[r] + dot
        if lasts[i]:
            out.append((i % 256, list(acc)))
    return out


@settings(max_examples=12, deadline=None, phases=NO_SHRINK)
@given(st.sampled_from([(2, 2), (4, 4), (8, 4), (3, 5)]), st.integers(1, 30), st.integers(0, 99))
def test_mac_array_matches_dot_products(shape, cycles, seed):
    config = HardwareConfig(tm=shape[0], tn=shape[1])
    rng = np.random.default_rng(seed)
    xs = rng.integers(-256, 256, size=(cycles, config.tn))
    xs[0] = -256                                        # the extreme operands
    ws = rng.integers(-128, 128, size=(cycles, config.tm * config.tn))
    ws[0] = -128
    valids = rng.random(cycles) < 0.85
    runs = rng.integers(1, 5, size=cycles)
    firsts, lasts, k = [], [], 0
    for i in range(cycles):                # runs of 1..4 valid inputs
        firsts.append(k == 0)
        k += 1
        lasts.append(k == runs[i] or i == cycles - 1)
        k = 0 if lasts[-1] else k
    got = simulate(config, xs, ws, firsts, lasts, valids)
    want = model(config, xs, ws, firsts, lasts, valids)
    # a run ends only where its last input is valid; the model skips invalid ones the same way
    assert got == want
