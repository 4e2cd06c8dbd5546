"""StepSequencer against the planner's loop nest written as Python loops with direct formulas."""

import numpy as np
from amaranth.sim import Simulator
from hypothesis import Phase, given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.controller import STEP, StepSequencer
from fpgacnn.hw.program import compile_layer
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, Requant, TensorFormat

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
FMT = TensorFormat(8, False, 0.1, 3)


def conv_layer(n, m, k, s, p):
    op = ops.Conv2d(n, m, k, stride=s, padding=p)
    return QLayer("conv", op, ("x",), TensorFormat(8, True, 0.1, 0), -128, 127,
                  weight=np.zeros((m, n, k, k), np.int64), weight_bits=8,
                  bias=np.zeros(m, np.int64), requant=Requant("shift", [1], [4]))


def model_steps(config, n, m, h, w, k, s, p, pool, ddr):
    """(th, tw, iy0, ix0, lh, lw, first, last, in_ddr, w_ddr, p_ddr, out_ddr, channels)."""
    q, l, rb = config.tm, config.tn, config.tn * config.act_bits // 8
    oh = (h + 2 * p - k) // s + 1
    ow = (w + 2 * p - k) // s + 1
    if pool:
        oh, ow = oh // 2 * 2, ow // 2 * 2
    tile_h, tile_w = min(config.tr, oh), min(config.tc, ow)
    if pool:
        tile_h, tile_w = tile_h // 2 * 2, tile_w // 2 * 2
    wh, ww = (oh // 2, ow // 2) if pool else (oh, ow)
    nb_count, mb_count = -(-n // l), -(-m // q)
    steps = []
    for ty0 in range(0, oh, tile_h):
        for tx0 in range(0, ow, tile_w):
            th, tw = min(tile_h, oh - ty0), min(tile_w, ow - tx0)
            iy0, ix0 = ty0 * s - p, tx0 * s - p
            iy_lo, ix_lo = max(iy0, 0), max(ix0, 0)
            lh = max(0, min(iy0 + (th - 1) * s + k, h) - iy_lo)
            lw = max(0, min(ix0 + (tw - 1) * s + k, w) - ix_lo)
            oy0, ox0 = (ty0 // 2, tx0 // 2) if pool else (ty0, tx0)
            for mb in range(mb_count):
                for nb in range(nb_count):
                    steps.append((th, tw, iy0, ix0, lh, lw, nb == 0, nb == nb_count - 1,
                                  ddr["input"] + ((nb * h + iy_lo) * w + ix_lo) * rb,
                                  ddr["weight"] + (mb * nb_count + nb) * k * k * q * l,
                                  ddr["params"] + mb * q * 16,
                                  ddr["output"] + ((mb * q // l * wh + oy0) * ww + ox0) * rb,
                                  m - mb * q))
    return steps


def simulate(config, desc):
    dut = StepSequencer(config)
    steps = []
    fields = ("th", "tw", "iy0", "ix0", "lh", "lw", "first_pass", "last_pass", "in_ddr",
              "w_ddr", "p_ddr", "out_ddr", "channels")

    async def bench(ctx):
        ctx.set(dut.desc.as_value(), desc.to_int())
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.next, 1)
        while ctx.get(dut.valid):
            step = ctx.get(dut.step)
            steps.append(tuple(int(getattr(step, f)) for f in fields))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return [(a, b, c, d, e, f, bool(g), bool(h), i, j, k, l, mm)
            for a, b, c, d, e, f, g, h, i, j, k, l, mm in steps]


@settings(max_examples=25, deadline=None, phases=NO_SHRINK)
@given(st.sampled_from([(4, 4, 3, 5), (8, 4, 4, 4), (4, 2, 2, 3)]), st.integers(1, 11),
       st.integers(1, 20), st.integers(1, 4), st.data())
def test_sequencer_matches_loop_nest(shape, n, m, s, data):
    tm, tn, tr, tc = shape
    config = HardwareConfig(tm=tm, tn=tn, tr=tr, tc=tc, ddr_width_bits=tn * 8)
    k = data.draw(st.integers(1, 7))
    p = data.draw(st.integers(0, k - 1))
    h = data.draw(st.integers(max(1, k - 2 * p), 14))
    w = data.draw(st.integers(max(1, k - 2 * p), 14))
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    pool = data.draw(st.booleans()) and oh >= 2 and ow >= 2
    ddr = {"input": 0x1000, "output": 0x40000, "weight": 0x80000, "params": 0xC0000}
    desc = compile_layer(conv_layer(n, m, k, s, p), config, ddr, input_shape=(1, n, h, w),
                         input_format=FMT, pool=pool)
    assert simulate(config, desc) == model_steps(config, n, m, h, w, k, s, p, pool, ddr)
