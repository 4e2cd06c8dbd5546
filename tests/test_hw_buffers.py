"""Buffers against a Python dict memory model: banks independent, reads one cycle late."""

import numpy as np
from amaranth.sim import Simulator

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.buffers import AccumulatorBuffer, PingPongBuffer, weight_buffer


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_ping_pong_banks_are_independent_and_reads_lag_one_cycle():
    dut = PingPongBuffer(16, 10)
    rng = np.random.default_rng(1)
    ops = [(rng.integers(2), rng.integers(10), rng.integers(1 << 16), rng.integers(2),
            rng.integers(10)) for _ in range(200)]
    model = {}
    got, want = [], []

    async def bench(ctx):
        ctx.set(dut.r_en, 1)
        for wb, wa, wd, rb, ra in ops:
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_bank, int(wb))
            ctx.set(dut.w_addr, int(wa))
            ctx.set(dut.w_data, int(wd))
            ctx.set(dut.r_bank, int(rb))
            ctx.set(dut.r_addr, int(ra))
            expected = model.get((int(rb), int(ra)), 0)   # read-before-write in one cycle
            await ctx.tick()
            model[(int(wb), int(wa))] = int(wd)
            got.append(ctx.get(dut.r_data))
            want.append(expected)

    run(dut, bench)
    assert got == want


def test_ping_pong_read_holds_while_disabled():
    dut = PingPongBuffer(8, 4)

    async def bench(ctx):
        for a in range(4):
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_bank, 1)
            ctx.set(dut.w_addr, a)
            ctx.set(dut.w_data, 10 + a)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.r_en, 1)
        ctx.set(dut.r_bank, 1)
        ctx.set(dut.r_addr, 2)
        await ctx.tick()
        ctx.set(dut.r_en, 0)
        ctx.set(dut.r_addr, 3)
        await ctx.tick()
        assert ctx.get(dut.r_data) == 12

    run(dut, bench)


def test_accumulator_buffer_is_write_transparent():
    config = HardwareConfig(tm=2, tn=2, tr=2, tc=2)
    dut = AccumulatorBuffer(config)

    async def bench(ctx):
        ctx.set(dut.w_en, 1)
        ctx.set(dut.w_addr, 3)
        ctx.set(dut.w_data, 77)
        ctx.set(dut.r_addr, 3)
        await ctx.tick()
        assert ctx.get(dut.r_data) == 77     # the word written in the same cycle

    run(dut, bench)


def test_weight_buffer_shape_follows_config():
    buf = weight_buffer(HardwareConfig(tm=4, tn=2, max_kernel=5, weight_bits=8))
    assert (buf.width, buf.depth) == (64, 25)
