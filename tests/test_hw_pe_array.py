"""MacArray against a numpy model: Q dot products of length L, accumulated over runs."""

import numpy as np
import pytest
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
    return out, dut.packed


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


EXTREME_X = (-255, -254, -129, -128, -1, 0, 1, 127, 128, 254, 255)
EXTREME_W = (-128, -127, -65, -64, -1, 0, 1, 63, 64, 126, 127)


def operands(rng, shape, bits, extremes):
    """Random signed values of `bits` bits with magnitude below 2**(bits-1) (the engine's
    input minus zero point; a weight's range for weights), half of them extremes."""
    top = 2 ** (bits - 1) - 1
    extreme = rng.choice([v for v in extremes if abs(v) <= top] + [-top, top], size=shape)
    uniform = rng.integers(-top, top + 1, size=shape)
    return np.where(rng.random(shape) < 0.5, extreme, uniform)


def run_and_compare(config, cycles, seed):
    rng = np.random.default_rng(seed)
    xs = operands(rng, (cycles, config.tn), config.act_bits + 1, EXTREME_X)
    xs[0, ::2], xs[0, 1::2] = -(2 ** config.act_bits - 1), 2 ** config.act_bits - 1
    ws = operands(rng, (cycles, config.tm * config.tn), config.weight_bits, EXTREME_W)
    ws[0] = -(2 ** (config.weight_bits - 1))             # includes -128 beside -128
    valids = rng.random(cycles) < 0.85
    runs = rng.integers(1, 5, size=cycles)
    firsts, lasts, k = [], [], 0
    for i in range(cycles):                # runs of 1..4 valid inputs
        firsts.append(k == 0)
        k += 1
        lasts.append(k == runs[i] or i == cycles - 1)
        k = 0 if lasts[-1] else k
    got, packed = simulate(config, xs, ws, firsts, lasts, valids)
    want = model(config, xs, ws, firsts, lasts, valids)
    # a run ends only where its last input is valid; the model skips invalid ones the same way
    assert got == want
    return packed


@settings(max_examples=12, deadline=None, phases=NO_SHRINK)
@given(st.sampled_from([(2, 2), (4, 4), (8, 4), (3, 5)]), st.integers(1, 30), st.integers(0, 99))
def test_mac_array_matches_dot_products(shape, cycles, seed):
    config = HardwareConfig(tm=shape[0], tn=shape[1])
    # INT8 on a DSP48E1 (the default xc7z020): rows 2k and 2k + 1 share their multipliers
    assert run_and_compare(config, cycles, seed)


@pytest.mark.parametrize("device, act_bits, packed", [
    ("xc7z020", 9, False),      # 10-bit x: 9 + 16 + 1 = 26 bits of packed weights > 25
    ("xczu3eg", 9, True),       # fits a DSP48E2's 27
    ("xc7z020", 7, True),
])
def test_packing_follows_the_device_and_stays_exact(device, act_bits, packed):
    config = HardwareConfig(device=device, tm=5, tn=3, act_bits=act_bits)
    for seed in range(3):
        assert run_and_compare(config, 12, seed) == packed


def test_packed_pair_is_exact_for_every_operand_triple():
    # numpy, independent of the hardware: all 8-bit weight pairs times every 9-bit input
    # with |x| <= 255, packed at p = 16 bits into 25 bits and unpacked as the docstring says
    p = 16
    w = np.arange(-128, 128, dtype=np.int64)
    w_low, w_high = (a.ravel() for a in np.meshgrid(w, w, indexing="ij"))
    packed = w_high * 2 ** p + w_low
    assert -2 ** 24 <= packed.min() and packed.max() < 2 ** 24
    for x in range(-256, 256):
        product = packed * x
        low = (product & (2 ** p - 1)) - ((product >> (p - 1)) & 1) * 2 ** p
        high = (product >> p) + ((product >> (p - 1)) & 1)
        wrong = (low != w_low * x) | (high != w_high * x)
        if x == -256:       # outside the contract: only (-128) x (-256) = 2**15 overflows
            assert set(w_low[wrong]) == {-128} and wrong.sum() == 256
        else:
            assert not wrong.any(), x

